// The committed API types must be exactly what openapi-typescript makes of the spec today.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { SPEC_PATH } from '../src/http/app';

it('src/generated/vidgate-api.ts matches openapi/vidgate.yaml (run `npm run gen:types`)', () => {
  const generated = execFileSync('node_modules/.bin/openapi-typescript', [SPEC_PATH], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  expect(fs.readFileSync('src/generated/vidgate-api.ts', 'utf8')).toBe(generated);
});
