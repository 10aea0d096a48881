// PostgreSQL's schema: one initial step equivalent to every SQLite migration applied (../sqlite/migrations.ts), then
// steps of its own. Text that is compared or ordered (ids, cursors) uses the "C" collation, which orders bytes as
// SQLite does, whatever the database's locale.
import type pg from 'pg';

/** Schema steps, applied in order and recorded in `schema_migrations`. Append only. */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE teams (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    credits_per_day BIGINT,
    credits_per_month BIGINT,
    max_concurrent BIGINT,
    reads_per_minute BIGINT,
    submits_per_minute BIGINT
  );

  CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    team_id TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    name TEXT NOT NULL,
    key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT,
    allowed_models TEXT, -- JSON array, or NULL for every model
    credits_per_day BIGINT,
    credits_per_month BIGINT,
    max_concurrent BIGINT,
    reads_per_minute BIGINT,
    submits_per_minute BIGINT
  );
  CREATE INDEX api_keys_by_team ON api_keys (team_id, created_at_ms);

  CREATE TABLE tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_id TEXT COLLATE "C" NOT NULL,
    key_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress BIGINT NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    request_json TEXT NOT NULL,
    callback_url TEXT,
    door TEXT NOT NULL DEFAULT 'native' CHECK (door IN ('native', 'openai')),
    credits_reserved BIGINT NOT NULL,
    credits_settled BIGINT,
    quota_day TEXT COLLATE "C" NOT NULL,
    quota_month TEXT COLLATE "C" NOT NULL,
    attempt BIGINT NOT NULL,
    provider_id TEXT COLLATE "C",
    upstream_id TEXT COLLATE "C",
    error_code TEXT,
    error_message TEXT,
    asset_key TEXT COLLATE "C",
    asset_expired INTEGER NOT NULL DEFAULT 0 CHECK (asset_expired IN (0, 1)),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    submitted_at_ms BIGINT,
    completed_at_ms BIGINT,
    next_run_at_ms BIGINT NOT NULL,
    lease_token TEXT COLLATE "C",
    lease_until_ms BIGINT,
    cache_key TEXT COLLATE "C",
    cache_status TEXT NOT NULL DEFAULT 'disabled' CHECK (cache_status IN ('miss', 'bypassed', 'disabled', 'hit', 'coalesced')),
    source_id TEXT COLLATE "C",
    asset_stored_at_ms BIGINT,
    deleted_at_ms BIGINT
  );
  CREATE INDEX tasks_due ON tasks (status, next_run_at_ms);
  CREATE INDEX tasks_by_owner ON tasks (owner_id, created_at_ms DESC, id DESC);
  CREATE INDEX tasks_by_owner_status ON tasks (owner_id, status, created_at_ms DESC, id DESC);
  CREATE INDEX tasks_stored_assets ON tasks (status, asset_expired, completed_at_ms) WHERE asset_key IS NOT NULL;
  CREATE INDEX tasks_cache_sources ON tasks (cache_key, completed_at_ms)
    WHERE cache_key IS NOT NULL AND status = 'completed' AND source_id IS NULL AND asset_expired = 0;
  CREATE INDEX tasks_cache_leaders ON tasks (cache_key, created_at_ms)
    WHERE cache_key IS NOT NULL AND status IN ('pending', 'processing') AND source_id IS NULL;
  CREATE INDEX tasks_by_source ON tasks (source_id) WHERE source_id IS NOT NULL;
  CREATE INDEX tasks_by_asset ON tasks (asset_key) WHERE asset_key IS NOT NULL;
  CREATE INDEX tasks_poll_due ON tasks (provider_id, next_run_at_ms) WHERE status = 'processing' AND source_id IS NULL;
  CREATE INDEX tasks_running_jobs ON tasks (provider_id, upstream_id) WHERE status = 'processing';

  CREATE TABLE task_attempts (
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id),
    n BIGINT NOT NULL,
    provider_id TEXT COLLATE "C" NOT NULL,
    upstream_id TEXT COLLATE "C",
    micro_usd BIGINT NOT NULL DEFAULT 0,
    credits BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'completed', 'failed', 'retried', 'cancelled')),
    error_code TEXT,
    error_message TEXT,
    PRIMARY KEY (task_id, n)
  );
  CREATE INDEX task_attempts_running ON task_attempts (provider_id) WHERE outcome = 'running';

  -- Append-only: every movement of credits. Balances derive from it.
  CREATE TABLE ledger (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id TEXT COLLATE "C" NOT NULL,
    key_id TEXT COLLATE "C",
    task_id TEXT COLLATE "C",
    attempt BIGINT,
    kind TEXT NOT NULL CHECK (kind IN ('reserve', 'settle', 'release', 'adjust')),
    credits BIGINT NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C",
    provider_id TEXT COLLATE "C",
    note TEXT,
    created_at_ms BIGINT NOT NULL
  );
  CREATE INDEX ledger_by_team_day ON ledger (team_id, day);
  CREATE INDEX ledger_by_task ON ledger (task_id);
  CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
  CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

  -- What each team and key has used per quota window ('day:YYYY-MM-DD', 'month:YYYY-MM', 'active'): a cache of the
  -- ledger and the tasks, so that a quota check is one conditional upsert. recomputeUsage rebuilds it.
  CREATE TABLE usage_counters (
    scope TEXT COLLATE "C" NOT NULL, -- 'team:<id>' or 'key:<id>'
    win TEXT COLLATE "C" NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (scope, win)
  );

  CREATE TABLE idempotency_keys (
    owner_id TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT COLLATE "C" NOT NULL,
    request_hash TEXT NOT NULL,
    task_id TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (owner_id, idempotency_key)
  );

  CREATE TABLE outbox (
    id TEXT COLLATE "C" PRIMARY KEY, -- the webhook-id
    team_id TEXT COLLATE "C" NOT NULL,
    task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks (id),
    task_status TEXT NOT NULL CHECK (task_status IN ('completed', 'failed', 'cancelled')),
    door TEXT NOT NULL CHECK (door IN ('native', 'openai')),
    url TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    failures BIGINT NOT NULL DEFAULT 0,
    next_run_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    lease_token TEXT COLLATE "C",
    lease_until_ms BIGINT,
    redeliver_at_ms BIGINT
  );
  CREATE INDEX outbox_due ON outbox (next_run_at_ms) WHERE state = 'pending';
  CREATE INDEX outbox_by_task ON outbox (task_id, created_at_ms);
  CREATE INDEX outbox_dead ON outbox (team_id, created_at_ms DESC) WHERE state = 'dead';
  CREATE TABLE delivery_attempts (
    event_id TEXT COLLATE "C" NOT NULL REFERENCES outbox (id),
    n BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    PRIMARY KEY (event_id, n)
  );
  CREATE TABLE webhook_secrets (
    id TEXT COLLATE "C" PRIMARY KEY,
    team_id TEXT COLLATE "C" NOT NULL,
    secret_encrypted TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT
  );
  CREATE INDEX webhook_secrets_by_team ON webhook_secrets (team_id, created_at_ms DESC);

  -- Running attempts per provider, kept by a trigger in the transaction of every change to an attempt.
  CREATE TABLE provider_running (
    provider_id TEXT COLLATE "C" PRIMARY KEY,
    n BIGINT NOT NULL -- attempts with outcome 'running'
  );
  CREATE FUNCTION provider_running_keep() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.outcome = 'running' THEN
      UPDATE provider_running SET n = n - 1 WHERE provider_id = OLD.provider_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.outcome = 'running' THEN
      INSERT INTO provider_running (provider_id, n) VALUES (NEW.provider_id, 1)
        ON CONFLICT (provider_id) DO UPDATE SET n = provider_running.n + 1;
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER provider_running_keep AFTER INSERT OR UPDATE OF outcome, provider_id OR DELETE ON task_attempts
    FOR EACH ROW EXECUTE FUNCTION provider_running_keep();
  `,
  // The circuit breakers' state shared by the replicas (SQLite's provider_health migration).
  `
  CREATE TABLE provider_health (
    provider TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('closed', 'open')),
    since_ms BIGINT NOT NULL,
    until_ms BIGINT,
    reason TEXT,
    opened_by TEXT NOT NULL CHECK (opened_by IN ('submit', 'job')),
    pinned INTEGER NOT NULL CHECK (pinned IN (0, 1)), -- until_ms set by the provider's Retry-After
    probe_holder TEXT COLLATE "C",
    probe_until_ms BIGINT,
    version BIGINT NOT NULL,
    PRIMARY KEY (provider, model)
  );
  `,
];

/** A fixed advisory lock key (in the schema's namespace) held while migrations run. */
const MIGRATION_LOCK = 'vidgate:migrations';

/**
 * Brings the schema up to date. Several replicas starting at once take turns on a session advisory lock, so each
 * step runs once; each step and its record commit together. Throws when the database is newer than this build.
 */
export async function migratePostgres(client: pg.ClientBase): Promise<void> {
  await client.query('SELECT pg_advisory_lock(hashtextextended($1 || current_schema(), 0))', [MIGRATION_LOCK]);
  try {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT NOT NULL)');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
    const version = rows[0]?.v ?? 0;
    if (version > PG_MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this build (${PG_MIGRATIONS.length})`);
    for (let i = version; i < PG_MIGRATIONS.length; i++) {
      await client.query('BEGIN');
      try {
        await client.query(PG_MIGRATIONS[i]!);
        await client.query('INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)', [i + 1, Date.now()]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtextextended($1 || current_schema(), 0))', [MIGRATION_LOCK]);
  }
}
