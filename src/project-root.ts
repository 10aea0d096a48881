// Where the project's own files are (the OpenAPI spec, the built playground, package.json): the nearest directory
// above this module that holds package.json. The paths then hold for the sources (src/, run through tsx by the
// tests and the CLI) and for the server bundle (dist/server/, run by `npm start`) alike.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest directory at or above `from` holding package.json. @throws Error when there is none. */
function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/** The project's root directory (absolute). */
export const PROJECT_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The absolute path of `relative` (slash-separated) below the project's root. */
export const projectPath = (relative: string): string => path.join(PROJECT_ROOT, relative);
