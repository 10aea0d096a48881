// The backend for several replicas: PostgreSQL through a node-postgres pool, its schema (schema.ts) migrated at open,
// and the shared rules (../rules) over it.
import pg from 'pg';
import type { Store } from '../types';
import { createStore } from '../rules/store';
import { createPostgresBackend } from './backend';
import { translatePgError } from './errors';
import { migratePostgres } from './schema';

export interface PostgresStoreOptions {
  /** A libpq connection URL, e.g. postgres://user@host:5432/db. */
  url: string;
  /** The schema holding the tables (created when missing); `public` by default. Tests use one per store. */
  schema?: string;
  /** Connections in the pool; 10 by default. */
  pool_size?: number;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * Connects, creates the schema when missing and migrates it (safe with several replicas starting at once), and
 * returns the Store. Throws StoreUnavailable when the server cannot be reached, or an Error when the schema name is
 * not a plain lower-case identifier or the database's schema is newer than this build.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const schema = options.schema ?? 'public';
  if (!IDENTIFIER.test(schema)) throw new Error(`postgres schema name ${JSON.stringify(schema)} must match ${IDENTIFIER}`);
  const pool = new pg.Pool({ connectionString: options.url, max: options.pool_size ?? 10, options: `-c search_path=${schema}` });
  // An idle connection's error (the server restarted) is the pool's to handle: it drops the connection.
  pool.on('error', () => undefined);
  try {
    const client = await pool.connect();
    try {
      // Created only when missing: a role without CREATE on the database can still use an existing schema.
      const { rowCount } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (rowCount === 0) {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch((err: unknown) => {
          // Two replicas creating it at once: one of them meets the unique index of schema names.
          if (!(err instanceof pg.DatabaseError && err.code === '23505')) throw err;
        });
      }
      await migratePostgres(client);
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end();
    throw translatePgError(err);
  }
  return createStore(createPostgresBackend(pool));
}
