// The official `openai` npm SDK, unmodified except for baseURL and key, drives a real vidgate process over real
// HTTP: every call of `client.videos` and each error class it maps statuses to.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import ffprobe from '@ffprobe-installer/ffprobe';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, probeVideo, tempDir } from './support/gateway';
import { makeImage } from './support/images';
import { startServerProcess, type ServerProcess } from './support/process';

const ADMIN = 'sdk-test-admin-token-0123456789';
const VIDEO_KEYS = ['id', 'object', 'model', 'status', 'progress', 'created_at', 'completed_at', 'expires_at', 'prompt', 'size', 'seconds', 'remixed_from_video_id', 'error'];

let server: ServerProcess;
let dataDir: string;
let client: OpenAI;

beforeAll(async () => {
  dataDir = tempDir();
  server = await startServerProcess({
    VIDGATE_DATA_DIR: dataDir,
    VIDGATE_SERVER__PORT: '0',
    VIDGATE_AUTH__API_KEYS: KEY_A,
    VIDGATE_ADMIN_TOKEN: ADMIN,
    VIDGATE_LOG_LEVEL: 'warn',
    VIDGATE_PROVIDERS: JSON.stringify([{ id: 'simulated', kind: 'simulated', duration_ms: 1500, fps: 4 }]),
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY_A });
});

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/**
 * What OpenAI's Python SDK does in `videos.create_and_poll` (the Node SDK has no such helper): create, then
 * retrieve at the interval the server asks for in `openai-poll-after-ms` until the video is finished.
 */
async function createAndPoll(params: OpenAI.VideoCreateParams, timeoutMs = 60_000): Promise<{ video: OpenAI.Video; pollAfterMs: number[] }> {
  const pollAfterMs: number[] = [];
  let { data: video, response } = await client.videos.create(params).withResponse();
  const deadline = Date.now() + timeoutMs;
  while (video.status === 'queued' || video.status === 'in_progress') {
    const wait = Number(response.headers.get('openai-poll-after-ms'));
    pollAfterMs.push(wait);
    if (Date.now() > deadline) throw new Error(`video not finished: ${JSON.stringify(video)}`);
    await new Promise((r) => setTimeout(r, wait));
    ({ data: video, response } = await client.videos.retrieve(video.id).withResponse());
  }
  return { video, pollAfterMs };
}

async function download(id: string, variant: 'video' | 'thumbnail' | 'spritesheet'): Promise<{ file: string; type: string | null }> {
  const response = await client.videos.downloadContent(id, { variant });
  const file = path.join(dataDir, `${id}.${variant}`);
  fs.writeFileSync(file, Buffer.from(await response.arrayBuffer()));
  return { file, type: response.headers.get('content-type') };
}

/** Width and height of a decoded image (ffprobe decodes it; throws when it cannot). */
function probeImage(file: string): { codec: string; width: number; height: number } {
  const out = spawnSync(ffprobe.path, ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`not an image: ${out.stderr}`);
  const s = (JSON.parse(out.stdout) as { streams: { codec_name: string; width: number; height: number }[] }).streams[0]!;
  return { codec: s.codec_name, width: s.width, height: s.height };
}

async function adminPost(pathname: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}${pathname}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Record<string, unknown>;
}

/** A client of a new team with these quotas; retries off, so that a 429 reaches the test. */
async function teamClient(name: string, quotas: Record<string, number>): Promise<OpenAI> {
  const team = await adminPost('/admin/teams', { name, quotas });
  const key = await adminPost(`/admin/teams/${String(team.id)}/keys`, { name: 'sdk' });
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: String(key.key), maxRetries: 0 });
}

describe('the official openai SDK against a real vidgate process', () => {
  it('creates (multipart), polls at openai-poll-after-ms, retrieves and downloads all three variants', async () => {
    const created = await client.videos.create({ prompt: 'a paper boat on a rainy street', model: 'sora-2', seconds: '4', size: '1280x720' });
    expect(Object.keys(created).sort()).toEqual([...VIDEO_KEYS].sort());
    expect(created).toMatchObject({ object: 'video', model: 'sora-2', status: 'queued', seconds: '4', size: '1280x720', error: null, remixed_from_video_id: null });

    const { video, pollAfterMs } = await createAndPoll({ prompt: 'a lighthouse at dusk', model: 'sora-2', seconds: '8', size: '720x1280' });
    expect(pollAfterMs.length).toBeGreaterThan(0);
    expect(pollAfterMs.every((ms) => ms > 0)).toBe(true);
    expect(video).toMatchObject({ status: 'completed', progress: 100, seconds: '8', size: '720x1280', error: null });
    expect(video.completed_at).toBeGreaterThanOrEqual(video.created_at);
    expect(video.expires_at).toBeGreaterThan(video.completed_at!);
    expect(await client.videos.retrieve(video.id)).toEqual(video);

    const mp4 = await download(video.id, 'video');
    expect(mp4.type).toBe('video/mp4');
    const facts = probeVideo(mp4.file);
    expect(facts).toMatchObject({ codec: 'h264', width: 720, height: 1280 });
    expect(facts.duration_s).toBeCloseTo(8, 0);

    const thumbnail = await download(video.id, 'thumbnail');
    expect(thumbnail.type).toBe('image/jpeg');
    expect(probeImage(thumbnail.file)).toEqual({ codec: 'mjpeg', width: 720, height: 1280 });
    const sprites = await download(video.id, 'spritesheet');
    expect(sprites.type).toBe('image/jpeg');
    const sheet = probeImage(sprites.file);
    expect(sheet.codec).toBe('mjpeg');
    expect(sheet.width).toBe(5 * 256); // 5 columns of 256-pixel frames, 2 rows
    // Made once: the stored files are read back, byte for byte.
    expect(fs.readFileSync((await download(video.id, 'spritesheet')).file)).toEqual(fs.readFileSync(sprites.file));
    const stored = fs.readdirSync(path.join(dataDir, 'videos')).filter((f) => f.startsWith(video.id));
    expect(stored.sort()).toEqual([`${video.id}.mp4`, `${video.id}.spritesheet.jpg`, `${video.id}.thumbnail.jpg`]);
  });

  it('lists with auto-paging over several pages, newest first, and oldest first with order=asc', async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await client.videos.create({ prompt: `page test ${i}`, seconds: '4' })).id);
    const seen: string[] = [];
    const first = await client.videos.list({ limit: 2 });
    expect(first.data).toHaveLength(2);
    expect(first.has_more).toBe(true);
    for await (const v of client.videos.list({ limit: 2 })) seen.push(v.id);
    expect(new Set(seen).size).toBe(seen.length);
    // The five just made come first, newest first; the earlier test's videos follow.
    expect(seen.slice(0, 5)).toEqual([...made].reverse());
    expect(seen.length).toBeGreaterThanOrEqual(7);

    const ascending: string[] = [];
    for await (const v of client.videos.list({ limit: 3, order: 'asc' })) ascending.push(v.id);
    expect(ascending).toEqual([...seen].reverse());
  });

  it('remixes a completed video on the provider that made it', async () => {
    const { video: original } = await createAndPoll({ prompt: 'a red kite over the sea', seconds: '4', size: '1280x720' });
    const remix = await client.videos.remix(original.id, { prompt: 'the same kite at night' });
    expect(remix).toMatchObject({ status: 'queued', remixed_from_video_id: original.id, prompt: 'the same kite at night', size: '1280x720', seconds: '4' });
    const deadline = Date.now() + 60_000;
    let done = remix;
    while (done.status !== 'completed' && done.status !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      done = await client.videos.retrieve(remix.id);
    }
    expect(done.status).toBe('completed');
    expect(probeVideo((await download(remix.id, 'video')).file)).toMatchObject({ width: 1280, height: 720 });
    // The task shows where it ran: the original's provider.
    const task = (await (await fetch(`${server.url}/v1/tasks/${remix.id}`, { headers: { Authorization: `Bearer ${KEY_A}` } })).json()) as { provider: string };
    expect(task.provider).toBe('simulated');
  });

  it('deletes: a running video is cancelled, then is gone from reads and lists', async () => {
    const running = await client.videos.create({ prompt: 'to be deleted', seconds: '12' });
    expect(await client.videos.delete(running.id)).toEqual({ id: running.id, object: 'video.deleted', deleted: true });
    await expect(client.videos.retrieve(running.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const ids: string[] = [];
    for await (const v of client.videos.list({ limit: 100 })) ids.push(v.id);
    expect(ids).not.toContain(running.id);
    await expect(client.videos.delete(running.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('maps each error to the SDK class of its status', async () => {
    const notFound = await client.videos.retrieve('task_doesnotexist').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect(notFound).toMatchObject({ status: 404, code: 'task_not_found', type: 'not_found_error' });

    const badSeconds = await client.videos.create({ prompt: 'x', seconds: '5' as OpenAI.VideoSeconds }).catch((e: unknown) => e);
    expect(badSeconds).toBeInstanceOf(OpenAI.BadRequestError);
    expect(badSeconds).toMatchObject({ status: 400, param: 'seconds', type: 'invalid_request_error' });

    const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-a-key' });
    const unauthorized = await wrongKey.videos.list().catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unauthorized).toMatchObject({ status: 401, code: 'invalid_api_key' });

    const poor = await teamClient('sdk-poor', { credits_per_day: 1 });
    const broke = await poor.videos.create({ prompt: 'too dear', seconds: '4' }).catch((e: unknown) => e);
    expect(broke).toBeInstanceOf(OpenAI.APIError);
    expect(broke).toMatchObject({ status: 402, code: 'credits_per_day_exceeded', type: 'insufficient_quota_error' });
    expect(Number((broke as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after'))).toBeGreaterThan(0);

    const busy = await teamClient('sdk-busy', { max_concurrent: 1 });
    await busy.videos.create({ prompt: 'the one allowed', seconds: '12' });
    const limited = await busy.videos.create({ prompt: 'one too many', seconds: '12' }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect(limited).toMatchObject({ status: 429, code: 'max_concurrent_exceeded' });
    expect((limited as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBeTruthy();
  });

  it('creates with an uploaded image (a file part) and refuses a bad one and an image URL on a private address', async () => {
    const png = makeImage('png', 128, 72);
    const withImage = await client.videos.create({ prompt: 'from a picture', seconds: '4', size: '1280x720', input_reference: await toFile(png, 'reference.png', { type: 'image/png' }) });
    expect(withImage).toMatchObject({ status: 'queued', size: '1280x720' });
    const stored = fs.readdirSync(path.join(dataDir, 'images'));
    expect(stored).toContain(createHash('sha256').update(png).digest('hex'));

    const gif = await client.videos
      .create({ prompt: 'from a gif', seconds: '4', input_reference: await toFile(makeImage('gif'), 'looks.png', { type: 'image/png' }) })
      .catch((e: unknown) => e);
    expect(gif).toBeInstanceOf(OpenAI.BadRequestError);
    expect(gif).toMatchObject({ status: 400, code: 'invalid_image', param: 'input_reference' });

    const privateUrl = await client.videos.create({ prompt: 'from a link', seconds: '4', input_reference: { image_url: 'http://10.0.0.1/a.png' } }).catch((e: unknown) => e);
    expect(privateUrl).toBeInstanceOf(OpenAI.BadRequestError);
    expect(privateUrl).toMatchObject({ status: 400, code: 'invalid_url', param: 'input_reference' });
  });
});
