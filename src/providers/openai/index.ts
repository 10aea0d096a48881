// Adapter for any upstream speaking the OpenAI Videos API (POST/GET/DELETE /v1/videos, GET .../content).
// The wire format and its mapping live in wire.ts; every HTTP failure is classified by ../http.
import type { Readable } from 'node:stream';
import { checkAnswersNotFound, errorFromResponse, readJson, send, sendJson, videoStream, type HttpTarget } from '../http';
import { ProviderError, requireOffer, type AdapterWarn, type ModelOffer, type PollResult, type ProviderAdapter } from '../types';
import { STATUSES, asVideoObject, createVideoForm, matchesCreate, pollResultFromVideo, type VideoObject } from './wire';

/** Pages of GET /v1/videos (100 jobs each, newest first) read to reconcile one lost create. */
const MAX_LIST_PAGES = 5;

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
  /**
   * Whether the host honours `Idempotency-Key` (default false: OpenAI's own API ignores it, and its SDK sends
   * none; upstream-apis.md section 1). Only then is a create whose answer was lost sent again.
   */
  honoursIdempotencyKey?: boolean;
  /** Told once per status value when the host answers with a status the reference does not list. */
  warn?: AdapterWarn;
}

export function createOpenAIProvider(options: OpenAIProviderOptions): ProviderAdapter {
  const { id, apiKey, timeoutMs, catalog } = options;
  const target: HttpTarget = { baseUrl: serverRoot(options.baseUrl), apiKey, timeoutMs };
  const videoPath = (upstreamId: string) => `v1/videos/${encodeURIComponent(upstreamId)}`;
  const unknownStatuses = new Set<string>();
  /** The video object, with a status outside the reference's logged (once per value). */
  const video = (body: unknown): VideoObject => {
    const v = asVideoObject(body);
    if (!STATUSES.includes(v.status) && !unknownStatuses.has(v.status)) {
      unknownStatuses.add(v.status);
      options.warn?.('provider answered an unknown job status; the job is kept as in progress', { provider: id, status: v.status, upstream_id: v.id });
    }
    return v;
  };

  return {
    id,
    kind: 'openai',
    catalog,
    // The Videos API refuses an input_reference of another pixel size than `size`: vidgate fits and uploads it.
    capabilities: { idempotency_keys: options.honoursIdempotencyKey ?? false, reference_image: 'bytes' },

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
      }, ctx.lateAnswer);
      return { upstreamId: video(body).id };
    },

    async poll(upstreamId, ctx): Promise<PollResult> {
      const res = await send(target, videoPath(upstreamId), { headers: { Accept: 'application/json' }, signal: ctx.signal });
      if (res.status === 404) {
        await discard(res);
        throw new ProviderError('resource_not_found', `upstream ${id} no longer knows video ${upstreamId}`, true);
      }
      if (!res.ok) throw await errorFromResponse(res);
      const result = pollResultFromVideo(video(await readJson(res)));
      const pollAfterMs = Number(res.headers.get('openai-poll-after-ms') ?? NaN);
      return 'progress' in result && Number.isSafeInteger(pollAfterMs) && pollAfterMs > 0 ? { ...result, poll_after_ms: pollAfterMs } : result;
    },

    async download(upstreamId, ctx): Promise<Readable> {
      const res = await send(target, `${videoPath(upstreamId)}/content?variant=video`, {
        headers: { Accept: 'application/binary' },
        signal: ctx.signal,
      });
      return videoStream(res);
    },

    // GET /v1/videos lists the key's jobs newest first; read back until the window's start.
    async findJob(request, window, ctx) {
      const offer = requireOffer(catalog, request);
      const found: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        const query = new URLSearchParams({ order: 'desc', limit: '100', ...(after !== undefined && { after }) });
        const list = await sendJson<{ data?: unknown; has_more?: unknown; last_id?: unknown }>(target, `v1/videos?${query}`, {
          headers: { Accept: 'application/json' },
          signal: ctx.signal,
        });
        if (!Array.isArray(list.data)) throw new ProviderError('malformed_response', 'GET /v1/videos answered without a data list', true);
        const videos = list.data.map(asVideoObject);
        for (const v of videos) if (matchesCreate(v, request, offer, window)) found.push(v.id);
        const oldest = videos.at(-1);
        if (list.has_more !== true || typeof list.last_id !== 'string' || !oldest || oldest.created_at * 1000 < window.from_ms) break;
        after = list.last_id;
      }
      return found.reverse();
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

    // GET of a video id no job can have (OpenAI's ids start with `video_`): a 404 with an error body means up.
    checkHealth: (ctx) => checkAnswersNotFound(target, videoPath(HEALTH_CHECK_ID), ctx.signal),
  };
}

const HEALTH_CHECK_ID = 'vidgate-health-check';

/** Drops a trailing `/v1` (and slashes) so that the relative paths above add exactly one `/v1`. */
function serverRoot(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
}

/** Releases an answer's body we do not read, so the connection can be reused. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}
