import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPostgresStore } from '../src/store/postgres';
import { PG_MIGRATIONS } from '../src/store/postgres/schema';
import { StoreUnavailable, type Store } from '../src/store/types';
import { describeStoreConformance } from './store-conformance';
import { newPostgresSchema, openPostgresStore, postgresUrl } from './support/postgres';

let schema: string;

beforeEach(() => {
  schema = newPostgresSchema();
});

describeStoreConformance('postgres', () => openPostgresStore(schema));

describe('postgres store', () => {
  const opened: Store[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });
  const open = async () => {
    const store = await openPostgresStore(schema);
    opened.push(store);
    return store;
  };
  async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
    const client = new pg.Client({ connectionString: postgresUrl(), options: `-c search_path=${schema}` });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  }

  it('replicas starting at once on an empty schema migrate it once', async () => {
    await Promise.all(Array.from({ length: 4 }, open));
    expect(await query('SELECT version FROM schema_migrations ORDER BY version')).toEqual(PG_MIGRATIONS.map((_, i) => ({ version: i + 1 })));
  });

  it('refuses a database migrated by a newer build', async () => {
    await open();
    await query(`INSERT INTO schema_migrations (version, applied_at_ms) VALUES (${PG_MIGRATIONS.length + 1}, 0)`);
    await expect(openPostgresStore(schema)).rejects.toThrow(/newer than this build/);
  });

  it('never hands one task to two of several claimers on their own connections', async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, open));
    const ids = Array.from({ length: 300 }, (_, i) => `task-${i}`);
    for (const id of ids) {
      await stores[0]!.createTask({
        id, owner_id: 'owner', key_id: 'key', model: 'm', request_json: '{}', callback_url: null,
        credits_reserved: 1, created_at_ms: 0, cache_key: null, cache_status: 'disabled',
      });
    }
    const claimed: string[] = [];
    await Promise.all(
      stores.map(async (store) => {
        for (;;) {
          const batch = await store.claimDue('dispatch', 7, 60_000, 1);
          if (batch.length === 0) return;
          claimed.push(...batch.map((t) => t.id));
        }
      }),
    );
    expect(claimed).toHaveLength(ids.length);
    expect(new Set(claimed)).toEqual(new Set(ids));
  });

  it('answers StoreUnavailable when the server cannot be reached', async () => {
    await expect(createPostgresStore({ url: 'postgres://postgres@127.0.0.1:1/none' })).rejects.toBeInstanceOf(StoreUnavailable);
  });
});

describe("PostgreSQL's refusals as the store's vocabulary", () => {
  it('a database that accepts no connections (55000), a server shutting down (57P01), a lost connection (08006) are StoreUnavailable', async () => {
    const { translatePgError } = await import('../src/store/postgres/errors');
    for (const code of ['55000', '57P01', '08006', '53300']) {
      const err = Object.assign(new pg.DatabaseError('refused', 0, 'error'), { code });
      expect(translatePgError(err), code).toBeInstanceOf(StoreUnavailable);
    }
    // Another object in a wrong state is not an outage.
    const other = Object.assign(new pg.DatabaseError('in use', 0, 'error'), { code: '55006' });
    expect(translatePgError(other)).toBe(other);
  });
});
