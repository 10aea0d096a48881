// The playground's calls to vidgate's API, with the key of the browser session. Types come from the spec
// (src/generated/vidgate-api.ts), as on the server.
import type { components } from '../../src/generated/vidgate-api';

export type Task = components['schemas']['Task'];
export type TaskList = components['schemas']['TaskList'];
export type Model = components['schemas']['Model'];
export type ModelList = components['schemas']['ModelList'];
export type Estimate = components['schemas']['Estimate'];
export type GenerationRequest = components['schemas']['GenerationRequest'];
export type Usage = components['schemas']['Usage'];
export type VideoSize = components['schemas']['VideoSize'];

/** An error answer of the API, with its words for people (`message`) and, for 402 and 429, the wait in seconds. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterS: number | null,
  ) {
    super(message);
  }
}

const KEY_ITEM = 'vidgate.playground.api_key';

/** The API key lives in sessionStorage only: gone with the browser tab, never in a URL or a log. */
export const sessionKey = {
  get: (): string | null => sessionStorage.getItem(KEY_ITEM),
  set: (key: string) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

/** Dispatched on `window` when any call answers 401: the key was revoked or expired mid-session (detail: the ApiFailure). */
export const KEY_REJECTED_EVENT = 'vidgate:key-rejected';

async function call(key: string, method: string, path: string, body?: BodyInit, contentType?: string): Promise<Response> {
  const headers: Record<string, string> = { Authorization: `Bearer ${key}` };
  if (contentType) headers['Content-Type'] = contentType;
  // Reads skip the browser's HTTP cache. Not writes: 'no-store' makes the browser send `Cache-Control: no-cache`,
  // which the API reads as "generate afresh" (a create would never be served from vidgate's cache).
  const res = await fetch(path, { method, headers, body, cache: method === 'GET' ? 'no-store' : 'default' });
  if (res.ok) return res;
  const retry = res.headers.get('Retry-After');
  const problem = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  const failure = new ApiFailure(res.status, problem?.error?.code ?? 'http_error', problem?.error?.message ?? `HTTP ${res.status}`, retry === null ? null : Number(retry));
  if (res.status === 401) window.dispatchEvent(new CustomEvent(KEY_REJECTED_EVENT, { detail: failure }));
  throw failure;
}

const json = async <T>(res: Promise<Response>): Promise<T> => (await res).json() as Promise<T>;

/** The calls the page makes; each throws ApiFailure on an error answer. */
export const api = {
  usage: (key: string) => json<Usage>(call(key, 'GET', '/v1/usage')),
  models: (key: string) => json<ModelList>(call(key, 'GET', '/v1/models')),
  estimate: (key: string, body: GenerationRequest, imageSha256?: string) =>
    json<Estimate>(call(key, 'POST', `/v1/estimates${imageSha256 ? `?image_sha256=${imageSha256}` : ''}`, JSON.stringify(body), 'application/json')),
  /** The team's latest tasks, newest first. */
  tasks: (key: string, limit: number) => json<TaskList>(call(key, 'GET', `/v1/tasks?limit=${limit}`)),
  /** Creates through the OpenAI door, the one that takes an uploaded image (multipart `input_reference`). */
  create: (key: string, form: FormData) => json<{ id: string }>(call(key, 'POST', '/v1/videos', form)),
  cancel: (key: string, id: string) => json<Task>(call(key, 'POST', `/v1/tasks/${encodeURIComponent(id)}/cancel`)),
  /** The stored MP4 as a Blob (a `<video>` cannot send the key itself). */
  video: async (key: string, id: string) => (await call(key, 'GET', `/v1/tasks/${encodeURIComponent(id)}/content`)).blob(),
};

/** A message with its code after it, unless the message already names the code. */
const withCode = (message: string, code: string, prefix = '') => (message.includes(code) ? message : `${message} (${prefix}${code})`);

/**
 * An API error in words, for a person. `needs`: what the request would cost (its estimate), said with a 402.
 */
export function describeFailure(err: unknown, needs?: { credits: number; usd: number } | null): string {
  if (!(err instanceof ApiFailure)) return `Could not reach vidgate: ${err instanceof Error ? err.message : String(err)}`;
  const wait = err.retryAfterS === null ? '' : ` Try again in ${formatWait(err.retryAfterS)}.`;
  if (err.status === 401) return `This API key was not accepted (${err.message}).`;
  if (err.status === 402) {
    const cost = needs ? ` This request needs ${needs.credits.toLocaleString('en')} credits ($${needs.usd.toFixed(2)}).` : '';
    return `Over budget: ${err.message}.${cost}${wait}`;
  }
  if (err.status === 413) return 'The request is too large for this vidgate (HTTP 413): shorten the prompt.';
  if (err.status === 429) return `Too many requests: ${err.message}.${wait}`;
  return withCode(err.message, err.code, `HTTP ${err.status}, `);
}

/** A wait in seconds as a person reads it: "40 s", "3 min", "5 h". */
export function formatWait(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/** A task's error in words: the common codes explained, any other one as the API says it. */
export function describeTaskError(error: NonNullable<Task['error']>): string {
  switch (error.code) {
    case 'content_policy_violation':
      return `Refused by the provider's content policy: ${error.message}`;
    case 'no_provider_available':
      return `No provider could take it: ${error.message}`;
    case 'cancelled':
      return 'Cancelled.';
    default:
      return withCode(error.message, error.code);
  }
}
