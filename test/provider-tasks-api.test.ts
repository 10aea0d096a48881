import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTasksApiProvider,
  defaultAspectRatioStyle,
  type TasksApiOffer,
} from '../src/providers/tasks-api';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { downloadResult } from '../src/providers/tasks-api/result-download';
import { parseTask } from '../src/providers/tasks-api/wire';
import { createOutbound } from '../src/net/outbound';
import { ProviderError, type ProviderAdapter } from '../src/providers/types';
import { renderTestMp4, startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { request, pollToEnd, rejection, readAll } from './support/adapters';

const CATALOG: TasksApiOffer[] = [
  {
    model: 'sora-2',
    upstream_model: 'sora-2-preview',
    sizes: ['1280x720', '720x1280'],
    durations_s: [4, 8, 12],
    image_input: true,
    usd_per_second: { standard: 0.08 },
    aspect_ratio_style: 'size',
  },
  {
    model: 'sora-2-pro',
    upstream_model: 'sora-2-pro-preview',
    sizes: ['1280x720', '720x1280', '1792x1024', '1024x1792'],
    durations_s: [4, 8, 12],
    image_input: false,
    usd_per_second: { standard: 0.254, high: 0.424 },
    aspect_ratio_style: 'ratio',
  },
];

let mp4: Buffer;
let fake: FakeTasksApi;
const extraServers: FakeTasksApi[] = [];

beforeAll(async () => {
  mp4 = await renderTestMp4();
  fake = await startFakeTasksApi({ mp4, durationMs: 400 });
});
afterAll(async () => {
  await Promise.all([fake, ...extraServers].map((s) => s.close()));
});
afterEach(() => {
  fake.setMode('normal');
  fake.requests.length = 0;
});

function provider(options: { timeoutMs?: number; baseUrl?: string; apiKey?: string; trustedResultOrigins?: string[] } = {}): ProviderAdapter {
  return createTasksApiProvider({
    id: 'aggregator',
    baseUrl: options.baseUrl ?? fake.url,
    apiKey: options.apiKey ?? fake.apiKey,
    timeoutMs: options.timeoutMs ?? 2000,
    catalog: CATALOG,
    outbound: createOutbound({ trusted_origins: options.trustedResultOrigins ?? [] }),
  });
}






function expectError(err: ProviderError, code: string, retryable: boolean): void {
  expect({ code: err.code, retryable: err.retryable }).toEqual({ code, retryable });
}

/** A task that has completed upstream. */
async function completedTask(adapter = provider()): Promise<string> {
  const { upstreamId } = await adapter.submit(request(), {});
  fake.tasks.get(upstreamId)!.created_ms -= 10_000;
  return upstreamId;
}

describe('submit: wire format', () => {
  it("sends the 'size' style (sora-2): explicit size, no quality, image_urls, resize_mode, upstream name, key", async () => {
    const image_url = 'https://example.com/cat.png';
    const { upstreamId } = await provider().submit(request({ image_url, resize_mode: 'crop' }), {});

    expect(upstreamId).toMatch(/^task-unified-\d+-[a-z0-9]+$/);
    expect(fake.tasks.has(upstreamId)).toBe(true);
    expect(fake.requests).toHaveLength(1);
    const [sent] = fake.requests;
    expect(sent!.method).toBe('POST');
    expect(sent!.path).toBe('/v1/videos/generations');
    expect(sent!.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(sent!.headers['content-type']).toMatch(/^application\/json/);
    expect(sent!.body).toEqual({
      model: 'sora-2-preview',
      prompt: 'a cat on a skateboard',
      aspect_ratio: '1280x720',
      duration: 4,
      image_urls: [image_url],
      resize_mode: 'crop',
    });
  });

  it('sends only the fields given: no image_urls, resize_mode, quality or callback_url', async () => {
    await provider().submit(request({ size: '720x1280', duration_s: 8 }), {});
    expect(fake.requests[0]!.body).toEqual({ model: 'sora-2-preview', prompt: 'a cat on a skateboard', aspect_ratio: '720x1280', duration: 8 });
  });

  it.each([
    ['1280x720', '16:9', '720p'],
    ['720x1280', '9:16', '720p'],
    ['1792x1024', '16:9', '1080p'],
    ['1024x1792', '9:16', '1080p'],
  ] as const)("sends the 'ratio' style (sora-2-pro): %s as %s + %s", async (size, aspect_ratio, quality) => {
    await provider().submit(request({ model: 'sora-2-pro', size, duration_s: 12 }), {});
    expect(fake.requests[0]!.body).toEqual({ model: 'sora-2-pro-preview', prompt: 'a cat on a skateboard', aspect_ratio, quality, duration: 12 });
  });

  it.each([
    ['an unknown model', request({ model: 'veo-3' })],
    ['a size the model lacks', request({ size: '1792x1024' })],
    ['an image for a model without image input', request({ model: 'sora-2-pro', image_url: 'https://example.com/a.png' })],
  ])('refuses %s without calling upstream', async (_what, req) => {
    const err = await rejection(provider().submit(req, {}));
    expectError(err, 'invalid_parameters', false);
    expect(fake.requests).toHaveLength(0);
  });

  it('defaults the aspect ratio style by model name', () => {
    expect(defaultAspectRatioStyle('sora-2-pro-preview')).toBe('ratio');
    expect(defaultAspectRatioStyle('sora-2-preview')).toBe('size');
    expect(defaultAspectRatioStyle('sora-2')).toBe('size');
  });

  it('has no cancel (the API documents none)', () => {
    expect(provider().cancel).toBeUndefined();
    expect(provider().kind).toBe('tasks-api');
  });
});

describe('lifecycle', () => {
  it('submits, polls through pending and processing, and downloads the same bytes with the key (same origin)', async () => {
    const adapter = provider();
    const { upstreamId } = await adapter.submit(request(), {});
    const seen = await pollToEnd(adapter, upstreamId);

    expect(seen.at(-1)).toEqual({ state: 'completed' });
    expect(seen[0]).toEqual({ state: 'pending', progress: 0 });
    expect(seen.some((r) => r.state === 'processing' && r.progress > 0 && r.progress < 100)).toBe(true);
    expect(fake.requests.filter((r) => r.method === 'GET').every((r) => r.path === `/v1/tasks/${upstreamId}`)).toBe(true);

    // A fresh adapter (a restarted gateway) downloads with nothing but the id.
    const bytes = await readAll(await provider().download(upstreamId, {}));
    expect(bytes.equals(mp4)).toBe(true);
    const fileRequest = fake.requests.find((r) => r.path === `/files/${upstreamId}.mp4`);
    expect(fileRequest?.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
  });

  it('refuses a result link on another origin that points at a private address, unless the operator trusts it', async () => {
    const cdn = await startFakeTasksApi({ mp4, apiKey: 'cdn-has-no-key' });
    extraServers.push(cdn);
    const api = await startFakeTasksApi({ mp4, durationMs: 0, resultsBaseUrl: cdn.url });
    extraServers.push(api);
    const untrusting = provider({ baseUrl: api.url, apiKey: api.apiKey });
    const { upstreamId } = await untrusting.submit(request(), {});
    const err = await rejection(untrusting.download(upstreamId, {}));
    expectError(err, 'malformed_response', true);
    expect(err.message).toMatch(/must use https|private/);
    expect(cdn.requests).toHaveLength(0); // never contacted
  });

  it('does not follow a redirect from a trusted result origin', async () => {
    // A CDN that sends the download elsewhere (here: to the API's own file route, which must not be asked).
    const api = await startFakeTasksApi({ mp4, durationMs: 0 });
    extraServers.push(api);
    const seen: string[] = [];
    const cdn = http.createServer((req, res) => {
      seen.push(req.url!);
      res.writeHead(302, { location: `${api.url}${req.url}` }).end();
    });
    await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
    const cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
    try {
      const { upstreamId } = await provider({ baseUrl: api.url, apiKey: api.apiKey }).submit(request(), {});
      api.requests.length = 0;
      // The link the API gives is on the CDN.
      const link = `${cdnUrl}/files/${upstreamId}.mp4`;
      const err = await rejection(downloadResult({ baseUrl: api.url, apiKey: api.apiKey, timeoutMs: 2000 }, link, createOutbound({ trusted_origins: [cdnUrl] })));
      expectError(err, 'malformed_response', true);
      expect(err.message).toContain('redirects (HTTP 302)');
      expect(seen).toEqual([`/files/${upstreamId}.mp4`]);
      expect(api.requests.some((r) => r.path.startsWith('/files/'))).toBe(false);
    } finally {
      cdn.closeAllConnections();
      await new Promise((resolve) => cdn.close(resolve));
    }
  });

  it('fetches results on another (trusted) origin WITHOUT the Authorization header', async () => {
    const cdn = await startFakeTasksApi({ mp4, apiKey: 'cdn-has-no-key' });
    extraServers.push(cdn);
    const api = await startFakeTasksApi({ mp4, durationMs: 0, resultsBaseUrl: cdn.url });
    extraServers.push(api);
    const adapter = provider({ baseUrl: api.url, apiKey: api.apiKey, trustedResultOrigins: [cdn.url] });

    const { upstreamId } = await adapter.submit(request(), {});
    expect(await adapter.poll(upstreamId, {})).toEqual({ state: 'completed' });
    const bytes = await readAll(await adapter.download(upstreamId, {}));

    expect(bytes.equals(mp4)).toBe(true);
    expect(cdn.requests).toHaveLength(1);
    expect(cdn.requests[0]!.path).toBe(`/files/${upstreamId}.mp4`);
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    expect(api.requests.every((r) => r.headers.authorization === `Bearer ${api.apiKey}`)).toBe(true);
    expect(api.requests.some((r) => r.path.startsWith('/files/'))).toBe(false);
  });

  it('resolves the API paths under a base URL with a path prefix; a 404 there is the provider\'s fault', async () => {
    const err = await rejection(provider({ baseUrl: `${fake.url}/proxy` }).submit(request(), {}));
    expect(fake.requests[0]!.path).toBe('/proxy/v1/videos/generations');
    // A wrong base_url or an API that moved: another provider can serve the request, so it fails over.
    expectError(err, 'http_404', true);
  });
});

describe('poll: task failures', () => {
  it.each([
    ['content_policy_violation', false],
    ['invalid_parameters', false],
    ['image_processing_error', false],
    ['image_dimension_mismatch', false],
    ['request_cancelled', false],
    ['generation_failed_no_content', true],
    ['service_error', true],
    ['generation_timeout', true],
    ['resource_exhausted', true],
    ['quota_exceeded', true],
    ['service_unavailable', true],
    ['unknown_error', true],
    ['resource_not_found', true],
  ])('a task failed with %s is failed, retryable: %s', async (code, retryable) => {
    const adapter = provider();
    const { upstreamId } = await adapter.submit(request(), {});
    fake.setMode({ kind: 'fail_task', code, message: 'it went wrong' });
    const result = await adapter.poll(upstreamId, {});
    expect(result.state).toBe('failed');
    const { error } = result as { error: ProviderError };
    expect(error).toBeInstanceOf(ProviderError);
    expectError(error, code, retryable);
    expect(error.message).toContain('it went wrong');
  });

  it('a lost task (HTTP 404) is resource_not_found, retryable', async () => {
    const adapter = provider();
    const { upstreamId } = await adapter.submit(request(), {});
    fake.setMode('lose_task');
    expectError(await rejection(adapter.poll(upstreamId, {})), 'resource_not_found', true);
    fake.setMode('normal');
    expectError(await rejection(adapter.poll(upstreamId, {})), 'resource_not_found', true);
    expectError(await rejection(adapter.download(upstreamId, {})), 'resource_not_found', true);
  });

  it('rejects unexpected task shapes as malformed_response, retryable', () => {
    for (const body of [null, [], 'x', { status: 'pending' }, { id: 't', status: '' }, { id: 't', status: 'pending', progress: '5' }]) {
      let caught: unknown;
      try {
        parseTask(body);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ProviderError);
      expectError(caught as ProviderError, 'malformed_response', true);
    }
    expect(parseTask({ id: 't', status: 'processing', progress: 42.4 })).toMatchObject({ status: 'processing', progress: 42 });
  });

  it('keeps a task with a status the reference does not list (it exists): processing, with the status kept for the log', () => {
    expect(parseTask({ id: 't', status: 'queued', progress: 3 })).toEqual({ id: 't', status: 'processing', progress: 3, unknown_status: 'queued', results: undefined, error: undefined });
  });
});

describe('HTTP failures', () => {
  it('500 with a numeric error code is http_500, retryable, with the upstream message', async () => {
    fake.setMode({ kind: 'http_error', status: 500 });
    const err = await rejection(provider().submit(request(), {}));
    expectError(err, 'http_500', true);
    expect(err.message).toContain('injected HTTP 500');
    expect(err.retryAfterMs).toBeUndefined();
  });

  it('the error body really carries the status as an integer code', async () => {
    fake.setMode({ kind: 'http_error', status: 503 });
    const res = await fetch(`${fake.url}/v1/tasks/anything`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: 503, message: 'injected HTTP 503', type: 'service_unavailable_error' } });
  });

  it('429 with Retry-After is http_429, retryable, with retryAfterMs', async () => {
    fake.setMode({ kind: 'http_error', status: 429, retryAfter: '3' }, { route: 'create' });
    const err = await rejection(provider().submit(request(), {}));
    expectError(err, 'http_429', true);
    expect(err.retryAfterMs).toBe(3000);
  });

  it('400 is http_400, not retryable', async () => {
    fake.setMode({ kind: 'http_error', status: 400 });
    expectError(await rejection(provider().submit(request(), {})), 'http_400', false);
  });

  it('a wrong key is http_401, retryable on another provider (the provider account is at fault)', async () => {
    const err = await rejection(provider({ apiKey: 'wrong' }).submit(request(), {}));
    expectError(err, 'http_401', true);
    expect(err.message).toContain('invalid API key');
  });

  it('a 5xx while polling is retryable', async () => {
    const { upstreamId } = await provider().submit(request(), {});
    fake.setMode({ kind: 'http_error', status: 502 }, { route: 'task', times: 1 });
    expectError(await rejection(provider().poll(upstreamId, {})), 'http_502', true);
    expect((await provider().poll(upstreamId, {})).state).toMatch(/pending|processing/);
  });

  it('a hanging upstream is a timeout, retryable', async () => {
    fake.setMode('hang');
    const started = Date.now();
    expectError(await rejection(provider({ timeoutMs: 150 }).submit(request(), {})), 'timeout', true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a reset connection is a network_error, retryable', async () => {
    fake.setMode('reset');
    expectError(await rejection(provider().submit(request(), {})), 'network_error', true);
  });

  it('malformed JSON is malformed_response, retryable (submit and poll)', async () => {
    const { upstreamId } = await provider().submit(request(), {});
    fake.setMode('malformed_json');
    expectError(await rejection(provider().submit(request(), {})), 'malformed_response', true);
    expectError(await rejection(provider().poll(upstreamId, {})), 'malformed_response', true);
  });
});

describe('download failures', () => {
  it('a task not yet completed is not_ready, retryable', async () => {
    const { upstreamId } = await provider().submit(request(), {});
    expectError(await rejection(provider().download(upstreamId, {})), 'not_ready', true);
  });

  it('a completed task without results is not_ready, retryable', async () => {
    const upstreamId = await completedTask();
    fake.tasks.get(upstreamId)!.results = [];
    expectError(await rejection(provider().download(upstreamId, {})), 'not_ready', true);
  });

  it('an expired result link (410) is result_expired, retryable', async () => {
    const upstreamId = await completedTask();
    fake.setMode('expired');
    expectError(await rejection(provider().download(upstreamId, {})), 'result_expired', true);
  });

  it('a truncated MP4 errors the stream with network_error, retryable', async () => {
    const upstreamId = await completedTask();
    fake.setMode('truncate', { route: 'file' });
    const stream = await provider().download(upstreamId, {});
    expectError(await rejection(readAll(stream)), 'network_error', true);
  });

  it('a result link that hangs is a timeout, retryable', async () => {
    const upstreamId = await completedTask();
    fake.setMode('hang', { route: 'file' });
    expectError(await rejection(provider({ timeoutMs: 150 }).download(upstreamId, {})), 'timeout', true);
  });
});
