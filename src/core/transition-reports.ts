// The one place that turns what a store transition reports into metrics, and tells the deliverer that events
// are waiting. Callers of the transitions compute nothing of their own about tasks finished or credits moved.
import { offerFor, type NormalizedRequest } from '../providers/types';
import { priceMicroUsd, usdOf } from '../routing/quote';
import type { Router } from '../routing/router';
import type { TransitionReport } from '../store/types';
import type { Metrics } from './metrics';

/** Takes the report of every task transition that creates or finishes tasks or moves credits. */
export type ReportSink = (report: TransitionReport) => void;

/**
 * Counts from a report: `vidgate_tasks_submitted_total`, `vidgate_tasks_finished_total` (provider `cache` for a hit,
 * `none` before one was chosen), `vidgate_credits_total`; for each generation that completed (a task that owns its
 * job) its attempt (`vidgate_attempts_total`, job succeeded), `vidgate_video_seconds_total` and
 * `vidgate_provider_cost_usd_total` (the provider's `usd_per_second` in `router`'s catalogs); for each cancelled task
 * whose job was accepted, its attempt (job cancelled); `vidgate_task_time_to_video_seconds` for every completed task
 * but hits. Calls `onEvents` when the report wrote outbox events.
 */
export function createReportSink(metrics: Metrics, router: Pick<Router, 'provider'>, onEvents: () => void): ReportSink {
  return (report) => {
    for (const task of report.created) metrics.tasksSubmitted.inc({ team: task.owner_id, model: task.model });
    for (const { task, provider_id } of report.finished) {
      const provider = provider_id ?? (task.cache_status === 'hit' ? 'cache' : 'none');
      metrics.tasksFinished.inc({ team: task.owner_id, status: task.status, provider, model: task.model });
      if (provider_id === null) continue;
      const ownJob = task.source_id === null;
      if (task.status === 'completed') {
        if (task.completed_at_ms !== null) metrics.timeToVideo.observe({ provider, model: task.model }, (task.completed_at_ms - task.created_at_ms) / 1000);
        if (!ownJob) continue;
        metrics.attempts.inc({ provider, model: task.model, stage: 'job', result: 'succeeded', fault: 'none' });
        const request = JSON.parse(task.request_json) as NormalizedRequest;
        metrics.videoSeconds.inc({ provider, model: task.model }, request.duration_s);
        const adapter = router.provider(provider);
        const offer = adapter && offerFor(adapter, request);
        const microUsd = offer && priceMicroUsd(offer, request);
        if (microUsd !== undefined) metrics.providerCost.inc({ provider, model: task.model }, usdOf(microUsd));
      } else if (task.status === 'cancelled' && ownJob && task.upstream_id !== null) {
        metrics.attempts.inc({ provider, model: task.model, stage: 'job', result: 'cancelled', fault: 'none' });
      }
    }
    for (const m of report.credits) {
      const provider = m.provider_id ?? (m.cache_hit ? 'cache' : 'none');
      metrics.credits.inc({ kind: m.kind, team: m.team_id, provider, model: m.model }, m.credits);
    }
    if (report.events.length > 0) onEvents();
  };
}
