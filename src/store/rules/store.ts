// The Store, written once over a Backend: every rule of the contract (src/store/types.ts) is here or in the modules it
// assembles; sqlite/ and postgres/ only open a database, keep its schema and run SQL.
import type { AttemptRecord, ClaimedTask, LedgerEntry, ProviderScope, Store, UsageRow, WorkPhase } from '../types';
import { createRequestRates } from '../request-rates';
import { createTask, FRESH_SOURCE, RUNNING_LEADER } from './create-task';
import { metricsSnapshot } from './metrics-snapshot';
import { createOutboxMethods } from './outbox';
import { createProviderHealthMethods } from './provider-health';
import * as quota from './quota';
import { toTask, type TaskRow } from './rows';
import type { Backend, Dialect } from './sql';
import { createTeamMethods } from './teams';
import { createTransitions, refusal } from './transitions';

/** Lease the `@limit` oldest due, unleased tasks matching `filter` (see Store.claimDue), in the backend's dialect. */
export const claimSql = (d: Dialect, filter: string) => `
  UPDATE tasks SET lease_token = ${d.randomToken}, lease_until_ms = CAST(@now AS BIGINT) + CAST(@lease_ms AS BIGINT)
  WHERE id IN (
    SELECT id FROM tasks
    WHERE ${filter} AND source_id IS NULL AND next_run_at_ms <= @now AND (lease_until_ms IS NULL OR lease_until_ms < @now)
    ORDER BY next_run_at_ms
    LIMIT @limit${d.skipLocked})
  RETURNING *`;

/** The claim's filter for a phase and provider scope. The status is spelled out per phase, for the partial indexes. */
function claimFilter(d: Dialect, phase: WorkPhase, providers?: ProviderScope): string {
  if (phase === 'dispatch') return "status = 'pending'";
  if (!providers) return "status = 'processing'";
  return 'only' in providers
    ? "status = 'processing' AND provider_id = @provider"
    : `status = 'processing' AND (provider_id IS NULL OR provider_id NOT IN ${d.jsonTexts('@except')})`;
}

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

/** The Store over a backend; `close` closes the backend. */
export function createStore(backend: Backend): Store {
  const { read, transaction, dialect: d } = backend;
  const rates = createRequestRates();
  const rules = createTransitions(d);
  const getRow = (id: string) => read.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id });

  return {
    ...createTeamMethods(backend),
    ...createOutboxMethods(backend),
    ...createProviderHealthMethods(backend),

    async metricsSnapshot(nowMs) {
      return metricsSnapshot(read, nowMs);
    },
    async admitRequest(key, team, kind, nowMs) {
      return rates.admit(key, team, kind, nowMs);
    },
    async quotaUsage(scope, id, nowMs) {
      return {
        ...(await quota.usage(read, { kind: scope, id }, nowMs)),
        reads_minute: rates.used(scope, id, 'read', nowMs),
        submits_minute: rates.used(scope, id, 'submit', nowMs),
      };
    },
    async listLedger(teamId) {
      return read.all<LedgerEntry>('SELECT * FROM ledger WHERE team_id = @team ORDER BY id', { team: teamId });
    },
    async adjustCredits(teamId, credits, note, nowMs) {
      return quota.adjust(backend, teamId, credits, note, nowMs);
    },
    async usageByDay(teamId, fromDay, toDay) {
      return read.all<UsageRow>(
        `SELECT day, model, provider_id, count(*) AS tasks, sum(credits) AS credits FROM ledger
         WHERE team_id = @team AND kind = 'settle' AND day BETWEEN @from AND @to
         GROUP BY day, model, provider_id ORDER BY day DESC, model, provider_id`,
        { team: teamId, from: fromDay, to: toDay },
      );
    },
    async listOpenTasks(teamId) {
      const rows = await read.all<TaskRow>(`SELECT * FROM tasks WHERE owner_id = @team AND status IN ('pending', 'processing') ORDER BY created_at_ms, id`, { team: teamId });
      return rows.map(toTask);
    },
    async recomputeUsage() {
      return quota.recompute(backend);
    },

    async createTask(task, lookup) {
      return transaction((tx) => createTask(tx, d, task, lookup));
    },
    async cacheOutlook(cacheKey, freshSinceMs) {
      const query = { key: cacheKey, since: freshSinceMs };
      if (await read.get(`SELECT id FROM tasks WHERE ${FRESH_SOURCE} LIMIT 1`, query)) return 'hit';
      return (await read.get(RUNNING_LEADER, query)) ? 'coalesced' : null;
    },
    async getTask(id) {
      const row = await getRow(id);
      return row && toTask(row);
    },
    async listTasks(query) {
      const common = { owner_id: query.owner_id, status: query.status ?? null, limit: query.limit, include_deleted: query.include_deleted ? 1 : 0 };
      const filter = query.status ? 'AND status = @status' : '';
      const rows =
        query.order === 'asc'
          ? // Without a cursor, start from the oldest task.
            await read.all<TaskRow>(listTasksAscSql(filter), { ...common, after_ms: query.before?.created_at_ms ?? -1, after_id: query.before?.id ?? '' })
          : // Without a cursor, start from the newest task.
            await read.all<TaskRow>(listTasksSql(filter), { ...common, before_ms: query.before?.created_at_ms ?? Number.MAX_SAFE_INTEGER, before_id: query.before?.id ?? '' });
      return rows.map(toTask);
    },
    async deleteTask(id, ownerId, nowMs) {
      return transaction(async (tx) => {
        const changed = await tx.run(
          `UPDATE tasks SET deleted_at_ms = @now, updated_at_ms = @now
           WHERE id = @id AND owner_id = @owner_id AND deleted_at_ms IS NULL AND status IN ('completed', 'failed', 'cancelled')`,
          { id, owner_id: ownerId, now: nowMs },
        );
        if (changed !== 1) return undefined;
        const task = toTask((await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id }))!);
        const live = task.asset_key === null ? 1 : (await tx.get<{ n: number }>('SELECT count(*) AS n FROM tasks WHERE asset_key = @key AND deleted_at_ms IS NULL', { key: task.asset_key }))!.n;
        return { task, asset_orphaned: task.asset_key !== null && live === 0 };
      });
    },

    async claimDue(phase, limit, leaseMs, nowMs, providers) {
      const scope = providers && ('only' in providers ? { provider: providers.only } : { except: JSON.stringify(providers.except) });
      // One statement: its own transaction.
      const rows = await read.all<TaskRow>(claimSql(d, claimFilter(d, phase, providers)), { limit, lease_ms: leaseMs, now: nowMs, ...scope });
      // RETURNING yields rows in no particular order: oldest due first, then by creation.
      rows.sort((a, b) => a.next_run_at_ms - b.next_run_at_ms || a.created_at_ms - b.created_at_ms || (a.id < b.id ? -1 : 1));
      return rows.map((row): ClaimedTask => ({ ...toTask(row), lease_token: row.lease_token! }));
    },
    async renewLeases(leases, leaseUntilMs) {
      if (leases.length === 0) return 0;
      const pairs = JSON.stringify(leases.map((l) => [l.id, l.lease_token]));
      return read.run(`UPDATE tasks SET lease_until_ms = @until WHERE (id, lease_token) IN ${d.jsonPairs('@leases')}`, { leases: pairs, until: leaseUntilMs });
    },
    async pollJobNow(providerId, upstreamId, nowMs) {
      const row = await read.get<{ id: string }>(
        `UPDATE tasks SET next_run_at_ms = ${d.least('next_run_at_ms', '@now')}
         WHERE provider_id = @provider AND upstream_id = @upstream AND status = 'processing' RETURNING id`,
        { provider: providerId, upstream: upstreamId, now: nowMs },
      );
      return row?.id;
    },
    async releaseLease(id, leaseToken, nextRunAtMs, nowMs) {
      const changed = await read.run(
        `UPDATE tasks SET lease_token = NULL, lease_until_ms = NULL, next_run_at_ms = @next, updated_at_ms = @now WHERE id = @id AND lease_token = @token`,
        { id, token: leaseToken, next: nextRunAtMs, now: nowMs },
      );
      return changed === 1 ? 'done' : refusal(read, id, leaseToken);
    },

    async startAttempt(id, leaseToken, providerId, { micro_usd, credits, max_concurrent }, nowMs) {
      return transaction((tx) => rules.startAttempt(tx, { id, token: leaseToken, provider_id: providerId, micro_usd, credits, max_concurrent, now: nowMs }));
    },
    async markSubmitted(id, leaseToken, upstreamId, nowMs) {
      return transaction((tx) => rules.markSubmitted(tx, { id, token: leaseToken, upstream_id: upstreamId, now: nowMs }));
    },
    async recordProgress(id, leaseToken, progress, nextRunAtMs, nowMs) {
      return transaction((tx) => rules.recordProgress(tx, { id, token: leaseToken, progress, next: nextRunAtMs, now: nowMs }));
    },
    async markCompleted(id, leaseToken, assetKey, nowMs) {
      return transaction((tx) => rules.markCompleted(tx, { id, token: leaseToken, asset_key: assetKey, now: nowMs }));
    },
    async markFailed(id, leaseToken, { code, message }, nowMs, options) {
      return transaction((tx) => rules.markFailed(tx, { id, token: leaseToken, code, message, now: nowMs, hand_over: options?.hand_over ?? false }));
    },
    async requeue(id, leaseToken, { code, message }, nextRunAtMs, nowMs) {
      return transaction((tx) => rules.requeue(tx, { id, token: leaseToken, code, message, next: nextRunAtMs, now: nowMs }));
    },
    async cancel(id, ownerId, nowMs) {
      return transaction((tx) => rules.cancel(tx, id, ownerId, nowMs));
    },

    async listAttempts(taskIds) {
      if (taskIds.length === 1) return read.all<AttemptRecord>('SELECT * FROM task_attempts WHERE task_id = @id ORDER BY n', { id: taskIds[0] });
      return read.all<AttemptRecord>(`SELECT * FROM task_attempts WHERE task_id IN ${d.jsonTexts('@ids')} ORDER BY task_id, n`, { ids: JSON.stringify(taskIds) });
    },
    async countActiveByProvider() {
      const rows = await read.all<{ provider_id: string; n: number }>('SELECT provider_id, n FROM provider_running WHERE n > 0');
      return new Map(rows.map((r) => [r.provider_id, r.n]));
    },

    async listAssetsStoredBefore(beforeMs, limit) {
      const rows = await read.all<TaskRow>(
        `SELECT * FROM tasks
         WHERE status = 'completed' AND source_id IS NULL AND asset_key IS NOT NULL AND asset_expired = 0 AND completed_at_ms < @before
         ORDER BY completed_at_ms
         LIMIT @limit`,
        { before: beforeMs, limit },
      );
      return rows.map(toTask);
    },
    async markAssetExpired(assetKey) {
      await read.run('UPDATE tasks SET asset_expired = 1 WHERE asset_key = @key', { key: assetKey });
    },

    async close() {
      await backend.close();
    },
  };
}
