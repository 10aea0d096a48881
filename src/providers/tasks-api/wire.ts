// The unified task API's wire format (EvoLink-style aggregators; docs: upstream-apis.md, sections 2 and 3):
// what a request becomes on the wire, and what a task answer means.
import { ProviderError, tierOfSize, type ModelOffer, type NormalizedRequest } from '../types';

/**
 * How a model takes its output size: 'size' sends the explicit size as aspect_ratio ('1280x720', the sora-2
 * convention); 'ratio' sends '16:9' / '9:16' plus quality '720p' / '1080p' (the sora-2-pro convention).
 */
export type AspectRatioStyle = 'size' | 'ratio';

export type TasksApiOffer = ModelOffer & { aspect_ratio_style: AspectRatioStyle };

/** The style a model most likely uses when the config does not say: 'ratio' for the pro models. */
export function defaultAspectRatioStyle(model: string): AspectRatioStyle {
  return /pro/i.test(model) ? 'ratio' : 'size';
}

/** The JSON body of POST /v1/videos/generations. No callback_url: the gateway polls. */
export interface CreateTaskBody {
  model: string;
  prompt: string;
  aspect_ratio: string;
  duration: number;
  quality?: '720p' | '1080p';
  image_urls?: string[];
  resize_mode?: 'pad' | 'crop';
}

export function createTaskBody(offer: TasksApiOffer, request: NormalizedRequest): CreateTaskBody {
  const [width, height] = request.size.split('x').map(Number) as [number, number];
  const sizing: Pick<CreateTaskBody, 'aspect_ratio' | 'quality'> =
    offer.aspect_ratio_style === 'ratio'
      ? { aspect_ratio: width > height ? '16:9' : '9:16', quality: tierOfSize(request.size) === 'high' ? '1080p' : '720p' }
      : { aspect_ratio: request.size };
  return {
    model: offer.upstream_model,
    prompt: request.prompt,
    ...sizing,
    duration: request.duration_s,
    // With an image, always a resize_mode (the reference's default, pad, when the request names none), so the
    // provider fits the image to the size instead of refusing it.
    ...(request.image_url !== undefined && { image_urls: [request.image_url], resize_mode: request.resize_mode ?? 'pad' }),
  };
}

/** The parts of a task object (create and query answers) that the adapter reads. */
export interface WireTask {
  id: string;
  status: 'pending' | 'processing' | 'completed' | 'failed';
  progress: number;
  results?: unknown;
  error?: unknown;
  /** The status as the provider wrote it, when the reference does not list it (the task is then taken as processing). */
  unknown_status?: string;
}

const STATUSES: ReadonlySet<string> = new Set(['pending', 'processing', 'completed', 'failed']);

/**
 * A task answer, checked; anything else is a retryable malformed_response. A status the reference does not list
 * (with a task id, the task exists) is kept as `processing`, so that the paid task is followed, not dropped.
 */
export function parseTask(body: unknown): WireTask {
  const task = body as Partial<Record<keyof WireTask, unknown>> | null;
  if (typeof task !== 'object' || task === null || Array.isArray(task)) throw malformed('task is not an object');
  if (typeof task.id !== 'string' || task.id === '') throw malformed('task has no id');
  if (typeof task.status !== 'string' || task.status === '') throw malformed(`task status ${JSON.stringify(task.status)}`);
  if (task.progress !== undefined && (typeof task.progress !== 'number' || !Number.isFinite(task.progress))) {
    throw malformed('task progress is not a number');
  }
  const known = STATUSES.has(task.status);
  return {
    id: task.id,
    status: known ? (task.status as WireTask['status']) : 'processing',
    ...(!known && { unknown_status: task.status }),
    progress: Math.min(100, Math.max(0, Math.round(task.progress ?? 0))),
    results: task.results,
    error: task.error,
  };
}

/** Failed-task codes where the request itself is at fault; every other code (listed or not) is the provider's. */
const TERMINAL_TASK_CODES: ReadonlySet<string> = new Set([
  'content_policy_violation',
  'invalid_parameters',
  'image_processing_error',
  'image_dimension_mismatch',
  'request_cancelled',
]);

/**
 * A failed task's `error: {code, message}` as a ProviderError. Retryable: generation_failed_no_content,
 * service_error, generation_timeout, resource_exhausted, quota_exceeded, service_unavailable,
 * resource_not_found (unknown or expired id), unknown_error, and any code the reference does not list.
 */
export function taskFailure(task: WireTask): ProviderError {
  const error = (typeof task.error === 'object' && task.error !== null ? task.error : {}) as { code?: unknown; message?: unknown };
  const code = typeof error.code === 'string' && error.code !== '' ? error.code : 'unknown_error';
  const message = typeof error.message === 'string' ? error.message : 'no message';
  return new ProviderError(code, `task ${task.id} failed: ${message}`, !TERMINAL_TASK_CODES.has(code));
}

/** The first result link of a completed task, if it has one. */
export function firstResult(task: WireTask): string | undefined {
  const first: unknown = Array.isArray(task.results) ? task.results[0] : undefined;
  return typeof first === 'string' && first !== '' ? first : undefined;
}

export function malformed(what: string): ProviderError {
  return new ProviderError('malformed_response', `malformed task from provider: ${what}`, true);
}
