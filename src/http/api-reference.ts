// The reference page at /docs: Redoc (https://github.com/Redocly/redoc), served from its npm package's standalone
// bundle, rendering /openapi.json in the browser. Nothing is loaded from another origin.
import { createRequire } from 'node:module';

/** The file of the `redoc` package's standalone bundle, served at /docs/redoc.standalone.js. */
export const REDOC_BUNDLE_PATH = createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js');

/**
 * Only this origin. Redoc needs inline styles (styled-components), `new Function` (its bundle compiles code at run
 * time), a worker from a blob: URL for its search,
 * and data: images for its icons.
 */
export const API_REFERENCE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-eval' blob:",
  'worker-src blob:',
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
].join('; ');

export const API_REFERENCE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vidgate API reference</title>
<style>body { margin: 0; }</style>
</head>
<body>
<noscript>This reference needs JavaScript. The API description itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<redoc spec-url="/openapi.json" required-props-first="true" expand-responses="200,201,202"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
`;
