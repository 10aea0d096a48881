// PostgreSQL for tests: the run's database (made by postgres-global-setup.ts), one fresh schema per database a test
// asks for, so tests in parallel never see each other's rows.
import crypto from 'node:crypto';
import { inject } from 'vitest';
import { createPostgresStore } from '../../src/store/postgres';
import type { Store } from '../../src/store/types';

/** The URL of this test run's PostgreSQL database; throws, saying why, when the run has none. */
export function postgresUrl(): string {
  const db = inject('postgres');
  if ('unavailable' in db) throw new Error(db.unavailable);
  return db.url;
}

/** A new, empty schema's name (created by the first store opened on it). */
export const newPostgresSchema = (): string => `t_${crypto.randomBytes(8).toString('hex')}`;

/** A store on `schema` of the run's database (migrated at open). */
export function openPostgresStore(schema: string, poolSize?: number): Promise<Store> {
  return createPostgresStore({ url: postgresUrl(), schema, pool_size: poolSize });
}
