// The S3-compatible asset store: each file is an object `<prefix><key>.mp4` / `<prefix><key>.<derived>` in one
// bucket, for several replicas sharing their videos. A download is written to a local temporary file, checked
// there (MP4 sniff, then the caller's probe), and only then uploaded to its final key: S3 makes an object visible
// only once its upload completes, so readers never see a partial or unchecked video.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { stageChecked } from './staging';
import { AssetMissing, AssetStoreError, fileNameOf, type AssetRef, type AssetStore, type ByteRange } from './types';

export interface S3AssetStoreOptions {
  /** The S3-compatible endpoint's URL (MinIO, R2, Ceph...); AWS's regional endpoint when unset. */
  endpoint?: string;
  bucket: string;
  region: string;
  /** Address the bucket as `<endpoint>/<bucket>` rather than `<bucket>.<endpoint>` (most self-hosted stores need it). */
  force_path_style: boolean;
  /** The credentials; the SDK's default chain (AWS_* variables, instance roles) when unset. Never logged. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Prepended to every object key, e.g. `vidgate/videos/`. */
  prefix: string;
  /** A local directory for temporary files: a download being checked, a video copied for ffmpeg. Nothing stays. */
  scratch_dir: string;
}

/** How long a connection to the object store may take to open before the call fails. */
const CONNECT_TIMEOUT_MS = 10_000;
const CONTENT_TYPES: Record<string, string> = { mp4: 'video/mp4', jpg: 'image/jpeg' };

/** An asset store over an S3-compatible bucket (which must exist); see the module comment for the write path. */
export function createS3AssetStore(options: S3AssetStoreOptions): AssetStore {
  const { bucket, prefix } = options;
  fs.mkdirSync(options.scratch_dir, { recursive: true });
  const client = new S3Client({
    region: options.region,
    forcePathStyle: options.force_path_style,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.credentials && { credentials: options.credentials }),
    // Checksums only where S3 requires them: many S3-compatible stores reject the SDK's default CRC32 trailers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS },
  });
  const objectKey = (ref: AssetRef) => prefix + fileNameOf(ref);
  const contentType = (ref: AssetRef) => CONTENT_TYPES[path.extname(fileNameOf(ref)).slice(1)] ?? 'application/octet-stream';
  const scratchFile = () => path.join(options.scratch_dir, `${crypto.randomUUID()}.part`);

  /** Runs one call to the object store: a 404 becomes AssetMissing, any other failure AssetStoreError. */
  async function call<T>(what: string, ref: AssetRef, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof AssetMissing || err instanceof AssetStoreError) throw err;
      const e = err as Error & { $metadata?: { httpStatusCode?: number } };
      // A missing bucket is the settings' fault, never a missing file (nor the provider's).
      if (e.name === 'NoSuchBucket') throw new AssetStoreError(`object store: bucket ${bucket} does not exist`);
      if (e.$metadata?.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound') throw new AssetMissing(`no stored file ${objectKey(ref)}`);
      throw new AssetStoreError(`object store: ${what} ${bucket}/${objectKey(ref)} failed: ${e.name}: ${e.message}`);
    }
  }

  async function open(ref: AssetRef, range?: ByteRange): Promise<Readable> {
    const got = await call('get', ref, () =>
      client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(ref), ...(range && { Range: `bytes=${range.start}-${range.end}` }) })),
    );
    const body = got.Body as Readable;
    if (!range) return body;
    // A server may answer a Range request with more than asked, up to the whole object (RFC 9110 §14.2 allows
    // ignoring Range; s3rver reads `bytes=0-0` as `bytes=0-`): then the range is cut out here.
    const served = /^bytes (\d+)-(\d+)\//.exec(got.ContentRange ?? '');
    const [from, to] = served ? [Number(served[1]), Number(served[2])] : [0, Infinity];
    if (from === range.start && to === range.end) return body;
    if (from > range.start || to < range.end) {
      body.destroy();
      throw new AssetStoreError(`object store: get ${bucket}/${objectKey(ref)} bytes ${range.start}-${range.end} answered ${got.ContentRange}`);
    }
    const slice = byteSlice({ start: range.start - from, end: range.end - from });
    pipeline(body, slice).catch(() => {}); // an error reaches the reader through `slice`
    return slice;
  }

  async function upload(ref: AssetRef, body: Readable | Buffer): Promise<void> {
    await call('upload', ref, () => new Upload({ client, params: { Bucket: bucket, Key: objectKey(ref), Body: body, ContentType: contentType(ref) } }).done());
  }

  return {
    kind: 's3',
    async verify() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) throw new AssetStoreError(`object store: bucket ${bucket} does not exist (assets.s3.bucket)`);
        if (status === 403) throw new AssetStoreError(`object store: access to bucket ${bucket} denied (check the credentials' permissions)`);
        // Unreachable or failing: not a settings error; downloads wait for the store (see workers).
      }
    },
    async put(key, body, check) {
      const tmp = scratchFile();
      const bytes = await stageChecked(tmp, body, check);
      try {
        await upload({ key }, fs.createReadStream(tmp));
      } finally {
        await fs.promises.rm(tmp, { force: true });
      }
      return { bytes };
    },
    async stat(ref) {
      try {
        const head = await call('head', ref, () => client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(ref) })));
        return { size_bytes: head.ContentLength ?? 0 };
      } catch (err) {
        if (err instanceof AssetMissing) return undefined;
        throw err;
      }
    },
    open,
    async presign(ref, ttl_s) {
      return call('presign', ref, () => getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: objectKey(ref) }), { expiresIn: ttl_s }));
    },
    async withLocalCopy(key, use) {
      const tmp = scratchFile();
      try {
        const body = await open({ key });
        await call('download', { key }, () => pipeline(body, fs.createWriteStream(tmp)));
        return await use(tmp);
      } finally {
        await fs.promises.rm(tmp, { force: true });
      }
    },
    async putDerived(key, name, file) {
      await upload({ key, derived: name }, await fs.promises.readFile(file));
    },
    async remove(key) {
      const ref = { key };
      // The video and every derived file: the objects named `<prefix><key>.`-something (a key holds no dot).
      const listed = await call('list', ref, () => client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}${key}.` })));
      const keys = new Set([objectKey(ref), ...(listed.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []))]);
      const done = await call('delete', ref, () => client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [...keys].map((Key) => ({ Key })), Quiet: true } })));
      if (done.Errors?.length) throw new AssetStoreError(`object store: delete ${bucket}/${done.Errors[0]!.Key} failed: ${done.Errors[0]!.Code}: ${done.Errors[0]!.Message}`);
    },
  };
}

/** Passes on only the bytes `range.start`..`range.end` (inclusive) of what flows through it. */
function byteSlice(range: ByteRange): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const from = Math.max(range.start - offset, 0);
      const to = Math.min(range.end + 1 - offset, chunk.length);
      offset += chunk.length;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}
