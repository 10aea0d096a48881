// The OpenAI Videos API wire format (docs: /work/shared/reference/upstream-apis.md, section 1) and its
// mapping to and from the adapter contract. Pure functions, no HTTP.
import { ProviderError, type CallContext, type ModelOffer, type NormalizedRequest, type PollResult } from '../types';

/** The statuses the reference lists; an answer may carry another (e.g. `pending`), kept as in progress. */
export type VideoStatus = 'queued' | 'in_progress' | 'completed' | 'failed';

/** The Video object (every key is always present upstream; we rely only on a few). */
export interface VideoObject {
  id: string;
  object: 'video';
  model: string;
  status: VideoStatus | (string & {});
  progress: number;
  created_at: number;
  completed_at: number | null;
  expires_at: number | null;
  prompt: string | null;
  size: string;
  seconds: string;
  remixed_from_video_id: string | null;
  error: { code?: string | null; message?: string | null } | null;
}

export const STATUSES: readonly string[] = ['queued', 'in_progress', 'completed', 'failed'];

/**
 * Job error codes that blame the request (content policy, moderation, a bad input): generating again,
 * here or elsewhere, would fail the same way. Every other code is taken as the provider's fault.
 */
const TERMINAL_JOB_CODES = new Set([
  'content_policy_violation',
  'moderation_blocked',
  'invalid_request',
  'invalid_request_error',
  'invalid_parameters',
  'invalid_prompt',
  'image_processing_error',
  'image_dimension_mismatch',
  'unsupported_image',
]);
const TERMINAL_JOB_CODE_PATTERN = /policy|moderation|safety|invalid/i;

export function isRetryableJobError(code: string): boolean {
  return !(TERMINAL_JOB_CODES.has(code) || TERMINAL_JOB_CODE_PATTERN.test(code));
}

/**
 * POST /v1/videos body, as the official SDK sends it: multipart even without a file, seconds as text. A fitted
 * reference image goes as the file part `input_reference`; without one, the URL as `input_reference[image_url]`.
 */
export function createVideoForm(request: NormalizedRequest, offer: ModelOffer, image?: CallContext['image']): FormData {
  const form = new FormData();
  form.append('prompt', request.prompt);
  form.append('model', offer.upstream_model);
  form.append('seconds', String(request.duration_s));
  form.append('size', request.size);
  if (image) form.append('input_reference', new Blob([new Uint8Array(image.bytes)], { type: image.media_type }), `reference.${image.media_type.split('/')[1]}`);
  else if (request.image_url) form.append('input_reference[image_url]', request.image_url);
  return form;
}

/**
 * Checks the few fields we use; anything else is a malformed (retryable) answer. A status outside STATUSES is
 * accepted: an answer with a job id means the job exists, and dropping the id would orphan a paid job.
 */
export function asVideoObject(body: unknown): VideoObject {
  const v = body as Partial<VideoObject> | null;
  if (typeof v !== 'object' || v === null || typeof v.id !== 'string' || v.id === '' || typeof v.status !== 'string' || v.status === '') {
    throw new ProviderError('malformed_response', `not a video object: ${preview(body)}`, true);
  }
  return v as VideoObject;
}

export function pollResultFromVideo(video: VideoObject): PollResult {
  const progress = clampProgress(video.progress);
  switch (video.status) {
    case 'queued':
      return { state: 'pending', progress };
    case 'in_progress':
      return { state: 'processing', progress };
    default: // a status the reference does not list: the job exists, so it is taken as running
      return { state: 'processing', progress };
    case 'completed':
      return { state: 'completed' };
    case 'failed': {
      const code = video.error?.code || 'generation_failed';
      const message = video.error?.message || `video ${video.id} failed upstream`;
      return { state: 'failed', error: new ProviderError(code, message, isRetryableJobError(code)) };
    }
  }
}

/**
 * Whether a listed job is the one a create for `request` made within `window` (epoch ms). `created_at` is in
 * whole seconds, so the window is widened to the enclosing seconds.
 */
export function matchesCreate(video: VideoObject, request: NormalizedRequest, offer: ModelOffer, window: { from_ms: number; to_ms: number }): boolean {
  return (
    video.prompt === request.prompt &&
    video.model === offer.upstream_model &&
    video.size === request.size &&
    String(video.seconds) === String(request.duration_s) &&
    video.created_at >= Math.floor(window.from_ms / 1000) &&
    video.created_at <= Math.ceil(window.to_ms / 1000)
  );
}

function clampProgress(progress: unknown): number {
  return typeof progress === 'number' && Number.isFinite(progress) ? Math.min(100, Math.max(0, Math.round(progress))) : 0;
}

function preview(body: unknown): string {
  const text = JSON.stringify(body) ?? String(body);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
