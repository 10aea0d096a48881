// A stored task -> the public Task object of the spec.
import type { components } from '../../generated/vidgate-api';
import type { NormalizedRequest } from '../../providers/types';
import { usdOf } from '../../routing/quote';
import type { AttemptRecord, TaskRecord } from '../../store/types';
import { TERMINAL_STATUSES } from '../../store/types';

export type Task = components['schemas']['Task'];

export interface PresentOptions {
  /** Base URL for links to the stored video, e.g. `https://vidgate.example.com`. */
  baseUrl: string;
  retentionMs: number;
}

/** A rough figure for clients' progress bars: providers take about this long per task. */
function expectedSeconds(durationS: number): number {
  return 30 + 10 * durationS;
}

const toUnixS = (ms: number) => Math.floor(ms / 1000);

/**
 * What the task holds and was charged, in credits. Until it finishes, only the reservation; then the settled
 * credits (those of a completed task, hits and followers included: 0 for a failed or cancelled one) and the
 * released rest of the reservation, so that `credits_reserved = credits_settled + credits_released`. These are
 * the sums of the task's ledger rows: reserve rows, settle rows, and the release rows less the settled.
 */
function creditsOf(t: TaskRecord, finished: boolean): Task['usage'] {
  const settled = finished ? (t.credits_settled ?? 0) : null;
  return {
    billing_rule: 'per_second',
    credits_reserved: t.credits_reserved,
    credits_settled: settled,
    credits_released: settled === null ? null : t.credits_reserved - settled,
  };
}

export function presentTask(t: TaskRecord, attempts: readonly AttemptRecord[], opts: PresentOptions): Task {
  const request = JSON.parse(t.request_json) as NormalizedRequest;
  const finished = TERMINAL_STATUSES.includes(t.status);
  const task: Task = {
    id: t.id,
    object: 'video.generation.task',
    created: toUnixS(t.created_at_ms),
    model: t.model,
    status: t.status,
    progress: t.progress,
    type: 'video',
    task_info: {
      can_cancel: !finished,
      estimated_time: finished ? 0 : Math.round(expectedSeconds(request.duration_s) * (1 - t.progress / 100)),
      video_duration: request.duration_s,
      size: request.size,
      prompt: request.prompt,
      reference_image: request.image_url !== undefined || request.image_asset !== undefined,
    },
    usage: creditsOf(t, finished),
    provider: t.provider_id,
    attempts: attempts.map((a) => ({
      provider: a.provider_id,
      upstream_id: a.upstream_id,
      started_at: a.started_at_ms,
      ended_at: a.ended_at_ms,
      outcome: a.outcome,
      price_usd: usdOf(a.micro_usd),
      ...(a.error_code && { error: { code: a.error_code, message: a.error_message ?? a.error_code } }),
    })),
    completed_at: t.completed_at_ms === null ? null : toUnixS(t.completed_at_ms),
    cache: t.cache_status,
    callback_url: t.callback_url,
  };
  if (t.status === 'completed' && t.asset_stored_at_ms !== null) {
    task.results = t.asset_expired ? [] : [`${opts.baseUrl}/v1/tasks/${t.id}/content`];
    // A hit's video is the original's, and is deleted with it.
    task.expires_at = toUnixS(t.asset_stored_at_ms + opts.retentionMs);
  }
  if (t.status === 'failed' && t.error_code) {
    task.error = { code: t.error_code, message: t.error_message ?? t.error_code };
  }
  return task;
}
