// What the HTTP adapters share: one call with a timeout, and one classification of every failure.
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ProviderError, type LateAnswer } from './types';

export interface HttpTarget {
  baseUrl: string;
  apiKey: string;
  timeoutMs: number;
}

/** Parse `retry-after-ms` or `retry-after` (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(headers: Headers, nowMs = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers.get('retry-after');
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * Statuses that blame the request's content (RFC 9110 §15.5): 400 (malformed, invalid parameters, content policy),
 * 413 (too large) and 422 (understood but refused). Another provider would refuse the same request.
 */
const REQUEST_AT_FAULT = new Set([400, 413, 422]);

/**
 * Provider at fault (retry elsewhere) for every failed status but those that blame the request's content: 408, 429
 * and 5xx; 401/402/403 (our key or account at that provider is bad); 404/405/410 and the rest (a wrong `base_url`,
 * an API that changed, a job that vanished), which another provider can still serve. The request is at fault for
 * 400, 413 and 422 only.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 400 && !REQUEST_AT_FAULT.has(status);
}

/** A failed HTTP answer as a ProviderError, with the upstream's own message where it sent one. */
export async function errorFromResponse(res: Response): Promise<ProviderError> {
  let message = `HTTP ${res.status}`;
  let code = `http_${res.status}`;
  try {
    const body = (await res.json()) as { error?: { message?: unknown; code?: unknown } };
    if (typeof body.error?.message === 'string') message = `HTTP ${res.status}: ${body.error.message}`;
    if (typeof body.error?.code === 'string') code = body.error.code;
  } catch {
    // not JSON: keep the status alone
  }
  if (res.headers.get('x-should-retry') === 'false') return new ProviderError(code, message, false);
  return new ProviderError(code, message, isRetryableStatus(res.status), retryAfterMs(res.headers));
}

/**
 * fetch with a timeout on the wait for the answer's headers; reading the body is bounded by the
 * caller's signal, so a long download is not cut at `timeoutMs`. Redirects are refused. Network
 * failures and timeouts become retryable errors. With `late`, the timeout is told to `late.onTimeout` and
 * the answer awaited `late.grace_ms` longer (CallContext.lateAnswer). `fetcher` replaces the global fetch (an
 * Outbound's checked fetch); a ProviderError it throws is passed on as it is.
 */
export async function fetchTimed(
  url: URL,
  init: RequestInit & { signal?: AbortSignal },
  timeoutMs: number,
  late?: LateAnswer,
  fetcher: (url: URL, init: RequestInit & { signal: AbortSignal }) => Promise<Response> = fetch,
): Promise<Response> {
  const timeout = new AbortController();
  const abort = () => timeout.abort(new DOMException('timed out', 'TimeoutError'));
  let timer = setTimeout(() => {
    if (!late) return abort();
    late.onTimeout();
    timer = setTimeout(abort, late.grace_ms);
  }, timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, timeout.signal]) : timeout.signal;
  try {
    return await fetcher(url, { ...init, signal, redirect: 'error' });
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    const e = err as Error & { cause?: Error };
    const timedOut = timeout.signal.aborted || e.name === 'TimeoutError';
    const detail = e.cause?.message ? `${e.message} (${e.cause.message})` : e.message;
    throw new ProviderError(timedOut ? 'timeout' : 'network_error', `${timedOut ? 'timed out' : 'network error'}: ${detail}`, true);
  } finally {
    clearTimeout(timer);
  }
}

/** A call to the provider's API: its base URL, its key, its timeout (and the late answer's grace, for a create). */
export async function send(target: HttpTarget, path: string, init: RequestInit & { signal?: AbortSignal } = {}, late?: LateAnswer): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${target.apiKey}`);
  return fetchTimed(new URL(path, target.baseUrl.replace(/\/?$/, '/')), { ...init, headers }, target.timeoutMs, late);
}

/** The JSON body of an answer already known to be successful; malformed JSON is the provider's fault. */
export async function readJson<T>(res: Response): Promise<T> {
  try {
    return (await res.json()) as T;
  } catch (err) {
    throw new ProviderError('malformed_response', `malformed JSON from provider: ${(err as Error).message}`, true);
  }
}

/** The JSON body of a successful answer; an error answer or malformed JSON becomes a ProviderError. */
export async function sendJson<T>(target: HttpTarget, path: string, init: RequestInit & { signal?: AbortSignal } = {}, late?: LateAnswer): Promise<T> {
  const res = await send(target, path, init, late);
  if (!res.ok) throw await errorFromResponse(res);
  return readJson<T>(res);
}

/** A successful answer's body as a Node stream of bytes (an MP4). */
export async function videoStream(res: Response): Promise<Readable> {
  if (!res.ok) {
    const error = await errorFromResponse(res);
    // A result link that is gone (expired, never there) means generating again, not retrying the link.
    if ([403, 404, 410].includes(res.status)) throw new ProviderError('result_expired', error.message, true);
    throw error;
  }
  if (!res.body) throw new ProviderError('malformed_response', 'empty video body', true);
  return withProviderErrors(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>));
}

/** The same bytes, but a connection lost or timed out mid-body surfaces as a retryable ProviderError. */
function withProviderErrors(source: Readable): Readable {
  const out = new PassThrough();
  source.on('error', (err: Error) => {
    const timedOut = err.name === 'TimeoutError';
    const message = `${timedOut ? 'timed out' : 'connection lost'} while downloading the video: ${err.message}`;
    out.destroy(new ProviderError(timedOut ? 'timeout' : 'network_error', message, true));
  });
  out.on('close', () => source.destroy());
  return source.pipe(out);
}

/**
 * An active health check: GET a resource that cannot exist (`path`, e.g. a job id of our own making). The
 * provider is healthy when it answers 404 with a well-formed JSON error body: its API is up and our key is
 * accepted (a bad key answers 401 first). Any other answer becomes a ProviderError (with its Retry-After).
 */
export async function checkAnswersNotFound(target: HttpTarget, path: string, signal?: AbortSignal): Promise<void> {
  const res = await send(target, path, { headers: { Accept: 'application/json' }, signal });
  if (res.status !== 404) throw res.ok ? new ProviderError('health_check_failed', `HTTP ${res.status} for a job that cannot exist`, true) : await errorFromResponse(res);
  const body = (await res.json().catch(() => undefined)) as { error?: unknown } | undefined;
  if (typeof body?.error !== 'object' || body.error === null) throw new ProviderError('health_check_failed', 'a 404 without a JSON error body', true);
}
