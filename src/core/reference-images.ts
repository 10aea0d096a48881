// Reference images, whichever door they came through and however: an upload's bytes, or a URL whose bytes
// vidgate reads. Both are checked by their bytes (image-check.ts) and named by their SHA-256 (the cache key
// uses it); uploads are kept in a content-addressed store, from which the workers hand them to adapters.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { NormalizedRequest } from '../providers/types';
import { checkImage, IMAGE_MAX_BYTES, invalidImage } from './image-check';
import { readImage, type ImageReadOptions } from './image-digest';

/** An uploaded image, with the request field it came in (for errors). */
export interface ImageUpload {
  bytes: Buffer;
  param: string;
}

export interface PreparedImage {
  /** The request to queue: an upload is named in `image_asset`. */
  request: NormalizedRequest;
  /** Hex SHA-256 of the image's bytes; undefined without an image. */
  sha256?: string;
}

export interface ReferenceImages {
  /**
   * Checks the request's image (its upload, or the bytes at its `image_url`) and stores an upload. Throws 400
   * `invalid_image` saying why (unreadable URL, not JPEG/PNG/WebP, over 10 MB, damaged). `urlParam` names the
   * field of the URL in the door's wire format.
   */
  prepare(request: NormalizedRequest, upload: ImageUpload | undefined, urlParam: string): Promise<PreparedImage>;
  /** The stored bytes of an uploaded image; undefined once gone. */
  read(sha256: string): Promise<Buffer | undefined>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `dir` holds the uploads as `<sha256>` files; `read` bounds fetching image URLs. */
export function createReferenceImages(dir: string, read: ImageReadOptions): ReferenceImages {
  fs.mkdirSync(dir, { recursive: true });
  const fileOf = (sha256: string) => {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a SHA-256: '${sha256}'`);
    return path.join(dir, sha256);
  };
  const readOptions = { ...read, maxBytes: Math.min(read.maxBytes, IMAGE_MAX_BYTES) };

  return {
    async prepare(request, upload, urlParam) {
      if (upload) {
        const image = await checkImage(upload.bytes, upload.param);
        const file = fileOf(image.sha256);
        if (!fs.existsSync(file)) {
          // Content-addressed: a concurrent writer writes the same bytes; the rename makes it appear whole.
          const tmp = `${file}.${crypto.randomUUID()}.part`;
          await fs.promises.writeFile(tmp, upload.bytes);
          await fs.promises.rename(tmp, file);
        }
        const { image_url: _url, ...rest } = request;
        return { request: { ...rest, image_asset: { sha256: image.sha256, media_type: image.media_type } }, sha256: image.sha256 };
      }
      if (request.image_url === undefined) return { request };
      const got = await readImage(request.image_url, readOptions);
      if ('problem' in got) throw invalidImage(urlParam, `the image could not be read: ${got.problem}`);
      const image = await checkImage(got.bytes, urlParam);
      return { request, sha256: image.sha256 };
    },

    async read(sha256) {
      return fs.promises.readFile(fileOf(sha256)).catch(() => undefined);
    },
  };
}
