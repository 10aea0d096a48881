// Fetching a finished task's result link. The link is absolute and often on another host (a CDN): the API key
// goes only to the API's own origin, never to whoever the link points at.
import type { Readable } from 'node:stream';
import { resolvedUrlProblem } from '../../net/url-guard';
import { fetchTimed, send, videoStream, type HttpTarget } from '../http';
import { malformed } from './wire';

/**
 * The link is the provider's word, so it is checked like any outbound URL (HTTPS, public address once
 * resolved, no redirects) unless it is on the API's own origin or one the operator trusts. Residual
 * risk: a name that resolves differently between the check and the fetch (DNS rebinding).
 */
export async function downloadResult(target: HttpTarget, link: string, trustedOrigins: ReadonlySet<string>, signal?: AbortSignal): Promise<Readable> {
  let url: URL;
  try {
    url = new URL(link, target.baseUrl);
  } catch {
    throw malformed(`result link ${JSON.stringify(link)} is not a URL`);
  }
  if (url.origin === new URL(target.baseUrl).origin) return videoStream(await send(target, url.href, { signal }));
  if (!trustedOrigins.has(url.origin)) {
    const problem = await resolvedUrlProblem(url.href);
    if (problem) throw malformed(`result link ${url.origin} ${problem}`);
  }
  // Never the API key to another origin.
  return videoStream(await fetchTimed(url, { signal }, target.timeoutMs));
}
