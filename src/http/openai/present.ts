// A stored task -> the Video object of the OpenAI Videos API (reference: upstream-apis.md, section 1).
import type { components } from '../../generated/vidgate-api';
import type { NormalizedRequest } from '../../providers/types';
import type { OutboxEvent, TaskRecord, TaskStatus } from '../../store/types';

export type Video = components['schemas']['Video'];

/** OpenAI's four statuses; a cancelled task reads as `failed` (with `error.code` `cancelled`). */
const STATUS: Record<TaskStatus, Video['status']> = {
  pending: 'queued',
  processing: 'in_progress',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'failed',
};

/**
 * How long clients should wait before polling again, sent as `openai-poll-after-ms`; 1000 ms is the interval
 * OpenAI's SDKs use when the header is absent.
 */
export const POLL_AFTER_MS = 1000;

const toUnixS = (ms: number) => Math.floor(ms / 1000);

/** `retentionMs`: how long stored videos are kept (the Video's `expires_at`). */
export function presentVideo(t: TaskRecord, retentionMs: number): Video {
  const request = JSON.parse(t.request_json) as NormalizedRequest;
  return {
    id: t.id,
    object: 'video',
    model: t.model,
    status: STATUS[t.status],
    progress: t.status === 'completed' ? 100 : t.progress,
    created_at: toUnixS(t.created_at_ms),
    completed_at: t.completed_at_ms === null ? null : toUnixS(t.completed_at_ms),
    expires_at: t.asset_stored_at_ms === null ? null : toUnixS(t.asset_stored_at_ms + retentionMs),
    prompt: request.prompt,
    size: request.size,
    seconds: String(request.duration_s) as Video['seconds'],
    remixed_from_video_id: request.remix_of?.video_id ?? null,
    error:
      t.status === 'cancelled'
        ? { code: 'cancelled', message: 'the video was cancelled before it completed' }
        : t.status === 'failed'
          ? { code: t.error_code ?? 'generation_failed', message: t.error_message ?? t.error_code ?? 'the video failed' }
          : null,
  };
}

/** The webhook event OpenAI sends for a finished video (the spec's `videoFinished` webhook); vidgate sends it for tasks made on this door. */
export type VideoEvent = components['schemas']['VideoEvent'];

/** The body of a webhook for a task of this door, after OpenAI's `video.completed` and `video.failed` events. */
export function presentVideoEvent(t: TaskRecord, event: OutboxEvent): VideoEvent {
  return {
    id: event.id,
    object: 'event',
    type: event.task_status === 'completed' ? 'video.completed' : 'video.failed',
    created_at: toUnixS(event.created_at_ms),
    data: { id: t.id },
  };
}
