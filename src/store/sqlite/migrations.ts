import type Database from 'better-sqlite3';

/** Schema steps, applied in order; `PRAGMA user_version` counts the steps applied. Append only. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress INTEGER NOT NULL,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    callback_url TEXT,
    credits_reserved INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    provider_id TEXT,
    upstream_id TEXT,
    error_code TEXT,
    error_message TEXT,
    asset_key TEXT,
    asset_expired INTEGER NOT NULL DEFAULT 0 CHECK (asset_expired IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    submitted_at_ms INTEGER,
    completed_at_ms INTEGER,
    next_run_at_ms INTEGER NOT NULL,
    lease_token TEXT,
    lease_until_ms INTEGER
  ) STRICT;

  CREATE INDEX tasks_due ON tasks (status, next_run_at_ms);
  CREATE INDEX tasks_by_owner ON tasks (owner_id, created_at_ms DESC, id DESC);
  CREATE INDEX tasks_by_owner_status ON tasks (owner_id, status, created_at_ms DESC, id DESC);
  CREATE INDEX tasks_stored_assets ON tasks (status, asset_expired, completed_at_ms)
    WHERE asset_key IS NOT NULL;
  `,
  `
  CREATE TABLE task_attempts (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    n INTEGER NOT NULL,
    provider_id TEXT NOT NULL,
    upstream_id TEXT,
    usd REAL NOT NULL,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'completed', 'failed', 'retried', 'cancelled')),
    error_code TEXT,
    error_message TEXT,
    PRIMARY KEY (task_id, n)
  ) STRICT;
  CREATE INDEX task_attempts_running ON task_attempts (provider_id) WHERE outcome = 'running';
  `,
];

/** Brings the schema up to date in one write transaction, so concurrent openers migrate once. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`database schema version ${version} is newer than this build (${MIGRATIONS.length})`);
    }
    for (const step of MIGRATIONS.slice(version)) db.exec(step);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
