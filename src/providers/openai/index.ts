// Adapter for any upstream speaking the OpenAI Videos API (POST/GET/DELETE /v1/videos, GET .../content).
// The wire format and its mapping live in wire.ts; every HTTP failure is classified by ../http.
import type { Readable } from 'node:stream';
import { errorFromResponse, readJson, send, sendJson, videoStream, type HttpTarget } from '../http';
import { ProviderError, requireOffer, type ModelOffer, type PollResult, type ProviderAdapter } from '../types';
import { asVideoObject, createVideoForm, pollResultFromVideo } from './wire';


export interface OpenAIProviderOptions {
  id: string;
  /**
   * The server root, e.g. `https://api.example.com` or `https://host/some/prefix`. A trailing `/v1` is
   * accepted too (the official SDK's `baseURL` convention) and dropped, so both spellings reach
   * `<root>/v1/videos`. Paths below are relative ('v1/videos', no leading slash) because `send` resolves
   * them with `new URL(path, baseUrl + '/')`, which keeps any prefix in the base URL.
   */
  baseUrl: string;
  apiKey: string;
  /** Per HTTP call, until the answer's headers arrive; the caller's signal bounds reading the body. */
  timeoutMs: number;
  catalog: ModelOffer[];
}

export function createOpenAIProvider(options: OpenAIProviderOptions): ProviderAdapter {
  const { id, apiKey, timeoutMs, catalog } = options;
  const target: HttpTarget = { baseUrl: serverRoot(options.baseUrl), apiKey, timeoutMs };
  const videoPath = (upstreamId: string) => `v1/videos/${encodeURIComponent(upstreamId)}`;

  return {
    id,
    kind: 'openai',
    catalog,
    image_bytes: true,

    async submit(request, ctx) {
      const offer = requireOffer(catalog, request);
      const headers: Record<string, string> = { Accept: 'application/json' };
      // OpenAI itself ignores it; compatible hosts that support it will not create a second job.
      if (ctx.idempotencyKey !== undefined) headers['Idempotency-Key'] = ctx.idempotencyKey;
      const body = await sendJson<unknown>(target, 'v1/videos', {
        method: 'POST',
        headers,
        body: createVideoForm(request, offer, ctx.image),
        signal: ctx.signal,
      });
      return { upstreamId: asVideoObject(body).id };
    },

    async poll(upstreamId, ctx): Promise<PollResult> {
      const res = await send(target, videoPath(upstreamId), { headers: { Accept: 'application/json' }, signal: ctx.signal });
      if (res.status === 404) {
        await discard(res);
        throw new ProviderError('resource_not_found', `upstream ${id} no longer knows video ${upstreamId}`, true);
      }
      if (!res.ok) throw await errorFromResponse(res);
      return pollResultFromVideo(asVideoObject(await readJson(res)));
    },

    async download(upstreamId, ctx): Promise<Readable> {
      const res = await send(target, `${videoPath(upstreamId)}/content?variant=video`, {
        headers: { Accept: 'application/binary' },
        signal: ctx.signal,
      });
      return videoStream(res);
    },

    async remix(upstreamId, request, ctx) {
      const headers: Record<string, string> = { Accept: 'application/json', 'Content-Type': 'application/json' };
      if (ctx.idempotencyKey !== undefined) headers['Idempotency-Key'] = ctx.idempotencyKey;
      const body = await sendJson<unknown>(target, `${videoPath(upstreamId)}/remix`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ prompt: request.prompt }),
        signal: ctx.signal,
      });
      return { upstreamId: asVideoObject(body).id };
    },

    async cancel(upstreamId, ctx) {
      const res = await send(target, videoPath(upstreamId), { method: 'DELETE', signal: ctx.signal });
      if (res.ok || res.status === 404) return discard(res); // 404: already gone, which is what we wanted
      throw await errorFromResponse(res);
    },
  };
}

/** Drops a trailing `/v1` (and slashes) so that the relative paths above add exactly one `/v1`. */
function serverRoot(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
}

/** Releases an answer's body we do not read, so the connection can be reused. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}
