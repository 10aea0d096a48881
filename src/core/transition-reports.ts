// The one place that turns what a store transition reports into metrics, and tells the deliverer that events
// are waiting. Callers of the transitions compute nothing of their own about tasks finished or credits moved.
import type { TransitionReport } from '../store/types';
import type { Metrics } from './metrics';

/** Takes the report of every task transition that creates or finishes tasks or moves credits. */
export type ReportSink = (report: TransitionReport) => void;

/**
 * Counts `vidgate_tasks_submitted_total`, `vidgate_tasks_finished_total` (provider `cache` for a hit, `none`
 * before one was chosen) and `vidgate_credits_total` from a report, and calls `onEvents` when it wrote outbox events.
 */
export function createReportSink(metrics: Metrics, onEvents: () => void): ReportSink {
  return (report) => {
    for (const task of report.created) metrics.tasksSubmitted.inc({ model: task.model });
    for (const { task, provider_id } of report.finished) {
      metrics.tasksFinished.inc({ status: task.status, provider: provider_id ?? (task.cache_status === 'hit' ? 'cache' : 'none') });
    }
    for (const m of report.credits) {
      const provider = m.provider_id ?? (m.cache_hit ? 'cache' : 'none');
      metrics.credits.inc({ kind: m.kind, team: m.team_id, provider, model: m.model }, m.credits);
    }
    if (report.events.length > 0) onEvents();
  };
}
