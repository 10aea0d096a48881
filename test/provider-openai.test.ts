import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIProvider } from '../src/providers/openai';
import { asVideoObject, pollResultFromVideo, type VideoObject } from '../src/providers/openai/wire';
import { ProviderError, type ModelOffer, type PollResult, type ProviderAdapter } from '../src/providers/types';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { request, pollToEnd, rejection, readAll } from './support/adapters';

const CATALOG: ModelOffer[] = [
  {
    model: 'sora-2',
    upstream_model: 'sora-2',
    sizes: ['1280x720', '720x1280'],
    durations_s: [4, 8, 12],
    image_input: true,
    usd_per_second: { standard: 0.1 },
  },
  {
    model: 'video-pro',
    upstream_model: 'sora-2-pro',
    sizes: ['1280x720', '720x1280', '1792x1024', '1024x1792'],
    durations_s: [4, 8, 12],
    image_input: false,
    usd_per_second: { standard: 0.3, high: 0.5 },
  },
];

let fake: FakeOpenAI;
let mp4: Buffer;
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-openai-'));
  const file = path.join(tmp, 'clip.mp4');
  execFileSync(ffmpeg.path, [
    ...['-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=4:duration=1'],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file],
  ]);
  mp4 = fs.readFileSync(file);
  fake = await startFakeOpenAI({ mp4, jobDurationMs: 300 });
});

afterAll(async () => {
  await fake?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => fake.resetModes());

function adapter(overrides: { baseUrl?: string; apiKey?: string; timeoutMs?: number } = {}): ProviderAdapter {
  return createOpenAIProvider({ id: 'openai-test', baseUrl: fake.url, apiKey: fake.apiKey, timeoutMs: 3000, catalog: CATALOG, ...overrides });
}






/** A job that has completed upstream. */
async function completedJob(provider: ProviderAdapter): Promise<string> {
  const { upstreamId } = await provider.submit(request(), {});
  fake.completeJob(upstreamId);
  return upstreamId;
}

describe('OpenAI adapter: wire format', () => {
  it('submits multipart/form-data with the upstream model, seconds as text, size, image and key', async () => {
    const provider = adapter();
    expect(provider.kind).toBe('openai');
    const { upstreamId } = await provider.submit(
      request({ model: 'sora-2', size: '720x1280', duration_s: 8, image_url: 'https://example.com/cat.png' }),
      { idempotencyKey: 'attempt-123' },
    );
    const [sent] = fake.requestsTo('create').slice(-1);
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/v1/videos');
    expect(sent?.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent?.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(sent?.headers['idempotency-key']).toBe('attempt-123');
    expect(sent?.body).toEqual({
      prompt: 'a cat on a skateboard',
      model: 'sora-2',
      seconds: '8',
      size: '720x1280',
      'input_reference[image_url]': 'https://example.com/cat.png',
    });
    expect(fake.jobs.get(upstreamId)).toMatchObject({ model: 'sora-2', seconds: '8', size: '720x1280', image_url: 'https://example.com/cat.png' });
  });

  it('maps the gateway model to its upstream name and omits absent parts', async () => {
    await adapter().submit(request({ model: 'video-pro', size: '1792x1024', duration_s: 12 }), {});
    const [sent] = fake.requestsTo('create').slice(-1);
    expect(sent?.body).toEqual({ prompt: 'a cat on a skateboard', model: 'sora-2-pro', seconds: '12', size: '1792x1024' });
    expect(sent?.headers['idempotency-key']).toBeUndefined();
  });

  it('accepts a base URL with or without /v1', async () => {
    for (const baseUrl of [`${fake.url}/v1`, `${fake.url}/v1/`, `${fake.url}/`]) {
      const before = fake.requests.length;
      await adapter({ baseUrl }).submit(request(), {});
      expect(fake.requests.slice(before).map((r) => r.path)).toEqual(['/v1/videos']);
    }
  });

  it('rejects what the catalog does not offer without calling upstream', async () => {
    const provider = adapter();
    const before = fake.requests.length;
    for (const bad of [
      request({ model: 'nope' }),
      request({ size: '1792x1024' }),
      request({ model: 'video-pro', image_url: 'https://example.com/cat.png' }),
    ]) {
      const err = await rejection(provider.submit(bad, {}));
      expect(err).toMatchObject({ code: 'invalid_parameters', retryable: false });
    }
    expect(fake.requests.length).toBe(before);
  });
});

describe('OpenAI adapter: lifecycle', () => {
  it('submits, polls to completion and downloads the exact MP4', async () => {
    const provider = adapter();
    const { upstreamId } = await provider.submit(request(), {});
    expect(upstreamId).toMatch(/^video_/);
    const seen = await pollToEnd(provider, upstreamId);
    expect(seen.at(-1)).toEqual({ state: 'completed' });
    const running = seen.filter((r): r is Extract<PollResult, { progress: number }> => r.state === 'pending' || r.state === 'processing');
    expect(running.length).toBeGreaterThan(0);
    expect(running.some((r) => r.state === 'processing')).toBe(true);
    for (const r of running) expect(r.progress).toBeGreaterThanOrEqual(0);

    const bytes = await readAll(await provider.download(upstreamId, {}));
    expect(bytes.equals(mp4)).toBe(true);
    const [get] = fake.requestsTo('content').slice(-1);
    expect(get?.path).toBe(`/v1/videos/${upstreamId}/content`);
    expect(get?.query).toEqual({ variant: 'video' });
    expect(get?.headers.accept).toBe('application/binary');
  });

  it('remixes a completed job with POST /v1/videos/{id}/remix {prompt}, under the idempotency key', async () => {
    const provider = adapter();
    const original = await completedJob(provider);
    const { upstreamId } = await provider.remix!(original, request({ prompt: 'the same, at night' }), { idempotencyKey: 'task_1.1' });
    expect(upstreamId).not.toBe(original);
    const [post] = fake.requestsTo('remix').slice(-1);
    expect(post).toMatchObject({ method: 'POST', path: `/v1/videos/${original}/remix`, body: { prompt: 'the same, at night' } });
    expect(post?.headers['idempotency-key']).toBe('task_1.1');
    expect(fake.jobs.get(upstreamId)).toMatchObject({ prompt: 'the same, at night', remixed_from: original });
  });

  it('sends an uploaded image as the file part input_reference', async () => {
    const bytes = Buffer.from('png bytes as the adapter got them');
    await adapter().submit(request({ image_asset: { sha256: 'a'.repeat(64), media_type: 'image/png' } }), { image: { bytes, media_type: 'image/png' } });
    const [post] = fake.requestsTo('create').slice(-1);
    expect(post?.body).toMatchObject({ input_reference: { filename: 'reference.png', type: 'image/png', size: bytes.length } });
  });

  it('cancels with DELETE, and a job already gone is fine', async () => {
    const provider = adapter();
    const { upstreamId } = await provider.submit(request(), {});
    await provider.cancel!(upstreamId, {});
    const [del] = fake.requestsTo('delete').slice(-1);
    expect(del).toMatchObject({ method: 'DELETE', path: `/v1/videos/${upstreamId}` });
    expect(fake.jobs.has(upstreamId)).toBe(false);
    await expect(provider.cancel!(upstreamId, {})).resolves.toBeUndefined();

    fake.setMode('error_500', { route: 'delete' });
    const err = await rejection(provider.cancel!('video_whatever', {}));
    expect(err.retryable).toBe(true);
  });
});

describe('OpenAI adapter: failures', () => {
  it('500 is retryable', async () => {
    fake.setMode('error_500');
    const err = await rejection(adapter().submit(request(), {}));
    expect(err).toMatchObject({ code: 'server_error', retryable: true });
  });

  it('429 is retryable and carries Retry-After', async () => {
    fake.setMode({ kind: 'rate_limited', retryAfterS: 3 }, { route: 'create' });
    const err = await rejection(adapter().submit(request(), {}));
    expect(err).toMatchObject({ code: 'rate_limit_exceeded', retryable: true, retryAfterMs: 3000 });
  });

  it('a hanging upstream times out, retryably', async () => {
    // The submit answers normally, under the default timeout (a short one could fire on a busy machine).
    const { upstreamId } = await adapter().submit(request(), {});
    fake.setMode('hang', { route: 'retrieve' });
    const started = Date.now();
    const err = await rejection(adapter({ timeoutMs: 300 }).poll(upstreamId, {}));
    expect(err).toMatchObject({ code: 'timeout', retryable: true });
    // Given up by the timeout (not before it), and not left hanging: the bound is generous for a busy machine.
    expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a reset connection is a retryable network error', async () => {
    fake.setMode('reset');
    const err = await rejection(adapter().submit(request(), {}));
    expect(err).toMatchObject({ code: 'network_error', retryable: true });
  });

  it('malformed JSON is a retryable malformed_response', async () => {
    const provider = adapter();
    const { upstreamId } = await provider.submit(request(), {});
    fake.setMode('malformed_json', { times: 2 });
    expect(await rejection(provider.poll(upstreamId, {}))).toMatchObject({ code: 'malformed_response', retryable: true });
    expect(await rejection(provider.submit(request(), {}))).toMatchObject({ code: 'malformed_response', retryable: true });
    // used up: back to normal
    expect((await provider.poll(upstreamId, {})).state).toMatch(/pending|processing|completed/);
  });

  it('a job failing on the provider side is retryable; one failing on its content is not', async () => {
    const provider = adapter();
    const a = await provider.submit(request(), {});
    fake.setMode({ kind: 'fail_job', code: 'internal_error', message: 'boom' }, { times: 1 });
    const failed = await provider.poll(a.upstreamId, {});
    expect(failed.state).toBe('failed');
    if (failed.state !== 'failed') return;
    expect(failed.error).toMatchObject({ code: 'internal_error', message: 'boom', retryable: true });

    const b = await provider.submit(request(), {});
    fake.failJob(b.upstreamId, 'content_policy_violation', 'not allowed');
    const refused = await provider.poll(b.upstreamId, {});
    expect(refused).toMatchObject({ state: 'failed', error: { code: 'content_policy_violation', retryable: false } });
    expect(refused.state === 'failed' && refused.error).toBeInstanceOf(ProviderError);
  });

  it('a lost job is a retryable resource_not_found', async () => {
    const provider = adapter();
    const { upstreamId } = await provider.submit(request(), {});
    fake.setMode('lose_job');
    const err = await rejection(provider.poll(upstreamId, {}));
    expect(err).toMatchObject({ code: 'resource_not_found', retryable: true });
    expect(fake.jobs.has(upstreamId)).toBe(false);
  });

  it('a truncated MP4 makes reading the stream reject', async () => {
    const provider = adapter();
    const upstreamId = await completedJob(provider);
    fake.setMode('truncated_mp4');
    const stream = await provider.download(upstreamId, {});
    await expect(readAll(stream)).rejects.toThrow(/terminated|aborted|closed|socket/i);
  });

  it('an expired MP4 (404 or 410) is a retryable result_expired', async () => {
    const provider = adapter();
    const upstreamId = await completedJob(provider);
    for (const status of [404, 410] as const) {
      fake.setMode({ kind: 'expired_mp4', status });
      const err = await rejection(provider.download(upstreamId, {}));
      expect(err).toMatchObject({ code: 'result_expired', retryable: true });
    }
  });

  it('400 invalid request is terminal; 401 (our key at that provider is bad) moves the task elsewhere', async () => {
    fake.setMode({ kind: 'bad_request', code: 'invalid_value', message: 'prompt rejected' }, { route: 'create', times: 1 });
    const bad = await rejection(adapter().submit(request(), {}));
    expect(bad).toMatchObject({ code: 'invalid_value', retryable: false });
    expect(bad.message).toContain('prompt rejected');

    const unauthorized = await rejection(adapter({ apiKey: 'sk-wrong' }).submit(request(), {}));
    expect(unauthorized).toMatchObject({ code: 'invalid_api_key', retryable: true });
  });
});

describe('OpenAI wire mapping', () => {
  const video = (patch: Partial<VideoObject>): VideoObject => ({
    id: 'video_1',
    object: 'video',
    model: 'sora-2',
    status: 'queued',
    progress: 0,
    created_at: 0,
    completed_at: null,
    expires_at: null,
    prompt: 'p',
    size: '1280x720',
    seconds: '4',
    remixed_from_video_id: null,
    error: null,
    ...patch,
  });

  it('maps statuses and error codes', () => {
    expect(pollResultFromVideo(video({ status: 'queued', progress: 0 }))).toEqual({ state: 'pending', progress: 0 });
    expect(pollResultFromVideo(video({ status: 'in_progress', progress: 42 }))).toEqual({ state: 'processing', progress: 42 });
    expect(pollResultFromVideo(video({ status: 'completed', progress: 100 }))).toEqual({ state: 'completed' });
    const noCode = pollResultFromVideo(video({ status: 'failed', error: { code: null, message: null } }));
    expect(noCode).toMatchObject({ state: 'failed', error: { code: 'generation_failed', retryable: true } });
    for (const code of ['moderation_blocked', 'invalid_request', 'image_dimension_mismatch', 'image_processing_error']) {
      expect(pollResultFromVideo(video({ status: 'failed', error: { code, message: 'x' } }))).toMatchObject({ error: { retryable: false } });
    }
    for (const code of ['internal_error', 'service_error', 'generation_failed']) {
      expect(pollResultFromVideo(video({ status: 'failed', error: { code, message: 'x' } }))).toMatchObject({ error: { retryable: true } });
    }
  });

  it('rejects what is not a video object', () => {
    for (const body of [null, [], { id: 'video_1' }, { id: 'video_1', status: '' }, { status: 'queued' }]) {
      expect(() => asVideoObject(body)).toThrow(expect.objectContaining({ code: 'malformed_response', retryable: true }));
    }
  });

  it('keeps a video with a status the reference does not list: its job exists, so it is taken as in progress', () => {
    const video = asVideoObject({ id: 'video_1', status: 'pending', progress: 12 });
    expect(pollResultFromVideo(video)).toEqual({ state: 'processing', progress: 12 });
  });
});

describe('OpenAI adapter: capabilities and reconciliation', () => {
  it('declares that it does not honour idempotency keys unless configured, and takes reference images as bytes', () => {
    expect(adapter().capabilities).toEqual({ idempotency_keys: false, reference_image: 'bytes' });
    const honouring = createOpenAIProvider({ id: 'h', baseUrl: fake.url, apiKey: fake.apiKey, timeoutMs: 3000, catalog: CATALOG, honoursIdempotencyKey: true });
    expect(honouring.capabilities.idempotency_keys).toBe(true);
  });

  it('findJob: lists the jobs and returns those matching model, prompt, size and seconds within the window, oldest first', async () => {
    const provider = adapter();
    const wanted = request({ prompt: `findJob ${Date.now()}`, size: '720x1280', duration_s: 8 });
    const from_ms = Date.now() - 1000;
    const a = (await provider.submit(wanted, {})).upstreamId;
    await provider.submit({ ...wanted, prompt: `${wanted.prompt} (another)` }, {});
    await provider.submit({ ...wanted, duration_s: 4 }, {});
    await provider.submit({ ...wanted, size: '1280x720' }, {});
    const b = (await provider.submit(wanted, {})).upstreamId;
    const listsBefore = fake.requestsTo('list').length;
    expect(await provider.findJob!(wanted, { from_ms, to_ms: Date.now() + 1000 }, {})).toEqual([a, b]);
    expect(fake.requestsTo('list').length - listsBefore).toBe(1);
    expect(fake.requestsTo('list').at(-1)!.query).toMatchObject({ order: 'desc', limit: '100' });
    // A window that ended before the jobs were made finds none.
    expect(await provider.findJob!(wanted, { from_ms: from_ms - 60_000, to_ms: from_ms - 30_000 }, {})).toEqual([]);
  });

  it('logs a status outside the reference once per value, and keeps the job', async () => {
    const warned: unknown[] = [];
    const provider = createOpenAIProvider({ id: 'w', baseUrl: fake.url, apiKey: fake.apiKey, timeoutMs: 3000, catalog: CATALOG, warn: (m, f) => warned.push(f) });
    fake.setMode({ kind: 'unknown_status', status: 'pending' }, { route: 'create', times: 2 });
    const first = await provider.submit(request(), {});
    await provider.submit(request(), {});
    expect(first.upstreamId).toMatch(/^video_/);
    expect(warned).toEqual([{ provider: 'w', status: 'pending', upstream_id: first.upstreamId }]);
  });
});
