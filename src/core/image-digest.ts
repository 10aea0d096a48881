// Reads a reference image's bytes from its URL, so that it is checked (image-check.ts) and keyed by its bytes,
// not its URL. The URL is caller-supplied: fetching it must not reach inside the network, nor read without limit.
import { OutboundRefused, type Outbound } from '../net/outbound';

export interface ImageReadOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Checks the address at connect time and follows no redirect; its trusted origins (a private image host, tests) skip the check. */
  outbound: Outbound;
}

/** The bytes, or why they could not be read (a sentence for the client, e.g. "its address answered HTTP 404"). */
export type ImageRead = { bytes: Buffer } | { problem: string };

/** Reads the image at `url` (refused address, HTTP error, redirect, over `maxBytes`, timeout, not an image: a problem). Never throws. */
export async function readImage(url: string, opts: ImageReadOptions): Promise<ImageRead> {
  try {
    // The timeout covers the whole exchange: the name's lookup, the answer and the body.
    const signal = AbortSignal.timeout(opts.timeoutMs);
    // A redirect is returned, not followed (its target has not been checked), and refused below.
    const res = await opts.outbound.fetch(url, { signal });
    const type = res.headers.get('content-type');
    const length = res.headers.get('content-length');
    const refusal =
      res.status >= 300 && res.status < 400
        ? `its address redirects (HTTP ${res.status}); give the final URL`
        : !res.ok || !res.body
          ? `its address answered HTTP ${res.status}`
          : type !== null && !type.toLowerCase().startsWith('image/')
            ? `its address answered ${type}, not an image`
            : length !== null && Number(length) > opts.maxBytes
              ? `it has ${length} bytes; at most ${opts.maxBytes} are accepted`
              : null;
    if (refusal !== null) {
      await res.body?.cancel();
      return { problem: refusal };
    }
    // Leaving the loop early cancels the body (and the connection).
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of res.body!) {
      bytes += chunk.byteLength;
      if (bytes > opts.maxBytes) return { problem: `it has more than ${opts.maxBytes} bytes` };
      chunks.push(Buffer.from(chunk));
    }
    return bytes > 0 ? { bytes: Buffer.concat(chunks) } : { problem: 'its address answered an empty body' };
  } catch (err) {
    if (err instanceof OutboundRefused) return { problem: `its address is refused: ${err.reason}` };
    const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    return { problem: timeout ? `reading it took over ${opts.timeoutMs} ms` : 'its address could not be reached' };
  }
}
