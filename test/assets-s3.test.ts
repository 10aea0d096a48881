// The asset-store contract, run against both backends: local disk, and S3 against a real S3-compatible server
// (s3rver on 127.0.0.1). Then a gateway configured with `assets.kind: s3`, end to end over HTTP.
import { captureLogger } from './support/log-capture';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalAssetStore } from '../src/assets/local';
import { createS3AssetStore } from '../src/assets/s3';
import { AssetMissing, AssetStoreError, type AssetStore } from '../src/assets/types';
import { ConfigError, loadConfig, parseConfig } from '../src/core/config';
import { ProviderError } from '../src/providers/types';
import { KEY_A, auth, startTestGateway, tempDir, waitFor } from './support/gateway';
import { S3RVER_CREDENTIALS, startTestS3, type TestS3 } from './support/s3-server';

let s3: TestS3;
beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
});

/** Bytes that pass the store's MP4 sniff (an `ftyp` box first), then `size` random bytes. */
function fakeMp4(size: number): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypisom', 'latin1'), crypto.randomBytes(size)]);
}

/** A stream of `bytes` in chunks, as a download arrives. */
const streamOf = (bytes: Buffer, chunk = 64 * 1024) => Readable.from((function* () {
  for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
})());

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Backend {
  store: AssetStore;
  /** What the backend holds, as names relative to it (local files, or object keys less the prefix). */
  held(): Promise<string[]>;
  /** The local directory where temporary files go; empty between operations. */
  scratch: string;
}

const backends: [string, () => Promise<Backend>][] = [
  ['local', async () => {
    const dir = tempDir('vidgate-assets-');
    return { store: createLocalAssetStore(dir), held: async () => fs.readdirSync(dir).sort(), scratch: dir };
  }],
  ['s3', async () => {
    const prefix = `t${crypto.randomBytes(4).toString('hex')}/`;
    const scratch = tempDir('vidgate-scratch-');
    const store = createS3AssetStore({ endpoint: s3.endpoint, bucket: s3.bucket, region: 'us-east-1', force_path_style: true, credentials: S3RVER_CREDENTIALS, prefix, scratch_dir: scratch });
    return { store, held: async () => (await s3.keys(prefix)).map((k) => k.slice(prefix.length)), scratch };
  }],
];

describe.each(backends)('the asset store contract: %s', (kind, make) => {
  let b: Backend;
  beforeAll(async () => {
    b = await make();
  });
  /** No temporary file was left behind (the local backend's scratch is its own directory: only finished files). */
  const scratchIsClean = () => expect(fs.readdirSync(b.scratch).filter((n) => n.endsWith('.part'))).toEqual([]);

  it(`is ${kind}`, () => {
    expect(b.store.kind).toBe(kind);
  });

  it('stores a video and reads it back whole and by range', async () => {
    // Over 5 MiB: more than one part of a multipart upload on S3.
    const video = fakeMp4(11 * 1024 * 1024);
    expect(await b.store.put('task_a', streamOf(video))).toEqual({ bytes: video.length });
    expect(await b.store.stat({ key: 'task_a' })).toEqual({ size_bytes: video.length });
    expect((await read(await b.store.open({ key: 'task_a' }))).equals(video)).toBe(true);
    for (const [start, end] of [[0, 0], [0, 7], [100, 199], [6_000_000, 6_000_099], [video.length - 10, video.length - 1]] as const) {
      expect((await read(await b.store.open({ key: 'task_a' }, { start, end }))).equals(video.subarray(start, end + 1))).toBe(true);
    }
    expect(await b.held()).toEqual(['task_a.mp4']);
    scratchIsClean();
  });

  it('refuses what is not an MP4, keeping nothing', async () => {
    const err = await b.store.put('task_b', streamOf(Buffer.from('<html>not a video</html>'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: 'invalid_video' });
    expect(await b.store.stat({ key: 'task_b' })).toBeUndefined();
    expect(await b.held()).not.toContain('task_b.mp4');
    scratchIsClean();
  });

  it('runs the check on the complete file before the video becomes visible; a refusal keeps the earlier copy whole', async () => {
    const first = fakeMp4(300_000);
    let checked: Buffer | undefined;
    await b.store.put('task_c', streamOf(first), async (file) => {
      checked = fs.readFileSync(file);
      expect(await b.store.stat({ key: 'task_c' })).toBeUndefined(); // not visible while being checked
    });
    expect(checked?.equals(first)).toBe(true);

    const second = fakeMp4(200_000);
    const refusal = new ProviderError('output_mismatch', 'not what was asked', true);
    await expect(b.store.put('task_c', streamOf(second), async () => Promise.reject(refusal))).rejects.toBe(refusal);
    expect((await read(await b.store.open({ key: 'task_c' }))).equals(first)).toBe(true);
    await expect(b.store.put('task_d', streamOf(second), async () => Promise.reject(refusal))).rejects.toBe(refusal);
    expect(await b.store.stat({ key: 'task_d' })).toBeUndefined();
    expect(await b.held()).not.toContain('task_d.mp4');
    scratchIsClean();
  });

  it('a source that fails mid-download keeps nothing', async () => {
    const broken = new Readable({ read() {} });
    broken.push(fakeMp4(1000));
    setImmediate(() => broken.destroy(new Error('connection reset by the provider')));
    await expect(b.store.put('task_e', broken)).rejects.toThrow('connection reset by the provider');
    expect(await b.store.stat({ key: 'task_e' })).toBeUndefined();
    scratchIsClean();
  });

  it('concurrent puts of one key leave one of them whole', async () => {
    const bodies = [fakeMp4(700_000), fakeMp4(900_000), fakeMp4(500_000)];
    await Promise.all(bodies.map((body) => b.store.put('task_f', streamOf(body, 16 * 1024))));
    const stored = await read(await b.store.open({ key: 'task_f' }));
    expect(bodies.filter((body) => body.equals(stored))).toHaveLength(1);
    expect((await b.store.stat({ key: 'task_f' }))?.size_bytes).toBe(stored.length);
    expect((await b.held()).filter((n) => n.startsWith('task_f.'))).toEqual(['task_f.mp4']);
    scratchIsClean();
  });

  it('keeps derived files beside the video, gives the video as a local file, and removes them all together', async () => {
    const video = fakeMp4(50_000);
    await b.store.put('task_g', streamOf(video));
    const copied = await b.store.withLocalCopy('task_g', async (file) => fs.readFileSync(file));
    expect(copied.equals(video)).toBe(true);
    const jpeg = path.join(tempDir(), 'thumb.jpg');
    fs.writeFileSync(jpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    await b.store.putDerived('task_g', 'thumbnail.jpg', jpeg);
    expect(fs.existsSync(jpeg)).toBe(true); // left in place for the caller
    expect(await b.store.stat({ key: 'task_g', derived: 'thumbnail.jpg' })).toEqual({ size_bytes: 7 });
    expect((await read(await b.store.open({ key: 'task_g', derived: 'thumbnail.jpg' }))).equals(fs.readFileSync(jpeg))).toBe(true);
    expect((await b.held()).filter((n) => n.startsWith('task_g.'))).toEqual(['task_g.mp4', 'task_g.thumbnail.jpg']);

    await b.store.remove('task_g');
    expect(await b.held()).not.toEqual(expect.arrayContaining(['task_g.mp4']));
    expect((await b.held()).filter((n) => n.startsWith('task_g.'))).toEqual([]);
    expect(await b.store.stat({ key: 'task_g' })).toBeUndefined();
    await b.store.remove('task_g'); // nothing left to remove: no error
    scratchIsClean();
  });

  it('says AssetMissing for a file it does not hold', async () => {
    await expect(b.store.open({ key: 'task_none' })).rejects.toBeInstanceOf(AssetMissing);
    await expect(b.store.open({ key: 'task_none', derived: 'thumbnail.jpg' }, { start: 0, end: 1 })).rejects.toBeInstanceOf(AssetMissing);
    await expect(b.store.withLocalCopy('task_none', async () => 1)).rejects.toBeInstanceOf(AssetMissing);
    expect(await b.store.stat({ key: 'task_none', derived: 'spritesheet.jpg' })).toBeUndefined();
    scratchIsClean();
  });

  it('refuses keys and names that could leave the store', async () => {
    await expect(b.store.stat({ key: '../etc' })).rejects.toThrow('unsafe asset key');
    await expect(b.store.stat({ key: 'task_a', derived: '../x.jpg' })).rejects.toThrow('unsafe asset name');
  });
});

describe('the S3 backend only', () => {
  const s3Store = (options: Partial<Parameters<typeof createS3AssetStore>[0]> = {}) =>
    createS3AssetStore({ endpoint: s3.endpoint, bucket: s3.bucket, region: 'us-east-1', force_path_style: true, credentials: S3RVER_CREDENTIALS, prefix: 'presign/', scratch_dir: tempDir(), ...options });

  it('presigns a GET that works without credentials, whole and by range', async () => {
    const store = s3Store();
    const video = fakeMp4(100_000);
    await store.put('task_p', streamOf(video));
    const url = await store.presign!({ key: 'task_p' }, 60);
    expect(url).toMatch(new RegExp(`^${s3.endpoint}/${s3.bucket}/presign/task_p\\.mp4\\?.*X-Amz-Expires=60`));
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('video/mp4');
    expect(Buffer.from(await whole.arrayBuffer()).equals(video)).toBe(true);
    const part = await fetch(url, { headers: { Range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(video.subarray(10, 20))).toBe(true);
  });

  it('reports the object store failing as AssetStoreError (not the provider\'s fault), after checking the video', async () => {
    const closed = await freePort();
    const store = s3Store({ endpoint: `http://127.0.0.1:${closed}` });
    let checked = false;
    const err = await store.put('task_q', streamOf(fakeMp4(1000)), async () => void (checked = true)).catch((e: unknown) => e);
    expect(checked).toBe(true);
    expect(err).toBeInstanceOf(AssetStoreError);
    await expect(store.stat({ key: 'task_q' })).rejects.toBeInstanceOf(AssetStoreError);
  });

  it('refuses unknown credentials as AssetStoreError, without the secret in the message', async () => {
    const store = s3Store({ credentials: { accessKeyId: 'UNKNOWN', secretAccessKey: 'not-the-secret-0123' } });
    const err = (await store.put('task_r', streamOf(fakeMp4(1000))).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(AssetStoreError);
    expect(err.message).not.toContain('not-the-secret-0123');
    expect(await s3.keys('presign/task_r')).toEqual([]);
  });
});

type Harness = Awaited<ReturnType<typeof startTestGateway>>;

/** A gateway whose videos go to the test S3 server under `prefix`, its credentials named by variables. */
function startS3Gateway(prefix: string, s3Extra: Record<string, unknown> = {}, now?: () => number) {
  return startTestGateway(
    {
      assets: {
        kind: 's3',
        retention_days: 1,
        sweep_interval_ms: 100,
        s3: { endpoint: s3.endpoint, bucket: s3.bucket, force_path_style: true, access_key_id_env: 'TEST_S3_KEY_ID', secret_access_key_env: 'TEST_S3_SECRET', prefix, ...s3Extra },
      },
    },
    { env: { TEST_S3_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, TEST_S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey }, ...(now && { now }) },
  );
}

/** Submits on the simulated provider (which renders a real MP4) and waits for the task to complete. */
async function completedTask(h: Harness): Promise<string> {
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a lighthouse at dusk', aspect_ratio: '16:9', duration: 4 });
  expect(res.status).toBe(202);
  const done = await waitFor(async () => {
    const t = await h.http.get(`/v1/tasks/${res.body.id}`).set(auth(KEY_A));
    return ['completed', 'failed', 'cancelled'].includes(t.body.status) ? t.body : undefined;
  });
  expect(done).toMatchObject({ status: 'completed' });
  return res.body.id as string;
}

/** Nothing temporary is left in the gateway's scratch space (`assets.dir`). */
const scratchOf = (h: Harness) => (fs.existsSync(h.config.assets.dir) ? fs.readdirSync(h.config.assets.dir) : []);

describe('a gateway with assets.kind s3', () => {
  let h: Harness;
  let offsetMs = 0;
  let id: string;
  let object: Buffer;
  beforeAll(async () => {
    h = await startS3Gateway('gw/', {}, () => Date.now() + offsetMs);
    id = await completedTask(h);
    object = await s3.bytes(`gw/${id}.mp4`);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('keeps the downloaded video as an object, checked (a real MP4), leaving no temporary file', async () => {
    expect(await s3.keys('gw/')).toEqual([`gw/${id}.mp4`]);
    expect(object.toString('latin1', 4, 8)).toBe('ftyp');
    expect(scratchOf(h)).toEqual([]);
  });

  it('serves the whole object through both doors', async () => {
    for (const url of [`/v1/tasks/${id}/content`, `/v1/videos/${id}/content`, `/v1/videos/${id}/content?variant=video`]) {
      const res = await h.http.get(url).set(auth(KEY_A)).responseType('blob');
      expect(res.status).toBe(200);
      expect(res.headers).toMatchObject({ 'content-type': 'video/mp4', 'content-length': String(object.length), 'accept-ranges': 'bytes', 'cache-control': 'private, max-age=3600' });
      expect(res.headers['content-range']).toBeUndefined();
      expect((res.body as Buffer).equals(object)).toBe(true);
    }
  });

  it('answers single ranges with 206 and the bytes of the object', async () => {
    const size = object.length;
    const cases: [header: string, start: number, end: number][] = [
      ['bytes=100-199', 100, 199],
      ['bytes=0-0', 0, 0],
      ['bytes=1000-', 1000, size - 1],
      ['bytes=-50', size - 50, size - 1],
      ['bytes=10-99999999', 10, size - 1],
    ];
    for (const door of [`/v1/tasks/${id}/content`, `/v1/videos/${id}/content`]) {
      for (const [header, start, end] of cases) {
        const res = await h.http.get(door).set(auth(KEY_A)).set('Range', header).responseType('blob');
        expect(res.status, `${door} ${header}`).toBe(206);
        expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${size}`);
        expect(res.headers['content-length']).toBe(String(end - start + 1));
        expect(res.headers['content-type']).toBe('video/mp4');
        expect((res.body as Buffer).equals(object.subarray(start, end + 1)), `${door} ${header}`).toBe(true);
      }
    }
  });

  it('answers 416 for a range past the end, and the whole object for several ranges, a malformed one or an If-Range', async () => {
    const beyond = await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)).set('Range', `bytes=${object.length}-`);
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${object.length}`);
    expect(beyond.body.error).toMatchObject({ code: 'range_not_satisfiable', type: 'invalid_request_error', param: 'Range' });
    for (const headers of [{ Range: 'bytes=0-1,5-6' }, { Range: 'bytes=abc' }, { Range: 'bytes=0-9', 'If-Range': '"an-etag"' }]) {
      const res = await h.http.get(`/v1/videos/${id}/content`).set(auth(KEY_A)).set(headers).responseType('blob');
      expect(res.status, JSON.stringify(headers)).toBe(200);
      expect((res.body as Buffer).equals(object)).toBe(true);
    }
  });

  it('answers HEAD with the headers alone', async () => {
    const res = await h.http.head(`/v1/tasks/${id}/content`).set(auth(KEY_A)).set('Range', 'bytes=0-9');
    expect(res.status).toBe(206);
    expect(res.headers['content-length']).toBe('10');
  });

  it('makes the thumbnail and spritesheet once, from a local copy, and keeps each as an object beside the video', async () => {
    const thumbnail = await h.http.get(`/v1/videos/${id}/content?variant=thumbnail`).set(auth(KEY_A)).responseType('blob');
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers['content-type']).toBe('image/jpeg');
    const jpeg = thumbnail.body as Buffer;
    expect(jpeg.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect((await s3.bytes(`gw/${id}.thumbnail.jpg`)).equals(jpeg)).toBe(true);
    const again = await h.http.get(`/v1/videos/${id}/content?variant=thumbnail`).set(auth(KEY_A)).set('Range', 'bytes=0-99').responseType('blob');
    expect(again.status).toBe(206);
    expect((again.body as Buffer).equals(jpeg.subarray(0, 100))).toBe(true);
    const sprites = await h.http.get(`/v1/videos/${id}/content?variant=spritesheet`).set(auth(KEY_A)).responseType('blob');
    expect(sprites.status).toBe(200);
    expect((await s3.bytes(`gw/${id}.spritesheet.jpg`)).equals(sprites.body as Buffer)).toBe(true);
    expect(await s3.keys('gw/')).toEqual([`gw/${id}.mp4`, `gw/${id}.spritesheet.jpg`, `gw/${id}.thumbnail.jpg`]);
    expect(scratchOf(h)).toEqual([]);
  });

  it('retention removes the video and its images from the bucket', async () => {
    offsetMs = 2 * 24 * 3600 * 1000; // past the one day of retention, by the gateway's clock
    await waitFor(async () => ((await s3.keys('gw/')).length === 0 ? true : undefined));
    const gone = await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A));
    expect(gone.status).toBe(410);
    expect(gone.body.error.code).toBe('video_expired');
  });
});

describe('a gateway with assets.kind s3 and presigned redirects', () => {
  let h: Harness;
  let id: string;
  beforeAll(async () => {
    h = await startS3Gateway('redirect/', { presigned_redirect_ttl_s: 120 });
    id = await completedTask(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers 302 to a presigned URL of the object, which serves its bytes and ranges without credentials', async () => {
    const object = await s3.bytes(`redirect/${id}.mp4`);
    for (const door of [`/v1/tasks/${id}/content`, `/v1/videos/${id}/content`]) {
      const res = await h.http.get(door).set(auth(KEY_A));
      expect(res.status).toBe(302);
      expect(res.headers['cache-control']).toBe('no-store');
      const location = res.headers.location as string;
      expect(location.startsWith(`${s3.endpoint}/${s3.bucket}/redirect/${id}.mp4?`)).toBe(true);
      expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('120');
      const whole = await fetch(location);
      expect(whole.status).toBe(200);
      expect(Buffer.from(await whole.arrayBuffer()).equals(object)).toBe(true);
      const part = await fetch(location, { headers: { Range: 'bytes=4-7' } });
      expect(part.status).toBe(206);
      expect(Buffer.from(await part.arrayBuffer()).toString('latin1')).toBe('ftyp');
    }
  });

  it('redirects an image variant to its object once made', async () => {
    const res = await h.http.get(`/v1/videos/${id}/content?variant=thumbnail`).set(auth(KEY_A));
    expect(res.status).toBe(302);
    const image = await fetch(res.headers.location as string);
    expect(image.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await image.arrayBuffer()).equals(await s3.bytes(`redirect/${id}.thumbnail.jpg`))).toBe(true);
  });

  it('answers an unknown task 404 as JSON, not a redirect', async () => {
    expect((await h.http.get('/v1/tasks/task_000000000000000000000000/content').set(auth(KEY_A))).status).toBe(404);
  });
});

describe('a gateway whose object store is down', () => {
  it('keeps the task waiting without blaming the provider, completes it once the store is back, and answers 503 while it is down', async () => {
    const port = await freePort();
    const { log, entries } = captureLogger('error');
    const errors = () => entries().filter((e) => e.msg === 'cannot store video');
    const h = await startTestGateway(
      { assets: { kind: 's3', s3: { endpoint: `http://127.0.0.1:${port}`, bucket: 'videos', force_path_style: true, access_key_id_env: 'K', secret_access_key_env: 'S' } } },
      { env: { K: S3RVER_CREDENTIALS.accessKeyId, S: S3RVER_CREDENTIALS.secretAccessKey }, log },
    );
    let late: TestS3 | undefined;
    try {
      const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a kite over a beach', aspect_ratio: '16:9', duration: 4 });
      // The provider finished and its video was checked, but keeping it failed, again and again.
      await waitFor(async () => (errors().length >= 3 ? true : undefined));
      expect(errors()[0]).toMatchObject({ task_id: res.body.id, error: expect.stringMatching(/^object store: upload videos\/task_\w+\.mp4 failed/) });
      const waiting = await h.http.get(`/v1/tasks/${res.body.id}`).set(auth(KEY_A));
      expect(waiting.body.status).toBe('processing');
      expect(waiting.body.attempts).toHaveLength(1);
      const providers = await h.http.get('/v1/providers').set(auth(KEY_A));
      expect(JSON.stringify(providers.body)).not.toMatch(/"state":"(open|half_open)"/);

      late = await startTestS3('videos', port);
      const done = await waitFor(async () => {
        const t = await h.http.get(`/v1/tasks/${res.body.id}`).set(auth(KEY_A));
        return t.body.status === 'processing' ? undefined : t.body;
      });
      expect(done).toMatchObject({ status: 'completed', attempts: [expect.anything()] });
      expect(await late.keys()).toEqual([`${res.body.id}.mp4`]);

      // The store gone again: a download answers 503 store_unavailable, not 500.
      await late.close();
      late = undefined;
      const down = await h.http.get(`/v1/tasks/${res.body.id}/content`).set(auth(KEY_A));
      expect(down.status).toBe(503);
      expect(down.headers['retry-after']).toBe('1');
      expect(down.body.error).toMatchObject({ type: 'service_unavailable_error', code: 'store_unavailable' });
    } finally {
      await h.close();
      await late?.close();
    }
  });
});

describe('the assets settings', () => {
  it('default to local disk, and read the s3 section from the environment', () => {
    expect(parseConfig({}).assets).toMatchObject({ kind: 'local', dir: path.join('data', 'videos') });
    expect(parseConfig({}).assets.s3).toBeUndefined();
    const c = loadConfig({
      VIDGATE_ASSETS__KIND: 's3',
      VIDGATE_ASSETS__S3__BUCKET: 'videos',
      VIDGATE_ASSETS__S3__ENDPOINT: 'http://127.0.0.1:9000',
      VIDGATE_ASSETS__S3__FORCE_PATH_STYLE: 'true',
      VIDGATE_ASSETS__S3__ACCESS_KEY_ID_ENV: 'S3_KEY_ID',
      VIDGATE_ASSETS__S3__SECRET_ACCESS_KEY_ENV: 'S3_SECRET',
      VIDGATE_ASSETS__S3__PREFIX: 'vidgate/videos/',
      VIDGATE_ASSETS__S3__PRESIGNED_REDIRECT_TTL_S: '300',
    });
    expect(c.assets.kind).toBe('s3');
    expect(c.assets.s3).toEqual({
      bucket: 'videos',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      force_path_style: true,
      access_key_id_env: 'S3_KEY_ID',
      secret_access_key_env: 'S3_SECRET',
      prefix: 'vidgate/videos/',
      presigned_redirect_ttl_s: 300,
    });
  });

  it.each([
    [{ kind: 's3' }, 'assets.s3: assets.kind s3 needs assets.s3'],
    [{ kind: 's3', s3: { bucket: 'b', access_key_id_env: 'K' } }, 'give both access_key_id_env and secret_access_key_env, or neither'],
    [{ kind: 's3', s3: { bucket: 'b', access_key_id_env: 'not a name', secret_access_key_env: 'S' } }, 'assets.s3.access_key_id_env: an environment variable name'],
    [{ kind: 's3', s3: { bucket: 'b', prefix: 'videos' } }, 'assets.s3.prefix: empty, or path segments each ending in /'],
    [{ kind: 's3', s3: { bucket: 'b', presigned_redirect_ttl_s: 8 * 86400 } }, 'at most 7 days'],
    [{ kind: 's3', s3: { bucket: 'b', secret_access_key: 'x' } }, 'assets.s3'],
  ])('refuses %j', (assets, message) => {
    expect(() => parseConfig({ assets })).toThrow(ConfigError);
    expect(() => parseConfig({ assets })).toThrow(message);
  });
});

describe('starting with assets.kind s3', () => {
  it('stops with a message naming an unset credentials variable, never a value', async () => {
    const err = (await startTestGateway({ assets: { kind: 's3', s3: { bucket: 'videos', access_key_id_env: 'UNSET_KEY_ID_VAR', secret_access_key_env: 'TEST_S3_SECRET' } } }, { env: { TEST_S3_SECRET: 'secret-value-0123' } }).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('StartupError');
    expect(err.message).toContain('UNSET_KEY_ID_VAR');
    expect(err.message).not.toContain('secret-value-0123');
  });

  it('stops with a message naming a bucket that does not exist (never blaming a provider later)', async () => {
    const err = (await startTestGateway({ assets: { kind: 's3', s3: { endpoint: s3.endpoint, bucket: 'no-such-bucket', force_path_style: true, access_key_id_env: 'K', secret_access_key_env: 'S' } } }, { env: { K: S3RVER_CREDENTIALS.accessKeyId, S: S3RVER_CREDENTIALS.secretAccessKey } }).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('StartupError');
    expect(err.message).toContain('bucket no-such-bucket does not exist');
  });
});

/** A port on 127.0.0.1 where nothing listens (taken, then released). */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
