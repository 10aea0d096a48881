import type Database from 'better-sqlite3';

/** Schema steps, applied in order; `PRAGMA user_version` counts the steps applied. Append only. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    credits_per_day INTEGER,
    credits_per_month INTEGER,
    max_concurrent INTEGER,
    requests_per_minute INTEGER
  ) STRICT;

  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER,
    allowed_models TEXT, -- JSON array, or NULL for every model
    credits_per_day INTEGER,
    credits_per_month INTEGER,
    max_concurrent INTEGER,
    requests_per_minute INTEGER
  ) STRICT;
  CREATE INDEX api_keys_by_team ON api_keys (team_id, created_at_ms);

  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress INTEGER NOT NULL,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    callback_url TEXT,
    credits_reserved INTEGER NOT NULL,
    credits_settled INTEGER,
    quota_day TEXT NOT NULL,   -- UTC YYYY-MM-DD of creation: the quota windows the task counts in
    quota_month TEXT NOT NULL, -- UTC YYYY-MM
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

  CREATE TABLE task_attempts (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    n INTEGER NOT NULL,
    provider_id TEXT NOT NULL,
    upstream_id TEXT,
    usd REAL NOT NULL,
    credits INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'completed', 'failed', 'retried', 'cancelled')),
    error_code TEXT,
    error_message TEXT,
    PRIMARY KEY (task_id, n)
  ) STRICT;
  CREATE INDEX task_attempts_running ON task_attempts (provider_id) WHERE outcome = 'running';

  -- Append-only: every movement of credits. Balances derive from it.
  CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    team_id TEXT NOT NULL,
    key_id TEXT,
    task_id TEXT,
    attempt INTEGER,
    kind TEXT NOT NULL CHECK (kind IN ('reserve', 'settle', 'release', 'adjust')),
    credits INTEGER NOT NULL,
    day TEXT NOT NULL,
    model TEXT,
    provider_id TEXT,
    note TEXT,
    created_at_ms INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX ledger_by_team_day ON ledger (team_id, day);
  CREATE INDEX ledger_by_task ON ledger (task_id);
  CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
  CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

  -- What each team and key has used per quota window ('day:YYYY-MM-DD', 'month:YYYY-MM', 'active',
  -- 'minute:YYYY-MM-DDTHH:MM'): a cache of the ledger and the tasks, so that a quota check is one
  -- conditional UPDATE. recomputeUsage rebuilds it.
  CREATE TABLE usage_counters (
    scope TEXT NOT NULL, -- 'team:<id>' or 'key:<id>'
    win TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (scope, win)
  ) STRICT, WITHOUT ROWID;
  `,
  // The cache index: identical requests share a stored result (hits) or a running generation (followers).
  `
  ALTER TABLE tasks ADD COLUMN cache_key TEXT;
  ALTER TABLE tasks ADD COLUMN cache_status TEXT NOT NULL DEFAULT 'disabled'
    CHECK (cache_status IN ('miss', 'bypassed', 'disabled', 'hit', 'coalesced'));
  ALTER TABLE tasks ADD COLUMN source_id TEXT;
  ALTER TABLE tasks ADD COLUMN asset_stored_at_ms INTEGER;
  UPDATE tasks SET asset_stored_at_ms = completed_at_ms WHERE asset_key IS NOT NULL;
  -- Results that may serve a hit, and generations that may be followed (each a task's own, not a hit's).
  CREATE INDEX tasks_cache_sources ON tasks (cache_key, completed_at_ms)
    WHERE cache_key IS NOT NULL AND status = 'completed' AND source_id IS NULL AND asset_expired = 0;
  CREATE INDEX tasks_cache_leaders ON tasks (cache_key, created_at_ms)
    WHERE cache_key IS NOT NULL AND status IN ('pending', 'processing') AND source_id IS NULL;
  CREATE INDEX tasks_by_source ON tasks (source_id) WHERE source_id IS NOT NULL;
  CREATE INDEX tasks_by_asset ON tasks (asset_key) WHERE asset_key IS NOT NULL;
  `,
  // Money in whole micro-USD: an attempt's price was a float (0.1 * 3 stored 0.30000000000000004).
  `
  ALTER TABLE task_attempts ADD COLUMN micro_usd INTEGER NOT NULL DEFAULT 0;
  UPDATE task_attempts SET micro_usd = CAST(round(usd * 1000000) AS INTEGER);
  ALTER TABLE task_attempts DROP COLUMN usd;
  `,
  // Reads and submissions are limited apart, so that polling cannot starve submission. A limit on requests
  // becomes the same limit on each.
  `
  ALTER TABLE teams ADD COLUMN reads_per_minute INTEGER;
  ALTER TABLE teams ADD COLUMN submits_per_minute INTEGER;
  UPDATE teams SET reads_per_minute = requests_per_minute, submits_per_minute = requests_per_minute;
  ALTER TABLE teams DROP COLUMN requests_per_minute;
  ALTER TABLE api_keys ADD COLUMN reads_per_minute INTEGER;
  ALTER TABLE api_keys ADD COLUMN submits_per_minute INTEGER;
  UPDATE api_keys SET reads_per_minute = requests_per_minute, submits_per_minute = requests_per_minute;
  ALTER TABLE api_keys DROP COLUMN requests_per_minute;
  DELETE FROM usage_counters WHERE win LIKE 'minute:%';
  `,
  // Deleted videos (a soft delete: the task and its ledger rows stay), and clients' idempotency keys.
  `
  ALTER TABLE tasks ADD COLUMN deleted_at_ms INTEGER;
  CREATE TABLE idempotency_keys (
    owner_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL, -- SHA-256 of the normalized request: a reuse with another body is refused
    task_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (owner_id, idempotency_key)
  ) STRICT, WITHOUT ROWID;
  `,
  // Webhooks: the door a task came through (its body's shape), the transactional outbox of terminal transitions,
  // each attempt to deliver one, and the teams' signing secrets (encrypted by the caller).
  `
  ALTER TABLE tasks ADD COLUMN door TEXT NOT NULL DEFAULT 'native' CHECK (door IN ('native', 'openai'));
  CREATE TABLE outbox (
    id TEXT PRIMARY KEY, -- the webhook-id
    team_id TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    task_status TEXT NOT NULL CHECK (task_status IN ('completed', 'failed', 'cancelled')),
    door TEXT NOT NULL CHECK (door IN ('native', 'openai')),
    url TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    failures INTEGER NOT NULL DEFAULT 0,
    next_run_at_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    lease_token TEXT,
    lease_until_ms INTEGER
  ) STRICT;
  CREATE INDEX outbox_due ON outbox (next_run_at_ms) WHERE state = 'pending';
  CREATE INDEX outbox_by_task ON outbox (task_id, created_at_ms);
  CREATE INDEX outbox_dead ON outbox (team_id, created_at_ms DESC) WHERE state = 'dead';
  CREATE TABLE delivery_attempts (
    event_id TEXT NOT NULL REFERENCES outbox (id),
    n INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (event_id, n)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE webhook_secrets (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL,
    secret_encrypted TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER
  ) STRICT;
  CREATE INDEX webhook_secrets_by_team ON webhook_secrets (team_id, created_at_ms DESC);
  `,
  // Request rates are counted in memory (src/store/request-rates.ts): the per-minute rows go. Running attempts per
  // provider are kept by triggers, in the transaction of every change to an attempt, so that counting them is one
  // small read whatever the number of tasks in flight.
  `
  DELETE FROM usage_counters WHERE win LIKE 'minute:%';
  CREATE TABLE provider_running (
    provider_id TEXT PRIMARY KEY,
    n INTEGER NOT NULL -- attempts with outcome 'running'
  ) STRICT, WITHOUT ROWID;
  INSERT INTO provider_running (provider_id, n)
    SELECT provider_id, count(*) FROM task_attempts WHERE outcome = 'running' GROUP BY provider_id;
  CREATE TRIGGER provider_running_insert AFTER INSERT ON task_attempts WHEN new.outcome = 'running' BEGIN
    INSERT INTO provider_running (provider_id, n) VALUES (new.provider_id, 1) ON CONFLICT (provider_id) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER provider_running_update AFTER UPDATE OF outcome, provider_id ON task_attempts
    WHEN old.outcome = 'running' OR new.outcome = 'running' BEGIN
    UPDATE provider_running SET n = n - 1 WHERE provider_id = old.provider_id AND old.outcome = 'running';
    INSERT INTO provider_running (provider_id, n) SELECT new.provider_id, 1 WHERE new.outcome = 'running'
      ON CONFLICT (provider_id) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER provider_running_delete AFTER DELETE ON task_attempts WHEN old.outcome = 'running' BEGIN
    UPDATE provider_running SET n = n - 1 WHERE provider_id = old.provider_id;
  END;
  `,
  // The poller claims per provider, and a provider's webhook finds its job by upstream id: both over running
  // jobs only, so that finished tasks (most of the table) cost nothing.
  `
  CREATE INDEX tasks_poll_due ON tasks (provider_id, next_run_at_ms) WHERE status = 'processing' AND source_id IS NULL;
  CREATE INDEX tasks_running_jobs ON tasks (provider_id, upstream_id) WHERE status = 'processing';
  `,
  // A redelivery asked for while the event is being sent: noted here (when it was asked) instead of taking the
  // attempt's lease, so that the attempt is recorded and the event is sent once more after it.
  `
  ALTER TABLE outbox ADD COLUMN redeliver_at_ms INTEGER;
  `,
  // The circuit breakers' state shared by the replicas (src/store/rules/provider-health.ts): each pair's last
  // transition, its version, and the half-open probe's lease.
  `
  CREATE TABLE provider_health (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('closed', 'open')),
    since_ms INTEGER NOT NULL,
    until_ms INTEGER,
    reason TEXT,
    opened_by TEXT NOT NULL CHECK (opened_by IN ('submit', 'job')),
    pinned INTEGER NOT NULL CHECK (pinned IN (0, 1)), -- until_ms set by the provider's Retry-After
    probe_holder TEXT,
    probe_until_ms INTEGER,
    version INTEGER NOT NULL,
    PRIMARY KEY (provider, model)
  ) STRICT, WITHOUT ROWID;
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
