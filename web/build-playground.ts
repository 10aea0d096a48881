// Builds the playground (web/playground/) into dist/playground/: app.js and app.css bundled and minified by
// esbuild, index.html and icon.svg. `npm start` runs it first (prestart); the tests run it in their setup.
// Usage: node --import tsx web/build-playground.ts
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const SOURCE_DIR = fileURLToPath(new URL('./playground/', import.meta.url));
/** Where the built page is, and where src/http/playground.ts serves it from. */
export const PLAYGROUND_DIST_DIR = fileURLToPath(new URL('../dist/playground/', import.meta.url));

/** Bundles the page into `outDir`; throws with esbuild's messages when the source does not build. */
export async function buildPlayground(outDir: string = PLAYGROUND_DIST_DIR): Promise<void> {
  fs.mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: path.join(SOURCE_DIR, 'main.tsx'), 'app-style': path.join(SOURCE_DIR, 'style.css') },
    outdir: outDir,
    entryNames: '[name]',
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: path.join(SOURCE_DIR, 'tsconfig.json'),
    legalComments: 'none',
    logLevel: 'error',
  });
  fs.renameSync(path.join(outDir, 'app-style.css'), path.join(outDir, 'app.css'));
  for (const file of ['index.html', 'icon.svg']) fs.copyFileSync(path.join(SOURCE_DIR, file), path.join(outDir, file));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildPlayground();
}
