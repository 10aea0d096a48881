// The playground at /playground: the page built from web/playground/ (web/build-playground.ts) into
// dist/playground/, served with a Content-Security-Policy that lets it load and call nothing but this origin.
import fs from 'node:fs';
import path from 'node:path';
import express from 'express';
import { ApiError } from '../core/errors';
import { projectPath } from '../project-root';

/** Where `npm run build:web` (and `npm start`, before it starts) puts the page. */
export const PLAYGROUND_DIR = projectPath('dist/playground/');

/**
 * Only this origin: its script and style sheet, its API (connect), and the blob: URLs the page makes of a chosen
 * image (preview) and of a fetched video (a `<video>` cannot send the API key).
 */
export const PLAYGROUND_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const FILES = { 'app.js': 'text/javascript', 'app.css': 'text/css', 'icon.svg': 'image/svg+xml' } as const;

const notBuilt = () =>
  new ApiError(503, 'service_unavailable_error', 'playground_not_built', 'the playground was not built: run `npm run build:web` (npm start does it)');

/** GET /playground and the files it loads; 503 `playground_not_built` when dist/playground/ is missing. */
export function createPlaygroundRoutes(dir: string = PLAYGROUND_DIR): express.Router {
  const routes = express.Router();
  const send = (res: express.Response, file: string, type: string) => {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) throw notBuilt();
    res.type(type).set({ 'Content-Security-Policy': PLAYGROUND_CSP, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' }).sendFile(full);
  };
  routes.get('/playground', (_req, res) => send(res, 'index.html', 'html'));
  routes.get('/playground/:file', (req, res) => {
    const type = FILES[req.params.file as keyof typeof FILES];
    if (!type) throw new ApiError(404, 'not_found_error', 'route_not_found', 'no such file of the playground');
    send(res, req.params.file!, type);
  });
  return routes;
}
