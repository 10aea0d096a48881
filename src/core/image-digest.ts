// A reference image's bytes, read safely, and their SHA-256, so that a cache key names the image and not its URL.
// The URL is caller-supplied: fetching it must not reach inside the network, nor read without limit.
import { createHash } from 'node:crypto';
import { isTrustedOrigin, resolvedUrlProblem } from '../net/url-guard';

export interface ImageDigestOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Origins (e.g. 'http://127.0.0.1:4567') exempt from the public-address check: a private image host, or tests. */
  trustedOrigins: ReadonlySet<string>;
}

/** SHA-256 (hex) of the image at `url`, or null when it cannot be read (see readImage). Never throws. */
export async function imageDigest(url: string, opts: ImageDigestOptions): Promise<string | null> {
  const bytes = await readImage(url, opts);
  return bytes && createHash('sha256').update(bytes).digest('hex');
}

/**
 * The bytes of the image at `url`, read through the outbound guard (public address unless trusted, no
 * redirects, at most `maxBytes` within `timeoutMs`), or null when it cannot be read (refused address, HTTP
 * error, redirect, too large, timeout, not an image). Never throws.
 */
export async function readImage(url: string, opts: ImageDigestOptions): Promise<Buffer | null> {
  try {
    // The timeout covers the whole exchange: the name's lookup, the answer and the body.
    const signal = AbortSignal.timeout(opts.timeoutMs);
    if (!isTrustedOrigin(url, opts.trustedOrigins)) {
      const timedOut = new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve('timed out')));
      if ((await Promise.race([resolvedUrlProblem(url), timedOut])) !== null) return null;
    }
    // A redirect is refused rather than followed: its target has not been checked.
    const res = await fetch(url, { redirect: 'manual', signal });
    const type = res.headers.get('content-type');
    const length = res.headers.get('content-length');
    if (!res.ok || !res.body || (type !== null && !type.toLowerCase().startsWith('image/')) || (length !== null && Number(length) > opts.maxBytes)) {
      await res.body?.cancel();
      return null;
    }
    // Leaving the loop early cancels the body (and the connection).
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of res.body) {
      bytes += chunk.byteLength;
      if (bytes > opts.maxBytes) return null;
      chunks.push(chunk);
    }
    return bytes > 0 ? Buffer.concat(chunks) : null; // an empty body is not an image
  } catch {
    return null; // refused by the guard's DNS lookup, network error, timeout
  }
}
