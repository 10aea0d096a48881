// Quota counters and the credit ledger. Each charge is one conditional upsert (`used + delta <= limit`), run inside
// the caller's transaction, so that concurrent submissions can never overspend (PostgreSQL re-checks the condition
// on the latest row version after waiting for its lock); every movement of credits is also an append-only ledger
// row, from which the counters can be rebuilt. Counters are always charged in one order (the running count, then the
// day, then the month; team before key), so that two transactions never wait for each other in a cycle.
import { QuotaExceededError, type LedgerEntry, type LedgerKind, type QuotaName, type QuotaUsage } from '../types';
import type { Backend, Sql, Tx } from './sql';
import { utcDay, utcMonth } from './rows';

type Limits = Record<QuotaName, number | null>;
type Scope = { kind: 'team' | 'key'; id: string };

/** The columns of a task the quota rules read. */
export interface TaskQuotaRow {
  id: string;
  owner_id: string;
  key_id: string;
  model: string;
  quota_day: string;
  quota_month: string;
  credits_reserved: number;
  attempt: number;
  provider_id: string | null;
}

const ADD = `INSERT INTO usage_counters (scope, win, used) SELECT CAST(@scope AS TEXT), CAST(@win AS TEXT), CAST(@delta AS BIGINT)
    WHERE CAST(@delta AS BIGINT) <= 0 OR CAST(@lim AS BIGINT) IS NULL OR CAST(@delta AS BIGINT) <= CAST(@lim AS BIGINT)
  ON CONFLICT (scope, win) DO UPDATE SET used = usage_counters.used + CAST(@delta AS BIGINT)
    WHERE CAST(@delta AS BIGINT) <= 0 OR CAST(@lim AS BIGINT) IS NULL OR usage_counters.used + CAST(@delta AS BIGINT) <= CAST(@lim AS BIGINT)`;
const USED = 'SELECT used FROM usage_counters WHERE scope = @scope AND win = @win';
const LIMIT_COLUMNS = 'credits_per_day, credits_per_month, max_concurrent, reads_per_minute, submits_per_minute';
const LEDGER = `INSERT INTO ledger (team_id, key_id, task_id, attempt, kind, credits, day, model, provider_id, note, created_at_ms)
  VALUES (@team_id, @key_id, @task_id, @attempt, @kind, @credits, @day, @model, @provider_id, @note, @now)`;
// RETURNING only where the id is wanted: SQLite's RETURNING costs more than the insert itself.
const LEDGER_RETURNING_ID = `${LEDGER} RETURNING id`;

const scopeKey = (s: Scope) => `${s.kind}:${s.id}`;
const scopesOf = (t: TaskQuotaRow): Scope[] => [{ kind: 'team', id: t.owner_id }, { kind: 'key', id: t.key_id }];
/** The changes to a task's counters: the running count by `active`, its credit windows by `credits`. */
const changesOf = (t: TaskQuotaRow, active: number, credits: number): [string, QuotaName, number][] => [
  ['active', 'max_concurrent', active],
  [`day:${t.quota_day}`, 'credits_per_day', credits],
  [`month:${t.quota_month}`, 'credits_per_month', credits],
];

async function usedIn(sql: Sql, s: Scope, win: string): Promise<number> {
  return (await sql.get<{ used: number }>(USED, { scope: scopeKey(s), win }))?.used ?? 0;
}

/** One counter's change: the window, the quota that limits it, and the delta. */
type Change = [win: string, quota: QuotaName, delta: number];

/**
 * Add each change to the counters of each scope, in one order (change by change, in the order given, team before
 * key); a positive delta past a limit throws QuotaExceededError. The limits are read only when a delta is positive.
 */
async function charge(tx: Tx, scopes: Scope[], changes: Change[]): Promise<void> {
  const moving = changes.filter(([, , delta]) => delta !== 0);
  if (moving.length === 0) return;
  const growing = moving.some(([, , delta]) => delta > 0);
  const limits: Partial<Limits>[] = [];
  for (const scope of scopes) {
    const table = scope.kind === 'team' ? 'teams' : 'api_keys';
    limits.push(growing ? ((await tx.get<Limits>(`SELECT ${LIMIT_COLUMNS} FROM ${table} WHERE id = @id`, { id: scope.id })) ?? {}) : {});
  }
  for (const [win, quota, delta] of moving) {
    for (const [i, scope] of scopes.entries()) {
      const limit = limits[i]![quota] ?? null;
      if ((await tx.run(ADD, { scope: scopeKey(scope), win, delta, lim: limit })) === 0) {
        throw new QuotaExceededError(scope.kind, quota, limit!, await usedIn(tx, scope, win));
      }
    }
  }
}

async function record(tx: Tx, t: TaskQuotaRow, kind: LedgerKind, credits: number, nowMs: number, note: string | null = null): Promise<void> {
  await tx.run(LEDGER, {
    team_id: t.owner_id,
    key_id: t.key_id,
    task_id: t.id,
    attempt: t.attempt || null,
    kind,
    credits,
    day: t.quota_day,
    model: t.model,
    provider_id: t.provider_id,
    note,
    now: nowMs,
  });
}

/** A new task: one more running task, and its reservation. QuotaExceededError when either passes a limit. */
export async function reserveNew(tx: Tx, t: TaskQuotaRow, nowMs: number): Promise<void> {
  await charge(tx, scopesOf(t), changesOf(t, 1, t.credits_reserved));
  await record(tx, t, 'reserve', t.credits_reserved, nowMs);
}

/** Grow a reservation by `extra` credits (failover to a dearer provider, or adopting a generation). */
export async function grow(tx: Tx, t: TaskQuotaRow, extra: number, nowMs: number, note: string): Promise<void> {
  await charge(tx, scopesOf(t), changesOf(t, 0, extra));
  await record(tx, t, 'reserve', extra, nowMs, note);
}

/** A task served at once from a stored result: reserved, released and settled at `credits_reserved`. */
export async function serveHit(tx: Tx, t: TaskQuotaRow, nowMs: number): Promise<void> {
  await charge(tx, scopesOf(t), changesOf(t, 0, t.credits_reserved));
  await record(tx, t, 'reserve', t.credits_reserved, nowMs, 'cache hit');
  await record(tx, t, 'release', -t.credits_reserved, nowMs);
  await record(tx, t, 'settle', t.credits_reserved, nowMs);
}

/** The task completed: release the reservation, charge what was actually spent. */
export async function settle(tx: Tx, t: TaskQuotaRow, spent: number, nowMs: number): Promise<void> {
  await record(tx, t, 'release', -t.credits_reserved, nowMs);
  await record(tx, t, 'settle', spent, nowMs);
  await charge(tx, scopesOf(t), changesOf(t, -1, spent - t.credits_reserved));
}

/** The task failed or was cancelled: release the reservation in full. */
export async function release(tx: Tx, t: TaskQuotaRow, nowMs: number): Promise<void> {
  await record(tx, t, 'release', -t.credits_reserved, nowMs);
  await charge(tx, scopesOf(t), changesOf(t, -1, -t.credits_reserved));
}

/** An operator's adjustment of a team's spend today (negative refunds); never refused. */
export async function adjust(backend: Backend, teamId: string, credits: number, note: string, nowMs: number): Promise<LedgerEntry> {
  return backend.transaction(async (tx) => {
    const day = utcDay(nowMs);
    for (const win of [`day:${day}`, `month:${day.slice(0, 7)}`]) await tx.run(ADD, { scope: `team:${teamId}`, win, delta: credits, lim: null });
    const row = { team_id: teamId, key_id: null, task_id: null, attempt: null, kind: 'adjust' as const, credits, day, model: null, provider_id: null, note };
    const { id } = (await tx.get<{ id: number }>(LEDGER_RETURNING_ID, { ...row, now: nowMs }))!;
    return { id, ...row, created_at_ms: nowMs };
  });
}

/** The credits and concurrency used; the per-minute request counts live in memory (src/store/request-rates.ts). */
export async function usage(sql: Sql, scope: Scope, nowMs: number): Promise<Omit<QuotaUsage, 'reads_minute' | 'submits_minute'>> {
  return {
    credits_day: await usedIn(sql, scope, `day:${utcDay(nowMs)}`),
    credits_month: await usedIn(sql, scope, `month:${utcMonth(nowMs)}`),
    active_tasks: await usedIn(sql, scope, 'active'),
  };
}

/**
 * Rebuild every counter from the ledger and the tasks; count the wrong ones. Charges that commit meanwhile are held
 * off (they write the ledger and the counters), so the counters are rebuilt from one consistent picture.
 */
export async function recompute(backend: Backend): Promise<number> {
  return backend.transaction(async (tx) => {
    const exclusive = backend.dialect.excludeWriters(['usage_counters', 'ledger']);
    if (exclusive) await tx.run(exclusive);
    const expected = new Map<string, number>();
    const add = (scope: string, win: string, n: number) => expected.set(`${scope}\u0000${win}`, (expected.get(`${scope}\u0000${win}`) ?? 0) + n);
    const credits = await tx.all<{ team_id: string; key_id: string | null; day: string; credits: number }>(
      'SELECT team_id, key_id, day, sum(credits) AS credits FROM ledger GROUP BY team_id, key_id, day',
    );
    for (const r of credits) {
      for (const scope of [`team:${r.team_id}`, ...(r.key_id === null ? [] : [`key:${r.key_id}`])]) {
        add(scope, `day:${r.day}`, r.credits);
        add(scope, `month:${r.day.slice(0, 7)}`, r.credits);
      }
    }
    const active = await tx.all<{ owner_id: string; key_id: string; n: number }>(
      "SELECT owner_id, key_id, count(*) AS n FROM tasks WHERE status IN ('pending', 'processing') GROUP BY owner_id, key_id",
    );
    for (const r of active) {
      add(`team:${r.owner_id}`, 'active', r.n);
      add(`key:${r.key_id}`, 'active', r.n);
    }
    const actual = await tx.all<{ scope: string; win: string; used: number }>("SELECT scope, win, used FROM usage_counters WHERE win NOT LIKE 'minute:%'");
    let wrong = 0;
    const seen = new Set<string>();
    for (const c of actual) {
      const k = `${c.scope}\u0000${c.win}`;
      seen.add(k);
      if ((expected.get(k) ?? 0) !== c.used) wrong++;
    }
    for (const [k, n] of expected) if (!seen.has(k) && n !== 0) wrong++;
    if (wrong > 0) {
      await tx.run("DELETE FROM usage_counters WHERE win NOT LIKE 'minute:%'");
      for (const [k, n] of expected) {
        const [scope, win] = k.split('\u0000') as [string, string];
        await tx.run('INSERT INTO usage_counters (scope, win, used) VALUES (@scope, @win, @n)', { scope, win, n });
      }
    }
    return wrong;
  });
}
