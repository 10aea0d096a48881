// The rules' primitives (../rules/sql.ts) over a node-postgres pool. Transactions run at READ COMMITTED on one pooled
// connection each; the races the rules name are closed by row locks (FOR UPDATE), advisory locks (Tx.lock) and
// conditional writes, and a transaction that meets a serialization failure or a deadlock is run again.
import pg from 'pg';
import type { Backend, Dialect, Params, Sql, Tx } from '../rules/sql';
import { StoreUnavailable } from '../types';
import { translatePgError, isRetryable } from './errors';

export const postgresDialect: Dialect = {
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  least: (a, b) => `LEAST(${a}, ${b})`,
  randomToken: "replace(gen_random_uuid()::text, '-', '')",
  jsonTexts: (param) => `(SELECT jsonb_array_elements_text(CAST(${param} AS jsonb)))`,
  jsonPairs: (param) => `(SELECT e ->> 0, e ->> 1 FROM jsonb_array_elements(CAST(${param} AS jsonb)) AS e)`,
  forUpdate: ' FOR UPDATE',
  skipLocked: ' FOR UPDATE SKIP LOCKED',
  excludeWriters: (tables) => `LOCK TABLE ${tables.join(', ')} IN SHARE ROW EXCLUSIVE MODE`,
};

/** How many times a transaction is run when it keeps meeting serialization failures or deadlocks. */
const MAX_TRIES = 8;

/** `@name` placeholders -> `$n` (one number per name), and the values in that order; cached per SQL text. */
const compiled = new Map<string, { text: string; names: string[] }>();
function compile(sql: string): { text: string; names: string[] } {
  let hit = compiled.get(sql);
  if (!hit) {
    const names: string[] = [];
    const text = sql.replace(/@([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
      let i = names.indexOf(name);
      if (i < 0) i = names.push(name) - 1;
      return `$${i + 1}`;
    });
    compiled.set(sql, (hit = { text, names }));
  }
  return hit;
}

/** 64-bit integers and numerics (counts, sums, BIGINT columns) as JS numbers: every value the store keeps fits. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

function over(queryable: pg.Pool | pg.PoolClient): Sql {
  const query = async <T>(sql: string, params?: Params) => {
    const { text, names } = compile(sql);
    const values = names.map((n) => {
      if (!params || !(n in params)) throw new Error(`missing SQL parameter @${n}`);
      return params[n] ?? null;
    });
    try {
      return await queryable.query<T & pg.QueryResultRow>({ text, values, types });
    } catch (err) {
      throw translatePgError(err);
    }
  };
  return {
    get: async <T>(sql: string, params?: Params) => (await query<T>(sql, params)).rows[0] as T | undefined,
    all: async <T>(sql: string, params?: Params) => (await query<T>(sql, params)).rows as T[],
    run: async (sql, params) => (await query(sql, params)).rowCount ?? 0,
  };
}

/**
 * Runs `fn` again while it meets serialization failures or deadlocks, after a short random pause growing with the
 * tries (so the transactions that collided do not collide again); StoreUnavailable when they persist.
 */
async function retried<T>(fn: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err)) throw err;
      if (tries >= MAX_TRIES) throw new StoreUnavailable(`transaction conflicts persisted over ${MAX_TRIES} tries`);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * tries));
    }
  }
}

/** A backend over a pool whose connections all use the store's schema. */
export function createPostgresBackend(pool: pg.Pool): Backend {
  const onPool = over(pool);
  async function attempt<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const client = await pool.connect().catch((err: unknown) => Promise.reject(translatePgError(err)));
    const sql = over(client);
    let savepoints = 0;
    const tx: Tx = {
      ...sql,
      async lock(key) {
        await sql.run('SELECT pg_advisory_xact_lock(hashtextextended(@key, 0))', { key });
      },
      async savepoint(inner) {
        const name = `sp${++savepoints}`;
        await client.query(`SAVEPOINT ${name}`);
        try {
          const result = await inner();
          await client.query(`RELEASE SAVEPOINT ${name}`);
          return result;
        } catch (err) {
          await client.query(`ROLLBACK TO SAVEPOINT ${name}`);
          throw err;
        }
      },
    };
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT').catch((err: unknown) => Promise.reject(translatePgError(err)));
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  return {
    dialect: postgresDialect,
    // A single statement is a transaction of its own: retried likewise (e.g. a claim meeting a deadlock).
    read: {
      get: (sql, params) => retried(() => onPool.get(sql, params)),
      all: (sql, params) => retried(() => onPool.all(sql, params)),
      run: (sql, params) => retried(() => onPool.run(sql, params)),
    },
    transaction: (fn) => retried(() => attempt(fn)),
    close: () => pool.end(),
  };
}
