// The store the configuration names: the SQLite file, or a PostgreSQL database.
import { createSqliteStore } from './sqlite';
import type { Store } from './types';

/** The store section of the configuration, resolved (src/core/config.ts). */
export interface StoreSettings {
  kind: 'sqlite' | 'postgres';
  sqlite_path: string;
  url?: string;
  schema: string;
  pool_size: number;
}

/**
 * Opens the configured store, migrating its schema. Throws StoreUnavailable when PostgreSQL cannot be reached, an
 * Error when the schema is newer than this build. The PostgreSQL driver is loaded only for a PostgreSQL store.
 */
export async function openStore(settings: StoreSettings): Promise<Store> {
  if (settings.kind === 'postgres') {
    const { createPostgresStore } = await import('./postgres');
    return createPostgresStore({ url: settings.url!, schema: settings.schema, pool_size: settings.pool_size });
  }
  return createSqliteStore(settings.sqlite_path);
}
