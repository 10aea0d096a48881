// The node flags `npm start` gives the gateway (package.json's `start` script: those between `node` and the entry),
// so that a bench's gateway process runs as a started one does.
import fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };

/** E.g. `['--heap-growing-percent=50', '--enable-source-maps']`; `--import tsx` (if any) is left out (each bench loads the gateway its own way). */
export const START_NODE_FLAGS: string[] = pkg.scripts.start
  .replace(/^exec\s+/, '')
  .split(/\s+/)
  .slice(1)
  .filter((token, i, all) => token.startsWith('--') && token !== '--import' && all[i - 1] !== '--import');
