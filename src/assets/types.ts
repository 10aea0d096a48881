// The asset-store contract: where finished MP4s, and the images made from them, are kept. Two backends:
// local disk (./local.ts, the default) and S3-compatible object storage (./s3.ts), chosen by `assets.kind`.
import type { Readable } from 'node:stream';

/**
 * One stored file: the video of `key`, or, with `derived`, a file made from it (`thumbnail.jpg`,
 * `spritesheet.jpg`), kept beside it and removed with it.
 */
export interface AssetRef {
  key: string;
  derived?: string;
}

/** What is known of a stored file without reading it. */
export interface AssetStat {
  size_bytes: number;
}

/** Inclusive byte offsets, as an HTTP Range (and range-parser) gives them: `{ start: 0, end: 9 }` is 10 bytes. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Checks a complete downloaded video before it is kept (e.g. probes it); given the path of a local temporary file.
 * Throws to refuse it.
 */
export type AssetCheck = (file: string) => Promise<unknown>;

export interface AssetStore {
  readonly kind: 'local' | 's3';
  /**
   * Stores `body` as the video of `key`. It becomes visible only once complete, found to be an MP4 (an `ftyp` box
   * first; else ProviderError `invalid_video`) and passed by `check`; until then readers see the earlier copy, if
   * any, whole. A refused or failed put leaves nothing behind. Concurrent puts of one key: the last to finish wins.
   * @throws what the source, the sniff or `check` threw; AssetStoreError when the store itself fails.
   */
  put(key: string, body: Readable, check?: AssetCheck): Promise<{ bytes: number }>;
  /** Size of the stored file, or undefined when there is none. @throws AssetStoreError when the store fails. */
  stat(ref: AssetRef): Promise<AssetStat | undefined>;
  /**
   * The file's bytes, or those of `range` (which the caller has checked against `stat`).
   * @throws AssetMissing when there is no such file (e.g. removed since `stat`); AssetStoreError when the store fails.
   */
  open(ref: AssetRef, range?: ByteRange): Promise<Readable>;
  /**
   * A URL that reads the file without credentials for `ttl_s` seconds, from the object store itself (S3 only).
   */
  presign?(ref: AssetRef, ttl_s: number): Promise<string>;
  /**
   * Runs `use` with the video of `key` as a local file (for ffmpeg): the stored file itself on local disk, a
   * temporary copy (deleted after `use` settles) on S3. @throws AssetMissing when there is no video.
   */
  withLocalCopy<T>(key: string, use: (file: string) => Promise<T>): Promise<T>;
  /** Keeps the local file `file` (left in place) as the derived file `name` of `key`, replacing any earlier one. */
  putDerived(key: string, name: string, file: string): Promise<void>;
  /** Removes the video and every file derived from it; nothing to remove is no error. */
  remove(key: string): Promise<void>;
  /**
   * Checks the settings once, at start. Throws AssetStoreError when the store answers that they are wrong (S3: no
   * such bucket, or access denied); a store that does not answer is no error (it may come back: tasks wait for it).
   */
  verify?(): Promise<void>;
}

/** The file asked for does not exist (never stored, removed by retention, or removed since it was looked up). */
export class AssetMissing extends Error {
  override name = 'AssetMissing';
}

/** The asset store itself failed (object store unreachable, refused the credentials, disk full): not the provider's fault. */
export class AssetStoreError extends Error {
  override name = 'AssetStoreError';
}

const SAFE_KEY = /^[A-Za-z0-9_-]+$/;
/** A derived file's name: `thumbnail.jpg`, `spritesheet.jpg`. */
export const SAFE_DERIVED_NAME = /^[a-z]+\.[a-z0-9]+$/;

/**
 * The file name of `ref` inside the store: `<key>.mp4` for the video, `<key>.<derived>` for a derived file.
 * @throws Error on a key or name that could escape the store (the callers pass task ids and fixed names).
 */
export function fileNameOf(ref: AssetRef): string {
  if (!SAFE_KEY.test(ref.key)) throw new Error(`unsafe asset key '${ref.key}'`);
  if (ref.derived === undefined) return `${ref.key}.mp4`;
  if (!SAFE_DERIVED_NAME.test(ref.derived)) throw new Error(`unsafe asset name '${ref.key}.${ref.derived}'`);
  return `${ref.key}.${ref.derived}`;
}
