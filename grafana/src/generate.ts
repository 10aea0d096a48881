/**
 * `npm run gen:dashboards`: writes grafana/dashboards/<name>.json from the dashboard builders. Deterministic: running it
 * twice gives the same bytes; test/grafana.test.ts fails when the committed files differ from what this writes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderDashboards } from './dashboards';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboards');
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(renderDashboards())) {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
