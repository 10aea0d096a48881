// Fetching a finished task's result link. The link is absolute and often on another host (a CDN): the API key
// goes only to the API's own origin, never to whoever the link points at.
import { PassThrough, type Readable } from 'node:stream';
import { send, videoStream, type HttpTarget } from '../http';
import { ProviderError } from '../types';
import { malformed } from './wire';

export async function downloadResult(target: HttpTarget, link: string, signal?: AbortSignal): Promise<Readable> {
  let url: URL;
  try {
    url = new URL(link, target.baseUrl);
  } catch {
    throw malformed(`result link ${JSON.stringify(link)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw malformed(`result link ${url.protocol} is not HTTP`);
  const sameOrigin = url.origin === new URL(target.baseUrl).origin;
  const res = sameOrigin ? await send(target, url.href, { signal }) : await fetchWithoutCredentials(url, target.timeoutMs, signal);
  return withProviderErrors(await videoStream(res));
}

/** Like `send`, minus the Authorization header; redirects are followed since there is no secret to leak. */
async function fetchWithoutCredentials(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<Response> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    return await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, credentials: 'omit' });
  } catch (err) {
    const e = err as Error;
    const timedOut = e.name === 'TimeoutError' || timeout.aborted;
    throw new ProviderError(timedOut ? 'timeout' : 'network_error', `${timedOut ? 'timed out' : 'network error'}: ${e.message}`, true);
  }
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
