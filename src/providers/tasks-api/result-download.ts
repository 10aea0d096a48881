// Fetching a finished task's result link. The link is absolute and often on another host (a CDN): the API key
// goes only to the API's own origin, never to whoever the link points at.
import type { Readable } from 'node:stream';
import { OutboundRefused, type Outbound } from '../../net/outbound';
import { fetchTimed, send, videoStream, type HttpTarget } from '../http';
import { malformed } from './wire';

/**
 * The link is the provider's word, so unless it is on the API's own origin it is fetched through `outbound`:
 * HTTPS, a public address checked at connect time (no DNS rebinding window), no redirects, unless its origin
 * is trusted (the provider's `trusted_result_origins`, the operator's `outbound.trusted_origins`).
 * @throws ProviderError: malformed_response when the link is refused, as fetchTimed and videoStream otherwise.
 */
export async function downloadResult(target: HttpTarget, link: string, outbound: Outbound, signal?: AbortSignal): Promise<Readable> {
  let url: URL;
  try {
    url = new URL(link, target.baseUrl);
  } catch {
    throw malformed(`result link ${JSON.stringify(link)} is not a URL`);
  }
  if (url.origin === new URL(target.baseUrl).origin) return videoStream(await send(target, url.href, { signal }));
  // Never the API key to another origin.
  const fetchChecked = (u: URL, init: { signal?: AbortSignal }) =>
    outbound.fetch(u.href, { ...(init.signal && { signal: init.signal }) }).catch((err: unknown) => {
      throw err instanceof OutboundRefused ? malformed(`result link ${url.origin} ${err.reason}`) : err;
    });
  const res = await fetchTimed(url, { signal }, target.timeoutMs, undefined, fetchChecked);
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel();
    throw malformed(`result link ${url.origin} redirects (HTTP ${res.status}); redirects are not followed`);
  }
  return videoStream(res);
}
