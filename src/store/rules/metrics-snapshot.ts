// The store's read for the metrics scraped at each request of /metrics: unfinished tasks (through the indexes over
// them, never a scan of finished ones), jobs in flight per provider, and every team with its budgets.
import type { MetricsSnapshot } from '../types';
import * as quota from './quota';
import type { Sql } from './sql';

type TeamRow = Pick<MetricsSnapshot['teams'][number], 'id' | 'name' | 'credits_per_day' | 'credits_per_month'>;

/**
 * The MetricsSnapshot at `nowMs`. The credits used in the current windows are `quota.usage`'s (the same UTC day and
 * month rules as the quota checks). Each statement reads on its own (no transaction: a scrape never holds up a write).
 */
export async function metricsSnapshot(read: Sql, nowMs: number): Promise<MetricsSnapshot> {
  // tasks_due (status, next_run_at_ms) serves the status range: only unfinished rows are visited.
  const open_tasks = await read.all<MetricsSnapshot['open_tasks'][number]>(
    "SELECT status, count(*) AS tasks FROM tasks WHERE status IN ('pending', 'processing') GROUP BY status",
  );
  // tasks_poll_due is partial over exactly these rows (processing, owning their job).
  const jobs_in_flight = await read.all<MetricsSnapshot['jobs_in_flight'][number]>(
    "SELECT provider_id, count(*) AS jobs FROM tasks WHERE status = 'processing' AND source_id IS NULL AND provider_id IS NOT NULL GROUP BY provider_id",
  );
  const reservedRows = await read.all<{ owner_id: string; credits: number }>(
    "SELECT owner_id, sum(credits_reserved) AS credits FROM tasks WHERE status IN ('pending', 'processing') GROUP BY owner_id",
  );
  const reserved = new Map(reservedRows.map((r) => [r.owner_id, r.credits]));
  const teams = await read.all<TeamRow>('SELECT id, name, credits_per_day, credits_per_month FROM teams ORDER BY id');
  return {
    open_tasks,
    jobs_in_flight,
    teams: await Promise.all(
      teams.map(async (t) => {
        const used = await quota.usage(read, { kind: 'team', id: t.id }, nowMs);
        return { ...t, reserved_credits: reserved.get(t.id) ?? 0, credits_day_used: used.credits_day, credits_month_used: used.credits_month };
      }),
    ),
  };
}
