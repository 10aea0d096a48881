// Reference images are checked by their bytes on both doors (JPEG, PNG or WebP; at most 10 MB; decodable), an
// upload is stored content-addressed and reaches an OpenAI-shape upstream as a file part, and a provider that
// needs a URL is no candidate for an upload.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { startFakeTasksApi } from './support/fake-tasks-api';
import { mp4Renderer } from './support/mp4';
import { startFakeOpenAI } from './support/fake-openai';
import { auth, KEY_A, startTestGateway, waitFor } from './support/gateway';
import { hugePng, makeImage, oversizedPng } from './support/images';

const PNG = makeImage('png');
const BAD_IMAGES: { kind: string; bytes: Buffer; type: string; reason: RegExp }[] = [
  { kind: 'a GIF', bytes: makeImage('gif'), type: 'image/gif', reason: /GIF; only JPEG, PNG and WebP/ },
  { kind: 'a 12 MB file', bytes: oversizedPng(12 * 1024 * 1024), type: 'image/png', reason: /at most 10485760|more than 10485760/ },
  // Valid and small (about 110 KB), but a canvas ffmpeg would refuse to decode: refused for its pixels, not as damaged.
  { kind: 'a 30000 × 30000 PNG', bytes: hugePng(30000, 30000), type: 'image/png', reason: /: too many pixels \(30000 × 30000\); at most 50000000 \(50 megapixels\) are accepted$/ },
  { kind: 'a damaged PNG', bytes: PNG.subarray(0, Math.floor(PNG.length * 0.6)), type: 'image/png', reason: /damaged/ },
  { kind: 'text named .png', bytes: Buffer.from('not an image at all, just words'), type: 'image/png', reason: /not a JPEG, PNG or WebP/ },
  { kind: 'an empty file', bytes: Buffer.alloc(0), type: 'image/png', reason: /empty/ },
];

let images: http.Server;
let origin: string;
const served = new Map<string, { status: number; type: string; bytes: Buffer }>();

beforeAll(async () => {
  images = http.createServer((req, res) => {
    const file = served.get(req.url ?? '');
    if (!file) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no such image');
    res.writeHead(file.status, { 'content-type': file.type }).end(file.bytes);
  });
  await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  served.set('/good.png', { status: 200, type: 'image/png', bytes: PNG });
  served.set('/good.jpg', { status: 200, type: 'image/jpeg', bytes: makeImage('jpg') });
  served.set('/good.webp', { status: 200, type: 'image/webp', bytes: makeImage('webp') });
  served.set('/page.html', { status: 200, type: 'text/html', bytes: Buffer.from('<html></html>') });
  BAD_IMAGES.forEach((b, i) => served.set(`/bad-${i}`, { status: 200, type: b.type, bytes: b.bytes }));
});
afterAll(() => new Promise<void>((resolve) => images.close(() => resolve())));

async function gateway(ctx: TestContext, more: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const g = await startTestGateway({ outbound: { trusted_origins: [origin] }, ...more }, { env });
  ctx.onTestFinished(() => g.close());
  return g;
}
type Harness = Awaited<ReturnType<typeof gateway>>;

const native = (g: Harness, url: string) =>
  g.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'from an image', aspect_ratio: '16:9', image_urls: [url] });
const upload = (g: Harness, bytes: Buffer, filename = 'reference.png') =>
  g.http.post('/v1/videos').set(auth(KEY_A)).field('prompt', 'from an upload').field('size', '1280x720').attach('input_reference', bytes, filename);
const linked = (g: Harness, url: string) =>
  g.http.post('/v1/videos').set(auth(KEY_A)).field('prompt', 'from a link').field('input_reference[image_url]', url);

function expectInvalidImage(res: { status: number; body: { error?: Record<string, unknown> } }, param: string, reason: RegExp) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error).toMatchObject({ code: 'invalid_image', type: 'invalid_request_error', param });
  expect(String(res.body.error!.message)).toMatch(reason);
}

describe('every bad image kind answers 400 invalid_image, on both doors', () => {
  it('by URL (native image_urls, OpenAI input_reference[image_url])', async (ctx) => {
    const g = await gateway(ctx);
    for (const [i, bad] of BAD_IMAGES.entries()) {
      if (bad.kind === 'an empty file') continue; // an empty body has its own reason below
      expectInvalidImage(await native(g, `${origin}/bad-${i}`), 'image_urls', bad.reason);
      expectInvalidImage(await linked(g, `${origin}/bad-${i}`), 'input_reference', bad.reason);
    }
    expectInvalidImage(await native(g, `${origin}/missing.png`), 'image_urls', /answered HTTP 404/);
    expectInvalidImage(await linked(g, `${origin}/missing.png`), 'input_reference', /answered HTTP 404/);
    expectInvalidImage(await native(g, `${origin}/page.html`), 'image_urls', /text\/html, not an image/);
    expect(await g.gateway.store.listTasks({ owner_id: (await g.gateway.store.findTeamByName('default'))!.id, limit: 10 })).toEqual([]);
  });

  it('by upload (a file part), whatever its name says', async (ctx) => {
    const g = await gateway(ctx);
    for (const bad of BAD_IMAGES) expectInvalidImage(await upload(g, bad.bytes, 'looks-fine.png'), 'input_reference', bad.reason);
  });

  it('accepts JPEG, PNG and WebP by URL on both doors', async (ctx) => {
    const g = await gateway(ctx);
    for (const file of ['/good.png', '/good.jpg', '/good.webp']) {
      const created = await native(g, `${origin}${file}`);
      expect(created.status).toBe(202);
      expect(created.body.task_info).toMatchObject({ prompt: 'from an image', reference_image: true });
      expect((await linked(g, `${origin}${file}`)).status).toBe(200);
    }
  });
});

describe('uploaded images', () => {
  it('are stored by SHA-256, keyed by their bytes in the cache, and the task completes', async (ctx) => {
    const g = await gateway(ctx, { cache: { enabled: true } });
    const jpeg = makeImage('jpg', 64, 48, 1);
    const first = await upload(g, jpeg, 'a.jpg');
    expect(first.status).toBe(200);
    const sha = createHash('sha256').update(jpeg).digest('hex');
    expect(fs.readFileSync(path.join(g.dir, 'images', sha))).toEqual(jpeg);
    const stored = JSON.parse((await g.gateway.store.getTask(first.body.id))!.request_json);
    expect(stored.image_asset).toEqual({ sha256: sha, media_type: 'image/jpeg' });
    await waitFor(async () => ((await g.http.get(`/v1/videos/${first.body.id}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined), 30_000, 200);
    // The same bytes under another name are the same request; other bytes are not.
    const again = await upload(g, jpeg, 'renamed.jpg');
    expect((await g.http.get(`/v1/tasks/${again.body.id}`).set(auth(KEY_A))).body.cache).toBe('hit');
    const other = await upload(g, makeImage('jpg', 64, 48, 2), 'a.jpg');
    expect((await g.http.get(`/v1/tasks/${other.body.id}`).set(auth(KEY_A))).body.cache).toBe('miss');
  });

  it('reach an OpenAI-shape upstream as the file part input_reference', async (ctx) => {
    // Strict as the Videos API is: a reference of another pixel size than the video's is refused.
    const openai = await startFakeOpenAI({ mp4: mp4Renderer(), jobDurationMs: 100, strictReferenceSize: true });
    ctx.onTestFinished(() => openai.close());
    const g = await gateway(
      ctx,
      { providers: [{ id: 'openai', kind: 'openai', base_url: openai.url, api_key_env: 'FAKE_OPENAI_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] }] },
      { FAKE_OPENAI_KEY: openai.apiKey },
    );
    const res = await upload(g, PNG);
    expect(res.status).toBe(200);
    const create = await waitFor(async () => openai.requestsTo('create')[0]);
    // The upload, fitted by vidgate to the video's size (PNG.length bytes were uploaded, at another size).
    expect(create.body).toMatchObject({ input_reference: { type: 'image/png' } });
    expect((create.body as { input_reference: { size: number } }).input_reference.size).not.toBe(PNG.length);
    expect(create.body).not.toHaveProperty('input_reference[image_url]');
    const done = await waitFor(async () => {
      const t = (await g.http.get(`/v1/tasks/${res.body.id}`).set(auth(KEY_A))).body;
      return t.status === 'completed' || t.status === 'failed' ? t : undefined;
    }, 30_000, 100);
    expect(done).toMatchObject({ status: 'completed', provider: 'openai' });
  });

  it('find no candidate in a provider that needs a URL (the task API) without server.public_url', async (ctx) => {
    const tasks = await startFakeTasksApi({ durationMs: 100 });
    ctx.onTestFinished(() => tasks.close());
    const g = await gateway(
      ctx,
      { providers: [{ id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'FAKE_TASKS_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.2 } }] }] },
      { FAKE_TASKS_KEY: tasks.apiKey },
    );
    const res = await upload(g, PNG);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'unsupported_combination' });
    expect(tasks.requests).toEqual([]);
  });

  it('reach a provider that needs a URL at a signed, expiring link under server.public_url', async (ctx) => {
    const tasks = await startFakeTasksApi({ durationMs: 100, mp4: mp4Renderer() });
    ctx.onTestFinished(() => tasks.close());
    let offsetMs = 0;
    const g = await startTestGateway(
      {
        server: { port: 0, public_url: 'https://vidgate.example.com' },
        outbound: { trusted_origins: [origin, tasks.url] },
        providers: [{ id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'FAKE_TASKS_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.2 } }] }],
      },
      { env: { FAKE_TASKS_KEY: tasks.apiKey }, now: () => Date.now() + offsetMs },
    );
    ctx.onTestFinished(() => g.close());
    expect((await upload(g, PNG)).status).toBe(200);
    const create = await waitFor(async () => tasks.requests.find((r) => r.method === 'POST'));
    const link = new URL((create.body as { image_urls: string[] }).image_urls[0]!);
    expect(link.origin).toBe('https://vidgate.example.com');
    expect(link.pathname).toBe(`/images/${createHash('sha256').update(PNG).digest('hex')}`);

    const fetched = await g.http.get(`${link.pathname}${link.search}`).buffer(true);
    expect(fetched.status).toBe(200);
    expect(fetched.headers['content-type']).toBe('image/png');
    expect(Buffer.compare(fetched.body as Buffer, PNG)).toBe(0);

    const tampered = new URLSearchParams(link.search);
    tampered.set('signature', 'f'.repeat(64));
    expect((await g.http.get(`${link.pathname}?${tampered}`)).status).toBe(404);
    const stretched = new URLSearchParams(link.search);
    stretched.set('expires', String(Number(stretched.get('expires')) + 3600));
    expect((await g.http.get(`${link.pathname}?${stretched}`)).status).toBe(404);
    offsetMs = 2 * 3600 * 1000; // past the link's hour
    const expired = await g.http.get(`${link.pathname}${link.search}`);
    expect(expired.status).toBe(404);
    expect(expired.body.error).toMatchObject({ code: 'image_not_found', type: 'not_found_error' });
  });
});
