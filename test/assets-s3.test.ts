// The asset-store contract, run against both backends: local disk, and S3 against a real S3-compatible server
// (s3rver on 127.0.0.1). Then a gateway configured with `assets.kind: s3`, end to end over HTTP.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalAssetStore } from '../src/assets/local';
import { createS3AssetStore } from '../src/assets/s3';
import { AssetMissing, AssetStoreError, type AssetStore } from '../src/assets/types';
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

/** A port on 127.0.0.1 where nothing listens (taken, then released). */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
