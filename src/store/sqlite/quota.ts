// Quota counters and the credit ledger. Each charge is one conditional UPDATE (`used + delta <= limit`),
// run inside the caller's transaction, so that concurrent submissions can never overspend; every
// movement of credits is also an append-only ledger row, from which the counters can be rebuilt.
import type Database from 'better-sqlite3';
import { QuotaExceededError, RATE_QUOTA, type LedgerKind, type QuotaName, type QuotaUsage } from '../types';

type Limits = Record<QuotaName, number | null>;
type Scope = { kind: 'team' | 'key'; id: string };

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

export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
export const utcMonth = (ms: number) => new Date(ms).toISOString().slice(0, 7);

export function createQuota(db: Database.Database) {
  const sql = {
    // One statement per counter: created at `delta`, or moved by it, unless that passes the limit (0 rows changed).
    add: db.prepare(
      `INSERT INTO usage_counters (scope, win, used) SELECT @scope, @win, @delta
         WHERE @delta <= 0 OR @limit IS NULL OR @delta <= @limit
       ON CONFLICT (scope, win) DO UPDATE SET used = used + @delta
         WHERE @delta <= 0 OR @limit IS NULL OR used + @delta <= @limit`,
    ),
    used: db.prepare<[string, string], number>('SELECT used FROM usage_counters WHERE scope = ? AND win = ?').pluck(),
    teamLimits: db.prepare<[string], Limits>(
      'SELECT credits_per_day, credits_per_month, max_concurrent, reads_per_minute, submits_per_minute FROM teams WHERE id = ?',
    ),
    keyLimits: db.prepare<[string], Limits>(
      'SELECT credits_per_day, credits_per_month, max_concurrent, reads_per_minute, submits_per_minute FROM api_keys WHERE id = ?',
    ),
    ledger: db.prepare(
      `INSERT INTO ledger (team_id, key_id, task_id, attempt, kind, credits, day, model, provider_id, note, created_at_ms)
       VALUES (@team_id, @key_id, @task_id, @attempt, @kind, @credits, @day, @model, @provider_id, @note, @now)`,
    ),
  };

  const scopeKey = (s: Scope) => `${s.kind}:${s.id}`;
  const limitsOf = (s: Scope): Partial<Limits> => (s.kind === 'team' ? sql.teamLimits.get(s.id) : sql.keyLimits.get(s.id)) ?? {};
  const usedIn = (s: Scope, win: string) => sql.used.get(scopeKey(s), win) ?? 0;

  /** Add `delta` to each (scope, window) counter; a positive delta past a limit throws and changes nothing. */
  function charge(scopes: Scope[], windows: [win: string, quota: QuotaName][], delta: number): void {
    if (delta === 0) return;
    for (const scope of scopes) {
      const limits = limitsOf(scope);
      for (const [win, quota] of windows) {
        const limit = limits[quota] ?? null;
        if (sql.add.run({ scope: scopeKey(scope), win, delta, limit }).changes === 0) {
          throw new QuotaExceededError(scope.kind, quota, limit!, usedIn(scope, win));
        }
      }
    }
  }

  const scopesOf = (t: TaskQuotaRow): Scope[] => [{ kind: 'team', id: t.owner_id }, { kind: 'key', id: t.key_id }];
  const creditWindows = (t: TaskQuotaRow): [string, QuotaName][] => [
    [`day:${t.quota_day}`, 'credits_per_day'],
    [`month:${t.quota_month}`, 'credits_per_month'],
  ];

  function record(t: TaskQuotaRow, kind: LedgerKind, credits: number, nowMs: number, note: string | null = null) {
    sql.ledger.run({
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

  return {
    /** A new task: one more running task, and its reservation. */
    reserveNew(t: TaskQuotaRow, nowMs: number) {
      charge(scopesOf(t), [['active', 'max_concurrent']], 1);
      charge(scopesOf(t), creditWindows(t), t.credits_reserved);
      record(t, 'reserve', t.credits_reserved, nowMs);
    },
    /** Grow a reservation by `extra` credits (failover to a dearer provider, or adopting a generation). */
    grow(t: TaskQuotaRow, extra: number, nowMs: number, note: string) {
      charge(scopesOf(t), creditWindows(t), extra);
      record(t, 'reserve', extra, nowMs, note);
    },
    /** A task served at once from a stored result: reserved, released and settled at `credits_reserved`. */
    serveHit(t: TaskQuotaRow, nowMs: number) {
      charge(scopesOf(t), creditWindows(t), t.credits_reserved);
      record(t, 'reserve', t.credits_reserved, nowMs, 'cache hit');
      record(t, 'release', -t.credits_reserved, nowMs);
      record(t, 'settle', t.credits_reserved, nowMs);
    },
    /** The task completed: release the reservation, charge what was actually spent. */
    settle(t: TaskQuotaRow, spent: number, nowMs: number) {
      record(t, 'release', -t.credits_reserved, nowMs);
      record(t, 'settle', spent, nowMs);
      charge(scopesOf(t), creditWindows(t), spent - t.credits_reserved);
      charge(scopesOf(t), [['active', 'max_concurrent']], -1);
    },
    /** The task failed or was cancelled: release the reservation in full. */
    release(t: TaskQuotaRow, nowMs: number) {
      record(t, 'release', -t.credits_reserved, nowMs);
      charge(scopesOf(t), creditWindows(t), -t.credits_reserved);
      charge(scopesOf(t), [['active', 'max_concurrent']], -1);
    },

    /** An operator's adjustment of a team's spend today (negative refunds); never refused. */
    adjust: db.transaction((teamId: string, credits: number, note: string, nowMs: number) => {
      const day = utcDay(nowMs);
      const scope: Scope = { kind: 'team', id: teamId };
      for (const win of [`day:${day}`, `month:${day.slice(0, 7)}`]) {
        sql.add.run({ scope: scopeKey(scope), win, delta: credits, limit: null });
      }
      const row = { team_id: teamId, key_id: null, task_id: null, attempt: null, kind: 'adjust', credits, day, model: null, provider_id: null, note, now: nowMs };
      const id = Number(sql.ledger.run(row).lastInsertRowid);
      return { id, team_id: teamId, key_id: null, task_id: null, attempt: null, kind: 'adjust' as const, credits, day, model: null, provider_id: null, note, created_at_ms: nowMs };
    }),

    /** The credits and concurrency used; the per-minute request counts live in memory (src/store/request-rates.ts). */
    usage(scope: Scope, nowMs: number): Omit<QuotaUsage, 'reads_minute' | 'submits_minute'> {
      return {
        credits_day: usedIn(scope, `day:${utcDay(nowMs)}`),
        credits_month: usedIn(scope, `month:${utcMonth(nowMs)}`),
        active_tasks: usedIn(scope, 'active'),
      };
    },

    /** Rebuild every counter but the per-minute ones from the ledger and the tasks; count the wrong ones. */
    recompute: db.transaction((): number => {
      const expected = new Map<string, number>();
      const add = (scope: string, win: string, n: number) => expected.set(`${scope}\u0000${win}`, (expected.get(`${scope}\u0000${win}`) ?? 0) + n);
      const credits = db
        .prepare<[], { team_id: string; key_id: string | null; day: string; credits: number }>(
          'SELECT team_id, key_id, day, sum(credits) AS credits FROM ledger GROUP BY team_id, key_id, day',
        )
        .all();
      for (const r of credits) {
        for (const scope of [`team:${r.team_id}`, ...(r.key_id === null ? [] : [`key:${r.key_id}`])]) {
          add(scope, `day:${r.day}`, r.credits);
          add(scope, `month:${r.day.slice(0, 7)}`, r.credits);
        }
      }
      const active = db
        .prepare<[], { owner_id: string; key_id: string; n: number }>(
          "SELECT owner_id, key_id, count(*) AS n FROM tasks WHERE status IN ('pending', 'processing') GROUP BY owner_id, key_id",
        )
        .all();
      for (const r of active) {
        add(`team:${r.owner_id}`, 'active', r.n);
        add(`key:${r.key_id}`, 'active', r.n);
      }
      const actual = db
        .prepare<[], { scope: string; win: string; used: number }>("SELECT scope, win, used FROM usage_counters WHERE win NOT LIKE 'minute:%'")
        .all();
      let wrong = 0;
      const seen = new Set<string>();
      for (const c of actual) {
        const k = `${c.scope}\u0000${c.win}`;
        seen.add(k);
        if ((expected.get(k) ?? 0) !== c.used) wrong++;
      }
      for (const [k, n] of expected) if (!seen.has(k) && n !== 0) wrong++;
      if (wrong > 0) {
        db.prepare("DELETE FROM usage_counters WHERE win NOT LIKE 'minute:%'").run();
        const insert = db.prepare('INSERT INTO usage_counters (scope, win, used) VALUES (?, ?, ?)');
        for (const [k, n] of expected) insert.run(...(k.split('\u0000') as [string, string]), n);
      }
      return wrong;
    }),
  };
}
