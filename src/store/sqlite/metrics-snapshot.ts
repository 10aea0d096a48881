// The store's read for the metrics scraped at each request of /metrics: unfinished tasks (through the indexes over
// them, never a scan of finished ones), jobs in flight per provider, and every team with its budgets.
import type Database from 'better-sqlite3';
import type { MetricsSnapshot } from '../types';
import type { createQuota } from './quota';

type TeamRow = Pick<MetricsSnapshot['teams'][number], 'id' | 'name' | 'credits_per_day' | 'credits_per_month'>;

/**
 * `(nowMs) => MetricsSnapshot`, read in one transaction so that the figures agree with each other. The credits used
 * in the current windows are `quota.usage`'s (the same UTC day and month rules as the quota checks).
 */
export function createMetricsSnapshot(db: Database.Database, quota: Pick<ReturnType<typeof createQuota>, 'usage'>): (nowMs: number) => MetricsSnapshot {
  const sql = {
    // tasks_due (status, next_run_at_ms) serves the status range: only unfinished rows are visited.
    openTasks: db.prepare<[], MetricsSnapshot['open_tasks'][number]>(
      "SELECT status, count(*) AS tasks FROM tasks WHERE status IN ('pending', 'processing') GROUP BY status",
    ),
    // tasks_poll_due is partial over exactly these rows (processing, owning their job).
    jobsInFlight: db.prepare<[], MetricsSnapshot['jobs_in_flight'][number]>(
      "SELECT provider_id, count(*) AS jobs FROM tasks WHERE status = 'processing' AND source_id IS NULL AND provider_id IS NOT NULL GROUP BY provider_id",
    ),
    reserved: db.prepare<[], { owner_id: string; credits: number }>(
      "SELECT owner_id, sum(credits_reserved) AS credits FROM tasks WHERE status IN ('pending', 'processing') GROUP BY owner_id",
    ),
    teams: db.prepare<[], TeamRow>('SELECT id, name, credits_per_day, credits_per_month FROM teams ORDER BY id'),
  };
  return db.transaction((nowMs: number): MetricsSnapshot => {
    const reserved = new Map(sql.reserved.all().map((r) => [r.owner_id, r.credits]));
    return {
      open_tasks: sql.openTasks.all(),
      jobs_in_flight: sql.jobsInFlight.all(),
      teams: sql.teams.all().map((t) => {
        const used = quota.usage({ kind: 'team', id: t.id }, nowMs);
        return { ...t, reserved_credits: reserved.get(t.id) ?? 0, credits_day_used: used.credits_day, credits_month_used: used.credits_month };
      }),
    };
  });
}
