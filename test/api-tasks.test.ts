// HTTP-level tests of the task routes: the happy path to a playable MP4, and every kind of bad input.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, KEY_B, auth, probeVideo, startTestGateway, waitFor } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
/** What the gateway's injected resolver answers, by host name; a name not here does not resolve. */
const dnsAnswers = new Map<string, string>();

beforeAll(async () => {
  const resolve = async (host: string) => {
    const address = dnsAnswers.get(host);
    if (address === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return [{ address, family: address.includes(':') ? (6 as const) : (4 as const) }];
  };
  h = await startTestGateway({ server: { port: 0, body_limit_bytes: 4096 } }, { resolve });
});
afterAll(async () => {
  await h.close();
});

const submit = (body: unknown, key = KEY_A) => h.http.post('/v1/videos/generations').set(auth(key)).send(body as object);

async function waitForStatus(id: string, key = KEY_A, statuses = ['completed', 'failed', 'cancelled']) {
  return waitFor(async () => {
    const res = await h.http.get(`/v1/tasks/${id}`).set(auth(key));
    return statuses.includes(res.body.status) ? res.body : undefined;
  });
}

function expectError(res: { status: number; body: unknown }, status: number, type: string, code: string, param: string | null) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String), type, param } });
}

describe('submit to download', () => {
  it('runs a task to a stored MP4 of the requested size and duration, with Range support', async () => {
    const res = await submit({ model: 'sora-2-pro', prompt: 'a paper boat on a rainy street', aspect_ratio: '16:9', quality: '1080p', duration: 4 });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      object: 'video.generation.task',
      model: 'sora-2-pro',
      status: 'pending',
      progress: 0,
      type: 'video',
      task_info: { can_cancel: true, video_duration: 4, size: '1792x1024', prompt: 'a paper boat on a rainy street', reference_image: false },
      // simulated sora-2-pro high tier: $0.50/s x 4 s = $2.00 = 200 credits of $0.01
      usage: { billing_rule: 'per_second', credits_reserved: 200 },
    });
    expect(res.body.id).toMatch(/^task_[0-9a-f]{24}$/);
    expect(res.body.created).toBeGreaterThan(1_700_000_000);

    const done = await waitForStatus(res.body.id);
    expect(done.error).toBeUndefined();
    expect(done.status).toBe('completed');
    expect(done.progress).toBe(100);
    expect(done.provider).toBe('simulated');
    expect(done.attempts).toEqual([
      { provider: 'simulated', upstream_id: expect.stringMatching(/^sim_/), started_at: expect.any(Number), ended_at: expect.any(Number), outcome: 'completed', price_usd: 2 },
    ]);
    expect(done.task_info.can_cancel).toBe(false);
    expect(done.results).toEqual([expect.stringMatching(new RegExp(`/v1/tasks/${res.body.id}/content$`))]);

    const contentPath = new URL(done.results[0]).pathname;
    const video = await h.http.get(contentPath).set(auth(KEY_A)).responseType('blob');
    expect(video.status).toBe(200);
    expect(video.headers['content-type']).toBe('video/mp4');
    expect(video.headers['accept-ranges']).toBe('bytes');
    const file = path.join(h.dir, 'downloaded.mp4');
    fs.writeFileSync(file, video.body as Buffer);
    const facts = probeVideo(file);
    expect(facts.codec).toBe('h264');
    expect([facts.width, facts.height]).toEqual([1792, 1024]);
    expect(Math.abs(facts.duration_s - 4)).toBeLessThan(0.1);

    const range = await h.http.get(contentPath).set(auth(KEY_A)).set('Range', 'bytes=100-199').responseType('blob');
    expect(range.status).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 100-199/${(video.body as Buffer).length}`);
    expect((range.body as Buffer).equals((video.body as Buffer).subarray(100, 200))).toBe(true);

    const beyond = await h.http.get(contentPath).set(auth(KEY_A)).set('Range', 'bytes=999999999-');
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-type']).toMatch(/^application\/json/);
    expect(beyond.headers['content-range']).toBe(`bytes */${(video.body as Buffer).length}`);
    expect(beyond.body.error).toMatchObject({ code: 'range_not_satisfiable', type: 'invalid_request_error', param: 'Range' });
  });

  it('applies the defaults: sora-2, 9:16 at 720p, 4 s', async () => {
    const res = await submit({ prompt: 'defaults' });
    expect(res.status).toBe(202);
    expect(res.body.model).toBe('sora-2');
    expect(res.body.task_info).toMatchObject({ size: '720x1280', video_duration: 4 });
    expect(res.body.usage.credits_reserved).toBe(40); // $0.10/s x 4 s
  });
});

describe('bad input', () => {
  const valid = { model: 'sora-2', prompt: 'ok', duration: 4 };

  it('missing prompt', async () => {
    expectError(await submit({ model: 'sora-2' }), 400, 'invalid_request_error', 'missing_field', 'prompt');
  });
  it('blank prompt', async () => {
    expectError(await submit({ ...valid, prompt: '   ' }), 400, 'invalid_request_error', 'invalid_value', 'prompt');
  });
  it('unknown model', async () => {
    const res = await submit({ ...valid, model: 'sora-3' });
    expectError(res, 400, 'invalid_request_error', 'model_not_found', 'model');
    expect(res.body.error.message).toContain('sora-2-pro');
  });
  it('duration 5', async () => {
    expectError(await submit({ ...valid, duration: 5 }), 400, 'invalid_request_error', 'invalid_value', 'duration');
  });
  it('1080p on sora-2', async () => {
    expectError(await submit({ ...valid, quality: '1080p' }), 400, 'invalid_request_error', 'unsupported_quality', 'quality');
    expectError(await submit({ ...valid, aspect_ratio: '1792x1024' }), 400, 'invalid_request_error', 'unsupported_quality', 'quality');
  });
  it('quality contradicting an explicit size', async () => {
    expectError(await submit({ ...valid, model: 'sora-2-pro', aspect_ratio: '1280x720', quality: '1080p' }), 400, 'invalid_request_error', 'invalid_value', 'quality');
  });
  it('an aspect ratio outside the list', async () => {
    expectError(await submit({ ...valid, aspect_ratio: '4:3' }), 400, 'invalid_request_error', 'invalid_value', 'aspect_ratio');
  });
  it('two image URLs', async () => {
    const res = await submit({ ...valid, image_urls: ['https://images.example.com/a.png', 'https://images.example.com/b.png'] });
    expectError(res, 400, 'invalid_request_error', 'invalid_value', 'image_urls');
  });
  it('an image URL on a private address', async () => {
    expectError(await submit({ ...valid, image_urls: ['https://169.254.169.254/latest/meta-data'] }), 400, 'invalid_request_error', 'invalid_url', 'image_urls');
  });
  it.each([
    ['http://hooks.example.com/done', 'https'],
    ['https://127.0.0.1/hook', 'private'],
    ['https://10.1.2.3/hook', 'private'],
    ['https://[::1]/hook', 'private'],
    ['https://2130706433/hook', 'private'], // 127.0.0.1 written as a number
    ['https://localhost/hook', 'internal'],
    ['https://metadata/hook', 'internal'],
    ['https://user:pw@hooks.example.com/hook', 'credentials'],
    ['not a url', ''],
  ])('callback_url %s', async (url, why) => {
    const res = await submit({ ...valid, callback_url: url });
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('callback_url');
    expect(res.body.error.message).toContain(why);
  });
  it.each([
    ['127.0.0.1', 'callback_url resolves only to private or reserved addresses'],
    ['10.0.0.1', 'callback_url resolves only to private or reserved addresses'],
    [undefined, 'callback_url does not resolve'],
  ])('callback_url whose name resolves to %s', async (address, message) => {
    if (address) dnsAnswers.set('hooks.example.com', address);
    try {
      const res = await submit({ ...valid, callback_url: 'https://hooks.example.com/vidgate' });
      expectError(res, 400, 'invalid_request_error', 'invalid_url', 'callback_url');
      expect(res.body.error.message).toBe(message);
    } finally {
      dnsAnswers.clear();
    }
  });
  it('accepts a public HTTPS callback_url', async () => {
    // The public answer only while submitting: nothing may ever connect to it (a delivery resolves again later).
    dnsAnswers.set('hooks.example.com', '93.184.215.14');
    try {
      expect((await submit({ ...valid, callback_url: 'https://hooks.example.com/vidgate' })).status).toBe(202);
    } finally {
      dnsAnswers.clear();
    }
  });
  it('an unknown field', async () => {
    expectError(await submit({ ...valid, colour: 'red' }), 400, 'invalid_request_error', 'unknown_field', 'colour');
  });
  it('malformed JSON', async () => {
    const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).set('Content-Type', 'application/json').send('{"prompt": "x",');
    expectError(res, 400, 'invalid_request_error', 'invalid_json', null);
  });
  it('JSON that is not an object: the same answer as for an array', async () => {
    for (const body of ['null', '1', '"a video"', 'true', '[]']) {
      const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).set('Content-Type', 'application/json').send(body);
      expectError(res, 400, 'invalid_request_error', 'invalid_value', 'body');
      expect(res.body.error.message, body).toBe('body: must be object');
    }
  });
  it('a body that is not JSON', async () => {
    const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).set('Content-Type', 'text/plain').send('make a video');
    expectError(res, 415, 'unsupported_media_type_error', 'unsupported_media_type', null);
  });
  it('a body over the size limit', async () => {
    expectError(await submit({ ...valid, prompt: 'x'.repeat(5000) }), 413, 'request_too_large_error', 'body_too_large', null);
  });
  it('no key, a malformed header, a wrong key', async () => {
    expectError(await h.http.post('/v1/videos/generations').send(valid), 401, 'authentication_error', 'invalid_api_key', null);
    expectError(await h.http.get('/v1/tasks').set('Authorization', KEY_A), 401, 'authentication_error', 'invalid_api_key', null);
    expectError(await h.http.get('/v1/tasks').set(auth('not-a-real-key-at-all')), 401, 'authentication_error', 'invalid_api_key', null);
  });
  it('an unknown route', async () => {
    expectError(await h.http.get('/v1/nothing-here').set(auth(KEY_A)), 404, 'not_found_error', 'route_not_found', null);
  });
});

describe('reading, listing, cancelling', () => {
  it('unknown task id answers 404 on every task route', async () => {
    for (const req of [
      h.http.get('/v1/tasks/task_000000000000000000000000'),
      h.http.post('/v1/tasks/task_000000000000000000000000/cancel'),
      h.http.get('/v1/tasks/task_000000000000000000000000/content'),
    ]) {
      expectError(await req.set(auth(KEY_A)), 404, 'not_found_error', 'task_not_found', 'id');
    }
  });

  it("another key's task answers exactly as one that does not exist", async () => {
    const mine = (await submit({ prompt: 'private to A' })).body.id as string;
    const done = await waitForStatus(mine);
    expect(done.status).toBe('completed');
    for (const [method, suffix] of [['get', ''], ['post', '/cancel'], ['get', '/content']] as const) {
      const theirs = await h.http[method](`/v1/tasks/${mine}${suffix}`).set(auth(KEY_B));
      const missing = await h.http[method](`/v1/tasks/task_ffffffffffffffffffffffff${suffix}`).set(auth(KEY_B));
      expect(theirs.status).toBe(404);
      expect(theirs.body.error.message.replace(mine, 'ID')).toBe(missing.body.error.message.replace('task_ffffffffffffffffffffffff', 'ID'));
    }
    const list = await h.http.get('/v1/tasks').set(auth(KEY_B));
    expect(list.body.data.map((t: { id: string }) => t.id)).not.toContain(mine);
  });

  it('lists newest first with cursor pagination and a status filter', async () => {
    const list = await h.http.get('/v1/tasks?limit=100').set(auth(KEY_B));
    const before = list.body.data.length as number;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit({ prompt: `list ${i}` }, KEY_B)).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { data: { id: string }[]; next_cursor: string | null; has_more: boolean } } = await h.http.get(`/v1/tasks?limit=2${cursor ? `&after=${cursor}` : ''}`).set(auth(KEY_B));
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.data.map((t: { id: string }) => t.id));
      cursor = page.body.next_cursor;
      expect(page.body.has_more).toBe(cursor !== null);
    } while (cursor);
    expect(seen.length).toBe(before + 5);
    expect(seen.slice(0, 5)).toEqual([...ids].reverse());

    await h.http.post(`/v1/tasks/${ids[0]}/cancel`).set(auth(KEY_B));
    const cancelled = await h.http.get('/v1/tasks?status=cancelled').set(auth(KEY_B));
    expect(cancelled.body.data.map((t: { id: string }) => t.id)).toEqual([ids[0]]);
  });

  it('rejects a bad cursor, limit or status', async () => {
    expectError(await h.http.get('/v1/tasks?after=garbage').set(auth(KEY_A)), 400, 'invalid_request_error', 'invalid_cursor', 'after');
    expectError(await h.http.get('/v1/tasks?limit=0').set(auth(KEY_A)), 400, 'invalid_request_error', 'invalid_value', 'limit');
    expectError(await h.http.get('/v1/tasks?status=done').set(auth(KEY_A)), 400, 'invalid_request_error', 'invalid_value', 'status');
  });

  it('cancels a running task, which then never completes; a finished task answers 409', async () => {
    const id = (await submit({ prompt: 'to be cancelled', duration: 12 })).body.id as string;
    const res = await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(KEY_A));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'cancelled', task_info: { can_cancel: false } });
    expectError(await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)), 409, 'conflict_error', 'task_cancelled', null);
    expectError(await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(KEY_A)), 409, 'conflict_error', 'task_finished', null);
    await new Promise((r) => setTimeout(r, 800)); // longer than the simulated job takes
    expect((await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.status).toBe('cancelled');
  });

  it('the content of a task still running answers 409', async () => {
    const id = (await submit({ prompt: 'not yet', duration: 12 })).body.id as string;
    expectError(await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)), 409, 'conflict_error', 'task_not_completed', null);
  });
});
