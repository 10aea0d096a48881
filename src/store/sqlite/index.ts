import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  IdempotencyConflictError,
  QuotaExceededError,
  type AttemptOutcome,
  type AttemptRecord,
  type CacheLookup,
  type Cancellation,
  type ClaimedTask,
  type CreatedTask,
  type CreditMovement,
  type LedgerEntry,
  type NewTask,
  type ProviderScope,
  type Store,
  type TaskRecord,
  type TaskStatus,
  type TransitionReport,
  type UsageRow,
  type WorkPhase,
} from '../types';
import { createRequestRates } from '../request-rates';
import { FALLBACK_AUTOCHECKPOINT_PAGES, startCheckpointer } from './checkpointer';
import { migrate } from './migrations';
import { createQuota, utcDay, utcMonth } from './quota';
import { withTranslatedErrors } from './errors';
import { createTeamStatements } from './teams';
import { createOutbox } from './outbox';
import { createMetricsSnapshot } from './metrics-snapshot';

type TaskRow = Omit<TaskRecord, 'asset_expired'> & {
  asset_expired: number;
  quota_day: string;
  quota_month: string;
  lease_token: string | null;
  lease_until_ms: number | null;
};

function toTask(row: TaskRow): TaskRecord {
  const { lease_token: _token, lease_until_ms: _until, quota_day: _day, quota_month: _month, asset_expired, ...task } = row;
  return { ...task, asset_expired: asset_expired === 1 };
}

type InsertParams = Omit<NewTask, 'cache_status' | 'door'> & Pick<TaskRow,
  'status' | 'progress' | 'credits_settled' | 'provider_id' | 'asset_key' | 'asset_stored_at_ms' | 'completed_at_ms' | 'source_id' | 'quota_day' | 'quota_month'
> & { cache_status: TaskRecord['cache_status']; door: TaskRecord['door'] };

const NO_LEASE = 'lease_token = NULL, lease_until_ms = NULL';
/** The followers of the leader `@id`: tasks that share its generation and are not finished. */
const FOLLOWERS = "source_id = @id AND status IN ('pending', 'processing')";
/** A result that may be served to an identical request: a completed task's own, unexpired video. */
const FRESH_SOURCE = "cache_key = @key AND status = 'completed' AND source_id IS NULL AND asset_expired = 0 AND deleted_at_ms IS NULL AND completed_at_ms >= @since";

// `created_at_ms <= @before_ms` is implied by the OR; it is spelled out so the index can seek to the cursor.
const listTasksSql = (statusFilter: string) => `
  SELECT * FROM tasks
  WHERE owner_id = @owner_id ${statusFilter} AND (deleted_at_ms IS NULL OR @include_deleted = 1)
    AND created_at_ms <= @before_ms
    AND (created_at_ms < @before_ms OR (created_at_ms = @before_ms AND id < @before_id))
  ORDER BY created_at_ms DESC, id DESC
  LIMIT @limit`;
const listTasksAscSql = (statusFilter: string) => `
  SELECT * FROM tasks
  WHERE owner_id = @owner_id ${statusFilter} AND (deleted_at_ms IS NULL OR @include_deleted = 1)
    AND created_at_ms >= @after_ms
    AND (created_at_ms > @after_ms OR (created_at_ms = @after_ms AND id > @after_id))
  ORDER BY created_at_ms, id
  LIMIT @limit`;

/** How often the checkpointing thread copies the WAL back into the database file. */
const CHECKPOINT_INTERVAL_MS = 1000;
/** Lease the `@limit` oldest due, unleased tasks matching `filter` (see Store.claimDue). */
export const claimSql = (filter: string) => `
  UPDATE tasks SET lease_token = lower(hex(randomblob(16))), lease_until_ms = @now + @lease_ms
  WHERE id IN (
    SELECT id FROM tasks
    WHERE ${filter} AND source_id IS NULL AND next_run_at_ms <= @now AND (lease_until_ms IS NULL OR lease_until_ms < @now)
    ORDER BY next_run_at_ms
    LIMIT @limit)
  RETURNING *`;

/** The claim statement for a phase and provider scope. */
function claimStatement<S>(sql: { claimPending: S; claimProcessing: S; claimOfProvider: S; claimOfOtherProviders: S }, phase: WorkPhase, providers?: ProviderScope): S {
  if (phase === 'dispatch') return sql.claimPending;
  if (!providers) return sql.claimProcessing;
  return 'only' in providers ? sql.claimOfProvider : sql.claimOfOtherProviders;
}

export function createSqliteStore(file: string): Store {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // In WAL mode, NORMAL syncs at checkpoints, not at every commit: a commit survives a crash of the process (SIGKILL)
  // but may be lost on a power cut or an OS crash (https://www.sqlite.org/pragma.html#pragma_synchronous).
  db.pragma('synchronous = NORMAL');
  // Checkpoints (the fsyncs) run in a thread of their own; this connection checkpoints only past a far bound.
  db.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT_PAGES}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  try {
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }

  const checkpointer = startCheckpointer(file, CHECKPOINT_INTERVAL_MS, (message) => process.emitWarning(`WAL checkpoint failed: ${message}`));
  const quota = createQuota(db);
  const rates = createRequestRates();
  const teams = createTeamStatements(db);
  const outbox = createOutbox(db);
  const metricsSnapshot = createMetricsSnapshot(db, quota);
  const sql = {
    insertTask: db.prepare<[InsertParams], TaskRow>(
      `INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, callback_url, door, credits_reserved,
         credits_settled, quota_day, quota_month, attempt, provider_id, asset_key, asset_stored_at_ms, created_at_ms,
         updated_at_ms, completed_at_ms, next_run_at_ms, cache_key, cache_status, source_id)
       VALUES (@id, @owner_id, @key_id, @status, @progress, @model, @request_json, @callback_url, @door, @credits_reserved,
         @credits_settled, @quota_day, @quota_month, 0, @provider_id, @asset_key, @asset_stored_at_ms, @created_at_ms,
         @created_at_ms, @completed_at_ms, @created_at_ms, @cache_key, @cache_status, @source_id)
       RETURNING *`,
    ),
    hintedSource: db.prepare<[object], TaskRow>(`SELECT * FROM tasks WHERE id = @hint AND ${FRESH_SOURCE}`),
    freshSource: db.prepare<[object], TaskRow>(`SELECT * FROM tasks WHERE ${FRESH_SOURCE} ORDER BY completed_at_ms DESC LIMIT 1`),
    runningLeader: db.prepare<[object], TaskRow>(
      `SELECT * FROM tasks WHERE cache_key = @key AND status IN ('pending', 'processing') AND source_id IS NULL
       ORDER BY created_at_ms, id LIMIT 1`,
    ),
    getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
    listTasks: db.prepare<[object], TaskRow>(listTasksSql('')),
    listTasksWithStatus: db.prepare<[object], TaskRow>(listTasksSql('AND status = @status')),
    listTasksAsc: db.prepare<[object], TaskRow>(listTasksAscSql('')),
    listTasksAscWithStatus: db.prepare<[object], TaskRow>(listTasksAscSql('AND status = @status')),
    softDelete: db.prepare(
      `UPDATE tasks SET deleted_at_ms = @now, updated_at_ms = @now
       WHERE id = @id AND owner_id = @owner_id AND deleted_at_ms IS NULL AND status IN ('completed', 'failed', 'cancelled')`,
    ),
    liveUsersOfAsset: db.prepare<[string], number>('SELECT count(*) FROM tasks WHERE asset_key = ? AND deleted_at_ms IS NULL').pluck(),
    idempotencyKey: db.prepare<[object], { request_hash: string; task_id: string; created_at_ms: number }>(
      'SELECT request_hash, task_id, created_at_ms FROM idempotency_keys WHERE owner_id = @owner_id AND idempotency_key = @key',
    ),
    putIdempotencyKey: db.prepare(
      `INSERT INTO idempotency_keys (owner_id, idempotency_key, request_hash, task_id, created_at_ms)
       VALUES (@owner_id, @key, @request_hash, @task_id, @now)
       ON CONFLICT (owner_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash,
         task_id = excluded.task_id, created_at_ms = excluded.created_at_ms`,
    ),

    // Each claimed row gets its own random token (randomblob is evaluated per row). The status is spelled out
    // per phase so that the planner can use the partial index of processing tasks by provider.
    claimPending: db.prepare<[object], TaskRow>(claimSql("status = 'pending'")),
    claimProcessing: db.prepare<[object], TaskRow>(claimSql("status = 'processing'")),
    claimOfProvider: db.prepare<[object], TaskRow>(claimSql("status = 'processing' AND provider_id = @provider")),
    claimOfOtherProviders: db.prepare<[object], TaskRow>(
      claimSql("status = 'processing' AND (provider_id IS NULL OR provider_id NOT IN (SELECT value FROM json_each(@except)))"),
    ),
    pollJobNow: db.prepare<[object], string>(
      `UPDATE tasks SET next_run_at_ms = min(next_run_at_ms, @now)
       WHERE provider_id = @provider AND upstream_id = @upstream AND status = 'processing' RETURNING id`,
    ).pluck(),
    renewLeases: db.prepare(
      `UPDATE tasks SET lease_until_ms = @until
       WHERE (id, lease_token) IN (SELECT value ->> 0, value ->> 1 FROM json_each(@leases))`,
    ),
    releaseLease: db.prepare(
      `UPDATE tasks SET ${NO_LEASE}, next_run_at_ms = @next, updated_at_ms = @now
       WHERE id = @id AND lease_token = @token`,
    ),

    leasedPending: db.prepare<[object], TaskRow>(
      `SELECT * FROM tasks WHERE id = @id AND status = 'pending' AND lease_token = @token`,
    ),
    startAttempt: db.prepare(
      `UPDATE tasks SET attempt = attempt + 1, provider_id = @provider_id, upstream_id = NULL, updated_at_ms = @now,
         credits_reserved = max(credits_reserved, @credits)
       WHERE id = @id AND status = 'pending' AND lease_token = @token`,
    ),
    markSubmitted: db.prepare(
      `UPDATE tasks SET status = 'processing', upstream_id = @upstream_id, submitted_at_ms = @now, updated_at_ms = @now,
         progress = 0, ${NO_LEASE}, next_run_at_ms = @now
       WHERE id = @id AND status = 'pending' AND lease_token = @token`,
    ),
    recordProgress: db.prepare(
      `UPDATE tasks SET progress = max(progress, @progress), ${NO_LEASE}, next_run_at_ms = @next, updated_at_ms = @now
       WHERE id = @id AND status = 'processing' AND lease_token = @token`,
    ),
    leased: db.prepare<[object], TaskRow>(`SELECT * FROM tasks WHERE id = @id AND lease_token = @token`),
    /** The task's current attempt, while it runs: its provider, upstream job and price. */
    runningAttempt: db.prepare<[string], AttemptRecord>(
      `SELECT a.* FROM task_attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.n WHERE t.id = ? AND a.outcome = 'running'`,
    ),
    markCompleted: db.prepare(
      `UPDATE tasks SET status = 'completed', progress = 100, asset_key = @asset_key, asset_stored_at_ms = @now, completed_at_ms = @now,
         credits_settled = @settled,
         updated_at_ms = @now, error_code = NULL, error_message = NULL, ${NO_LEASE}
       WHERE id = @id AND status = 'processing' AND lease_token = @token`,
    ),
    markFailed: db.prepare(
      `UPDATE tasks SET status = 'failed', error_code = @code, error_message = @message, completed_at_ms = @now,
         updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id AND status IN ('pending', 'processing') AND lease_token = @token`,
    ),
    requeue: db.prepare(
      `UPDATE tasks SET status = 'pending', progress = 0, provider_id = NULL, upstream_id = NULL, error_code = @code,
         error_message = @message, next_run_at_ms = @next, updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id AND status IN ('pending', 'processing') AND lease_token = @token`,
    ),

    // The followers of a leader, carried along by its transitions (RETURNING: the rows after the change).
    mirrorFollowers: db.prepare(`UPDATE tasks SET status = @status, progress = 0, updated_at_ms = @now WHERE ${FOLLOWERS}`),
    followersProgress: db.prepare(`UPDATE tasks SET progress = max(progress, @progress), updated_at_ms = @now WHERE ${FOLLOWERS}`),
    completeFollowers: db.prepare<[object], TaskRow>(
      `UPDATE tasks SET status = 'completed', progress = 100, asset_key = @asset_key, asset_stored_at_ms = @now,
         completed_at_ms = @now, credits_settled = credits_reserved, provider_id = @provider_id, updated_at_ms = @now
       WHERE ${FOLLOWERS} RETURNING *`,
    ),
    failFollowers: db.prepare<[object], TaskRow>(
      `UPDATE tasks SET status = 'failed', error_code = @code, error_message = @message, completed_at_ms = @now, updated_at_ms = @now
       WHERE ${FOLLOWERS} RETURNING *`,
    ),
    // A cancelled leader's generation passes to one of its followers, the heir.
    followers: db.prepare<[object], TaskRow>(`SELECT * FROM tasks WHERE ${FOLLOWERS} ORDER BY created_at_ms, id`),
    moveFollowers: db.prepare(`UPDATE tasks SET source_id = @heir WHERE ${FOLLOWERS} AND id <> @heir`),
    adoptJob: db.prepare(
      `UPDATE tasks SET status = 'processing', source_id = NULL, cache_status = 'miss', attempt = attempt + 1,
         provider_id = @provider_id, upstream_id = @upstream_id, submitted_at_ms = @submitted_at_ms, progress = @progress,
         credits_reserved = max(credits_reserved, @credits), next_run_at_ms = @now, updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id`,
    ),
    generateAnew: db.prepare(
      `UPDATE tasks SET status = 'pending', progress = 0, source_id = NULL, cache_status = 'miss', next_run_at_ms = @now,
         updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id`,
    ),

    cancel: db.prepare(
      `UPDATE tasks SET status = 'cancelled', completed_at_ms = @now, updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id AND owner_id = @owner_id AND status IN ('pending', 'processing')`,
    ),

    listAssetsStoredBefore: db.prepare<[number, number], TaskRow>(
      `SELECT * FROM tasks
       WHERE status = 'completed' AND source_id IS NULL AND asset_key IS NOT NULL AND asset_expired = 0 AND completed_at_ms < ?
       ORDER BY completed_at_ms
       LIMIT ?`,
    ),
    markAssetExpired: db.prepare<[string]>('UPDATE tasks SET asset_expired = 1 WHERE asset_key = ?'),

    insertAttempt: db.prepare(
      `INSERT INTO task_attempts (task_id, n, provider_id, micro_usd, credits, started_at_ms, outcome)
       SELECT id, attempt, @provider_id, @micro_usd, @credits, @now, 'running' FROM tasks WHERE id = @id`,
    ),
    setAttemptUpstream: db.prepare(
      `UPDATE task_attempts SET upstream_id = @upstream_id
       WHERE task_id = @id AND n = (SELECT attempt FROM tasks WHERE id = @id)`,
    ),
    endAttempt: db.prepare(
      `UPDATE task_attempts SET outcome = @outcome, ended_at_ms = @now, error_code = @code, error_message = @message
       WHERE task_id = @id AND n = (SELECT attempt FROM tasks WHERE id = @id) AND outcome = 'running'`,
    ),
    listAttempts: db.prepare<[string], AttemptRecord>(
      'SELECT * FROM task_attempts WHERE task_id IN (SELECT value FROM json_each(?)) ORDER BY task_id, n',
    ),
    // One task's (a status poll's): no JSON array to build and walk.
    listAttemptsOfTask: db.prepare<[string], AttemptRecord>('SELECT * FROM task_attempts WHERE task_id = ? ORDER BY n'),
    // provider_running is kept by triggers on task_attempts (migrations.ts).
    runningOn: db.prepare<[string], number>('SELECT n FROM provider_running WHERE provider_id = ?').pluck(),
    countActiveByProvider: db.prepare<[], { provider_id: string; n: number }>('SELECT provider_id, n FROM provider_running WHERE n > 0'),

    listLedger: db.prepare<[string], LedgerEntry>('SELECT * FROM ledger WHERE team_id = ? ORDER BY id'),
    usageByDay: db.prepare<[string, string, string], UsageRow>(
      `SELECT day, model, provider_id, count(*) AS tasks, sum(credits) AS credits FROM ledger
       WHERE team_id = ? AND kind = 'settle' AND day BETWEEN ? AND ?
       GROUP BY day, model, provider_id ORDER BY day DESC, model, provider_id`,
    ),
    listOpenTasks: db.prepare<[string], TaskRow>(
      `SELECT * FROM tasks WHERE owner_id = ? AND status IN ('pending', 'processing') ORDER BY created_at_ms, id`,
    ),
  };

  const changed = (result: Database.RunResult) => result.changes === 1;

  type Params = { id: string; now: number; code?: string | null; message?: string | null; [k: string]: unknown };
  const endAttempt = (outcome: AttemptOutcome) => (p: Params) =>
    void sql.endAttempt.run({ outcome, id: p.id, now: p.now, code: p.code ?? null, message: p.message ?? null });

  const newReport = (): TransitionReport => ({ created: [], finished: [], credits: [], events: [] });
  /** A movement of credits, in the report (none for zero credits). */
  function moved(report: TransitionReport, kind: CreditMovement['kind'], t: TaskRow, providerId: string | null, credits: number, cacheHit = false) {
    if (credits !== 0) report.credits.push({ kind, team_id: t.owner_id, model: t.model, provider_id: providerId, cache_hit: cacheHit, credits });
  }
  /** The task (re-read after its transition) finished: in the report, with its outbox event. */
  function finished(report: TransitionReport, id: string, providerId: string | null, now: number): TaskRecord {
    const task = toTask(sql.getTask.get(id)!);
    report.finished.push({ task, provider_id: providerId });
    const event = outbox.write(task, now);
    if (event) report.events.push(event);
    return task;
  }

  /** A new task row of any kind, in its quota windows; the caller charges the quotas. */
  function insertTask({ idempotency: _idempotency, ...task }: NewTask, row: Partial<InsertParams> = {}): TaskRow {
    return sql.insertTask.get({
      ...task,
      door: task.door ?? 'native',
      status: 'pending',
      progress: 0,
      credits_settled: null,
      provider_id: null,
      asset_key: null,
      asset_stored_at_ms: null,
      completed_at_ms: null,
      source_id: null,
      quota_day: utcDay(task.created_at_ms),
      quota_month: utcMonth(task.created_at_ms),
      ...row,
    })!;
  }

  /** A hit serves the source's video; a follower shares the leader's generation; else a task of its own. */
  function createTask(task: NewTask, lookup?: CacheLookup): CreatedTask {
    const idem = task.idempotency;
    if (!idem) return createFresh(task, lookup);
    // Inside the write transaction: concurrent retries under one key serialize here, and all but the first
    // find the first one's task.
    const known = sql.idempotencyKey.get({ owner_id: task.owner_id, key: idem.key });
    if (known && known.created_at_ms >= idem.since_ms) {
      if (known.request_hash !== idem.request_hash) throw new IdempotencyConflictError(known.task_id);
      const original = sql.getTask.get(known.task_id);
      // A deleted original cannot be answered, and a new task would charge a retry again.
      if (original?.deleted_at_ms != null) throw new IdempotencyConflictError(known.task_id, 'original_deleted');
      if (original) return { task: toTask(original), report: newReport() };
    }
    const created = createFresh(task, lookup);
    sql.putIdempotencyKey.run({ owner_id: task.owner_id, key: idem.key, request_hash: idem.request_hash, task_id: created.task.id, now: task.created_at_ms });
    return created;
  }

  function createFresh(task: NewTask, lookup?: CacheLookup): CreatedTask {
    const now = task.created_at_ms;
    const report = newReport();
    const created = (row: TaskRow): CreatedTask => {
      moved(report, 'reserved', row, null, row.credits_reserved);
      const made = row.status === 'completed' ? finished(report, row.id, null, now) : toTask(row);
      report.created.push(made);
      if (row.status === 'completed') moved(report, 'settled', row, null, row.credits_settled ?? 0, true);
      return { task: made, report };
    };
    const key = task.cache_key;
    if (lookup && key !== null) {
      const query = { key, since: lookup.fresh_since_ms, hint: lookup.source_hint ?? null };
      const source = (query.hint !== null ? sql.hintedSource.get(query) : undefined) ?? sql.freshSource.get(query);
      if (source) {
        const hit = insertTask(task, {
          status: 'completed',
          progress: 100,
          credits_reserved: lookup.hit_credits,
          credits_settled: lookup.hit_credits,
          asset_key: source.asset_key,
          asset_stored_at_ms: source.asset_stored_at_ms,
          completed_at_ms: now,
          cache_status: 'hit',
          source_id: source.id,
        });
        quota.serveHit(hit, now);
        return created(hit);
      }
      const leader = sql.runningLeader.get(query);
      if (leader) {
        const follower = insertTask(task, {
          status: leader.status,
          progress: leader.progress,
          credits_reserved: lookup.hit_credits,
          cache_status: 'coalesced',
          source_id: leader.id,
        });
        quota.reserveNew(follower, now);
        return created(follower);
      }
    }
    const row = insertTask(task);
    quota.reserveNew(row, now);
    return created(row);
  }

  /** The heir takes the submitted job over, reserving its price; false (nothing changed) when its quota cannot. */
  function adopt(heir: TaskRow, leader: TaskRow, job: AttemptRecord, now: number): number | false {
    const extra = Math.max(0, job.credits - heir.credits_reserved);
    try {
      // A savepoint: a refused reservation leaves nothing behind.
      db.transaction(() => {
        const adopted = { ...heir, attempt: heir.attempt + 1, provider_id: job.provider_id };
        if (extra > 0) quota.grow(adopted, extra, now, 'adopted the generation of a cancelled task');
        sql.adoptJob.run({ ...job, id: heir.id, submitted_at_ms: leader.submitted_at_ms, progress: leader.progress, now });
        sql.insertAttempt.run({ ...job, id: heir.id, now });
        sql.setAttemptUpstream.run({ id: heir.id, upstream_id: job.upstream_id });
      })();
      return extra;
    } catch (err) {
      if (err instanceof QuotaExceededError) return false;
      throw err;
    }
  }

  /**
   * A leader that ended on its own account (cancelled, or out of quota) passes its generation on. The
   * oldest follower whose quota covers the job's price adopts a submitted job; the others follow it. With
   * no job yet, or nobody able to pay for it, the oldest is queued to generate anew (and meets its own
   * quota when it picks a provider). Returns the heir that adopted the job, if one did.
   */
  function handOver(leader: TaskRow, job: AttemptRecord | undefined, now: number, report: TransitionReport): Cancellation['heir'] {
    const followers = sql.followers.all({ id: leader.id });
    if (followers.length === 0) return null;
    if (leader.status === 'processing' && job?.upstream_id) {
      for (const heir of followers) {
        const reservedMore = adopt(heir, leader, job, now);
        if (reservedMore === false) continue;
        sql.moveFollowers.run({ id: leader.id, heir: heir.id });
        moved(report, 'reserved', heir, job.provider_id, reservedMore);
        return { task: toTask(sql.getTask.get(heir.id)!), reserved_more: reservedMore };
      }
    }
    const heir = followers[0]!;
    sql.moveFollowers.run({ id: leader.id, heir: heir.id });
    sql.generateAnew.run({ id: heir.id, now });
    sql.mirrorFollowers.run({ id: heir.id, status: 'pending', now });
    return null;
  }

  const tx = {
    createTask: db.transaction(createTask),
    startAttempt: db.transaction((p: Params & { credits: number; provider_id: string; max_concurrent?: number }): 'started' | 'lost' | 'provider_full' => {
      const before = sql.leasedPending.get(p);
      if (!before) return 'lost';
      if (p.max_concurrent !== undefined && (sql.runningOn.get(p.provider_id) ?? 0) >= p.max_concurrent) return 'provider_full';
      const extra = p.credits - before.credits_reserved;
      const note = before.attempt === 0 ? 'a follower generating anew' : 'failover to a dearer provider';
      if (extra > 0) quota.grow({ ...before, attempt: before.attempt + 1, provider_id: p.provider_id }, extra, p.now, note);
      endAttempt('retried')({ id: p.id, now: p.now, code: 'abandoned', message: 'superseded by a new attempt' });
      sql.startAttempt.run(p);
      sql.insertAttempt.run(p);
      return 'started';
    }),
    markSubmitted: db.transaction((p: Params) => {
      if (!changed(sql.markSubmitted.run(p))) return false;
      sql.setAttemptUpstream.run(p);
      sql.mirrorFollowers.run({ ...p, status: 'processing' });
      return true;
    }),
    recordProgress: db.transaction((p: Params) => {
      if (!changed(sql.recordProgress.run(p))) return false;
      sql.followersProgress.run(p);
      return true;
    }),
    requeue: db.transaction((p: Params) => {
      if (!changed(sql.requeue.run(p))) return false;
      endAttempt('retried')(p);
      sql.mirrorFollowers.run({ ...p, status: 'pending' });
      return true;
    }),
    markCompleted: db.transaction((p: Params) => {
      const before = sql.leased.get(p);
      if (!before) return false;
      const settled = sql.runningAttempt.get(p.id)?.credits ?? before.credits_reserved;
      if (!changed(sql.markCompleted.run({ ...p, settled }))) return false;
      endAttempt('completed')(p);
      quota.settle(before, settled, p.now);
      const report = newReport();
      finished(report, p.id, before.provider_id, p.now);
      moved(report, 'settled', before, before.provider_id, settled);
      moved(report, 'released', before, before.provider_id, before.credits_reserved - settled);
      const followers = sql.completeFollowers.all({ ...p, provider_id: before.provider_id });
      for (const f of followers) {
        quota.settle(f, f.credits_reserved, p.now);
        finished(report, f.id, before.provider_id, p.now);
        moved(report, 'settled', f, before.provider_id, f.credits_reserved);
      }
      return report;
    }),
    markFailed: db.transaction((p: Params & { hand_over: boolean }) => {
      const before = sql.leased.get(p);
      const job = p.hand_over ? sql.runningAttempt.get(p.id) : undefined; // read before the attempt ends
      if (!before || !changed(sql.markFailed.run(p))) return false;
      endAttempt('failed')(p);
      quota.release(before, p.now);
      const report = newReport();
      finished(report, p.id, before.provider_id, p.now);
      moved(report, 'released', before, before.provider_id, before.credits_reserved);
      if (p.hand_over) {
        handOver(before, job, p.now, report);
        return report;
      }
      const followers = sql.failFollowers.all(p);
      for (const f of followers) {
        quota.release(f, p.now);
        finished(report, f.id, before.provider_id, p.now);
        moved(report, 'released', f, before.provider_id, f.credits_reserved);
      }
      return report;
    }),
    // SELECT + UPDATE under one write lock: the caller gets the record as it was before cancelling.
    cancel: db.transaction((id: string, ownerId: string, now: number) => {
      const before = sql.getTask.get(id);
      const job = sql.runningAttempt.get(id);
      if (!before || !changed(sql.cancel.run({ id, owner_id: ownerId, now }))) return undefined;
      endAttempt('cancelled')({ id, now });
      quota.release(before, now);
      const report = newReport();
      finished(report, id, before.provider_id, now);
      moved(report, 'released', before, before.provider_id, before.credits_reserved);
      // A follower owns no job; a leader's job is abandoned unless an heir adopts it.
      const heir = before.source_id === null ? handOver(before, job, now, report) : null;
      return { report, task: toTask(before), abandon_job: before.source_id === null && heir === null, heir };
    }),
  };

  return withTranslatedErrors({
    ...teams,
    ...outbox.statements,

    async admitRequest(key, team, kind, nowMs) {
      return rates.admit(key, team, kind, nowMs);
    },
    async quotaUsage(scope, id, nowMs) {
      return {
        ...quota.usage({ kind: scope, id }, nowMs),
        reads_minute: rates.used(scope, id, 'read', nowMs),
        submits_minute: rates.used(scope, id, 'submit', nowMs),
      };
    },
    async listLedger(teamId) {
      return sql.listLedger.all(teamId);
    },
    async adjustCredits(teamId, credits, note, nowMs) {
      return quota.adjust.immediate(teamId, credits, note, nowMs);
    },
    async usageByDay(teamId, fromDay, toDay) {
      return sql.usageByDay.all(teamId, fromDay, toDay);
    },
    async listOpenTasks(teamId) {
      return sql.listOpenTasks.all(teamId).map(toTask);
    },
    async recomputeUsage() {
      return quota.recompute.immediate();
    },

    async createTask(task, lookup) {
      return tx.createTask.immediate(task, lookup);
    },
    async cacheOutlook(cacheKey, freshSinceMs) {
      const query = { key: cacheKey, since: freshSinceMs };
      if (sql.freshSource.get(query)) return 'hit';
      return sql.runningLeader.get(query) ? 'coalesced' : null;
    },
    async getTask(id) {
      const row = sql.getTask.get(id);
      return row && toTask(row);
    },
    async listTasks(query) {
      if (query.order === 'asc') {
        return (query.status ? sql.listTasksAscWithStatus : sql.listTasksAsc)
          .all({
            owner_id: query.owner_id,
            status: query.status,
            limit: query.limit,
            include_deleted: query.include_deleted ? 1 : 0,
            // Without a cursor, start from the oldest task.
            after_ms: query.before?.created_at_ms ?? -1,
            after_id: query.before?.id ?? '',
          })
          .map(toTask);
      }
      return (query.status ? sql.listTasksWithStatus : sql.listTasks)
        .all({
          owner_id: query.owner_id,
          status: query.status,
          limit: query.limit,
          include_deleted: query.include_deleted ? 1 : 0,
          // Without a cursor, start from the newest task.
          before_ms: query.before?.created_at_ms ?? Number.MAX_SAFE_INTEGER,
          before_id: query.before?.id ?? '',
        })
        .map(toTask);
    },
    async deleteTask(id, ownerId, nowMs) {
      return db.transaction(() => {
        if (!changed(sql.softDelete.run({ id, owner_id: ownerId, now: nowMs }))) return undefined;
        const task = toTask(sql.getTask.get(id)!);
        const orphaned = task.asset_key !== null && sql.liveUsersOfAsset.get(task.asset_key) === 0;
        return { task, asset_orphaned: orphaned };
      }).immediate();
    },

    async claimDue(phase, limit, leaseMs, nowMs, providers) {
      const scope = providers && ('only' in providers ? { provider: providers.only } : { except: JSON.stringify(providers.except) });
      const rows = claimStatement(sql, phase, providers).all({ limit, lease_ms: leaseMs, now: nowMs, ...scope });
      // RETURNING yields rows in no particular order.
      rows.sort((a, b) => a.next_run_at_ms - b.next_run_at_ms);
      return rows.map((row): ClaimedTask => ({ ...toTask(row), lease_token: row.lease_token! }));
    },
    async renewLeases(leases, leaseUntilMs) {
      if (leases.length === 0) return 0;
      const pairs = JSON.stringify(leases.map((l) => [l.id, l.lease_token]));
      return sql.renewLeases.run({ leases: pairs, until: leaseUntilMs }).changes;
    },
    async pollJobNow(providerId, upstreamId, nowMs) {
      return sql.pollJobNow.get({ provider: providerId, upstream: upstreamId, now: nowMs });
    },
    async releaseLease(id, leaseToken, nextRunAtMs, nowMs) {
      return changed(sql.releaseLease.run({ id, token: leaseToken, next: nextRunAtMs, now: nowMs }));
    },

    async startAttempt(id, leaseToken, providerId, { micro_usd, credits, max_concurrent }, nowMs) {
      return tx.startAttempt.immediate({ id, token: leaseToken, provider_id: providerId, micro_usd, credits, max_concurrent, now: nowMs });
    },
    async markSubmitted(id, leaseToken, upstreamId, nowMs) {
      return tx.markSubmitted.immediate({ id, token: leaseToken, upstream_id: upstreamId, now: nowMs });
    },
    async recordProgress(id, leaseToken, progress, nextRunAtMs, nowMs) {
      return tx.recordProgress.immediate({ id, token: leaseToken, progress, next: nextRunAtMs, now: nowMs });
    },
    async markCompleted(id, leaseToken, assetKey, nowMs) {
      return tx.markCompleted.immediate({ id, token: leaseToken, asset_key: assetKey, now: nowMs });
    },
    async markFailed(id, leaseToken, { code, message }, nowMs, options) {
      return tx.markFailed.immediate({ id, token: leaseToken, code, message, now: nowMs, hand_over: options?.hand_over ?? false });
    },
    async requeue(id, leaseToken, { code, message }, nextRunAtMs, nowMs) {
      return tx.requeue.immediate({ id, token: leaseToken, code, message, next: nextRunAtMs, now: nowMs });
    },
    async cancel(id, ownerId, nowMs) {
      return tx.cancel.immediate(id, ownerId, nowMs);
    },

    async listAttempts(taskIds) {
      if (taskIds.length === 1) return sql.listAttemptsOfTask.all(taskIds[0]!);
      return sql.listAttempts.all(JSON.stringify(taskIds));
    },
    async countActiveByProvider() {
      return new Map(sql.countActiveByProvider.all().map((r) => [r.provider_id, r.n]));
    },

    metricsSnapshot: async (nowMs) => metricsSnapshot(nowMs),

    async listAssetsStoredBefore(beforeMs, limit) {
      return sql.listAssetsStoredBefore.all(beforeMs, limit).map(toTask);
    },
    async markAssetExpired(assetKey) {
      sql.markAssetExpired.run(assetKey);
    },

    async close() {
      await checkpointer.stop();
      db.close();
    },
  });
}
