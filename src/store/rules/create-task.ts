// createTask: idempotency, then the cache (a stored result makes a hit, a running leader makes a follower), then a
// task of its own; its quotas charged in the same transaction. Each check-then-insert is made explicit for backends
// that do not lock the whole database on a write: the idempotency key and the cache key are locked (Tx.lock) before
// they are looked up, and the leader a follower joins is locked (FOR UPDATE), so that a leader finishing at the same
// moment either carries the new follower along or is not joined.
import { IdempotencyConflictError, type CacheLookup, type CreatedTask, type NewTask } from '../types';
import * as quota from './quota';
import { finished, moved, newReport } from './report';
import { toTask, utcDay, utcMonth, type InsertParams, type TaskRow } from './rows';
import type { Dialect, Tx } from './sql';

/** A result that may be served to an identical request: a completed task's own, unexpired video. */
export const FRESH_SOURCE =
  "cache_key = @key AND status = 'completed' AND source_id IS NULL AND asset_expired = 0 AND deleted_at_ms IS NULL AND completed_at_ms >= @since";
/** The generation an identical request may follow: the oldest running task of its own with this key. */
export const RUNNING_LEADER = `SELECT * FROM tasks WHERE cache_key = @key AND status IN ('pending', 'processing') AND source_id IS NULL
  ORDER BY created_at_ms, id LIMIT 1`;

const INSERT_TASK = `INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, callback_url, door, credits_reserved,
    credits_settled, quota_day, quota_month, attempt, provider_id, asset_key, asset_stored_at_ms, created_at_ms,
    updated_at_ms, completed_at_ms, next_run_at_ms, cache_key, cache_status, source_id)
  VALUES (@id, @owner_id, @key_id, @status, @progress, @model, @request_json, @callback_url, @door, @credits_reserved,
    @credits_settled, @quota_day, @quota_month, 0, @provider_id, @asset_key, @asset_stored_at_ms, @created_at_ms,
    @created_at_ms, @completed_at_ms, @created_at_ms, @cache_key, @cache_status, @source_id)`;

/** A new task row of any kind, in its quota windows; the caller charges the quotas. */
async function insertTask(tx: Tx, d: Dialect, { idempotency: _idempotency, ...task }: NewTask, row: Partial<InsertParams> = {}): Promise<TaskRow> {
  const params: InsertParams = {
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
  };
  if (!d.readBackInserts) return (await tx.get<TaskRow>(`${INSERT_TASK} RETURNING *`, params))!;
  await tx.run(INSERT_TASK, params);
  return (await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id: params.id }))!;
}

/** A hit serves the source's video; a follower shares the leader's generation; else a task of its own. See Store.createTask. */
export async function createTask(tx: Tx, d: Dialect, task: NewTask, lookup?: CacheLookup): Promise<CreatedTask> {
  const idem = task.idempotency;
  if (!idem) return createFresh(tx, d, task, lookup);
  // Concurrent retries under one key serialize here, and all but the first find the first one's task.
  await tx.lock(`idempotency:${task.owner_id}:${idem.key}`);
  const known = await tx.get<{ request_hash: string; task_id: string; created_at_ms: number }>(
    'SELECT request_hash, task_id, created_at_ms FROM idempotency_keys WHERE owner_id = @owner_id AND idempotency_key = @key',
    { owner_id: task.owner_id, key: idem.key },
  );
  if (known && known.created_at_ms >= idem.since_ms) {
    if (known.request_hash !== idem.request_hash) throw new IdempotencyConflictError(known.task_id);
    const original = await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id: known.task_id });
    // A deleted original cannot be answered, and a new task would charge a retry again.
    if (original?.deleted_at_ms != null) throw new IdempotencyConflictError(known.task_id, 'original_deleted');
    if (original) return { task: toTask(original), report: newReport() };
  }
  const created = await createFresh(tx, d, task, lookup);
  await tx.run(
    `INSERT INTO idempotency_keys (owner_id, idempotency_key, request_hash, task_id, created_at_ms)
     VALUES (@owner_id, @key, @request_hash, @task_id, @now)
     ON CONFLICT (owner_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash,
       task_id = excluded.task_id, created_at_ms = excluded.created_at_ms`,
    { owner_id: task.owner_id, key: idem.key, request_hash: idem.request_hash, task_id: created.task.id, now: task.created_at_ms },
  );
  return created;
}

async function createFresh(tx: Tx, d: Dialect, task: NewTask, lookup?: CacheLookup): Promise<CreatedTask> {
  const now = task.created_at_ms;
  const report = newReport();
  const created = async (row: TaskRow): Promise<CreatedTask> => {
    moved(report, 'reserved', row, null, row.credits_reserved);
    const made = row.status === 'completed' ? await finished(tx, report, row.id, null, now) : toTask(row);
    report.created.push(made);
    if (row.status === 'completed') moved(report, 'settled', row, null, row.credits_settled ?? 0, true);
    return { task: made, report };
  };
  const key = task.cache_key;
  if (lookup && key !== null) {
    // One creation per cache key at a time: two identical requests cannot both find nothing and both lead.
    await tx.lock(`cache:${key}`);
    const query = { key, since: lookup.fresh_since_ms, hint: lookup.source_hint ?? null };
    const source =
      (query.hint !== null ? await tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = @hint AND ${FRESH_SOURCE}`, query) : undefined) ??
      (await tx.get<TaskRow>(`SELECT * FROM tasks WHERE ${FRESH_SOURCE} ORDER BY completed_at_ms DESC LIMIT 1`, query));
    if (source) {
      const hit = await insertTask(tx, d, task, {
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
      await quota.serveHit(tx, hit, now);
      return created(hit);
    }
    const leader = await tx.get<TaskRow>(`${RUNNING_LEADER}${d.forUpdate}`, query);
    if (leader) {
      const follower = await insertTask(tx, d, task, {
        status: leader.status,
        progress: leader.progress,
        credits_reserved: lookup.hit_credits,
        cache_status: 'coalesced',
        source_id: leader.id,
      });
      await quota.reserveNew(tx, follower, now);
      return created(follower);
    }
  }
  const row = await insertTask(tx, d, task);
  await quota.reserveNew(tx, row, now);
  return created(row);
}
