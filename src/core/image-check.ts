// A reference image is checked by its bytes, never by its name or its declared type: JPEG, PNG or WebP (by the
// signature the `image-size` library reads), at most 10 MB, with a pixel size of at most IMAGE_MAX_PIXELS, and
// decodable to the end (ffmpeg decodes it). The same check serves both doors, for uploads and for the bytes behind an image URL.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { imageSize } from 'image-size';
import { invalidRequest, type ApiError } from './errors';

/** The largest reference image, in bytes (the task API's documented limit, upstream-apis.md section 2). */
export const IMAGE_MAX_BYTES = 10 * 1024 * 1024;

/**
 * The most pixels (width × height) of a reference image: 50 megapixels, more than any camera photo of 10 MB has
 * and under ffmpeg's own limit (about 268 million, `av_image_check_size`), beyond which it refuses to decode. A
 * small file can declare a huge canvas (a 30000 × 30000 PNG compresses to 109 KB): it is refused for its pixels,
 * before anything decodes it.
 */
export const IMAGE_MAX_PIXELS = 50_000_000;

const MEDIA_TYPES = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as const;
export type ImageMediaType = (typeof MEDIA_TYPES)[keyof typeof MEDIA_TYPES];

export interface CheckedImage {
  media_type: ImageMediaType;
  width: number;
  height: number;
  /** Hex SHA-256 of the bytes: the image's name in the cache key and in the image store. */
  sha256: string;
}

/** 400 `invalid_image` naming the field and the reason. */
export const invalidImage = (param: string, reason: string): ApiError => invalidRequest('invalid_image', `${param}: ${reason}`, param);

/** Checks `bytes` as a reference image; throws `invalidImage(param, why)` when it is not an acceptable one. */
export async function checkImage(bytes: Buffer, param: string, ffmpegPath: string = ffmpeg.path): Promise<CheckedImage> {
  if (bytes.length === 0) throw invalidImage(param, 'the image is empty');
  if (bytes.length > IMAGE_MAX_BYTES) {
    throw invalidImage(param, `the image has ${bytes.length} bytes; at most ${IMAGE_MAX_BYTES} (10 MB) are accepted`);
  }
  let size: ReturnType<typeof imageSize>;
  try {
    size = imageSize(bytes);
  } catch {
    throw invalidImage(param, 'the bytes are not a JPEG, PNG or WebP image');
  }
  const mediaType = MEDIA_TYPES[size.type as keyof typeof MEDIA_TYPES];
  if (!mediaType) throw invalidImage(param, `the image is ${size.type?.toUpperCase() ?? 'of an unknown kind'}; only JPEG, PNG and WebP are accepted`);
  if (!size.width || !size.height) throw invalidImage(param, 'the image has no pixel size');
  if (size.width * size.height > IMAGE_MAX_PIXELS) {
    throw invalidImage(param, `too many pixels (${size.width} × ${size.height}); at most ${IMAGE_MAX_PIXELS} (50 megapixels) are accepted`);
  }
  if (!(await decodes(bytes, ffmpegPath))) throw invalidImage(param, `the ${mediaType} image is damaged: it does not decode`);
  return { media_type: mediaType, width: size.width, height: size.height, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** The media type of bytes that passed `checkImage` (read from their signature). */
export function mediaTypeOf(bytes: Buffer): ImageMediaType | undefined {
  try {
    return MEDIA_TYPES[imageSize(bytes).type as keyof typeof MEDIA_TYPES];
  } catch {
    return undefined;
  }
}

/** Whether ffmpeg decodes the whole image without an error (from a file: it cannot probe WebP from a pipe). */
async function decodes(bytes: Buffer, ffmpegPath: string): Promise<boolean> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vidgate-image-'));
  try {
    const file = path.join(dir, 'image');
    await fs.writeFile(file, bytes);
    return await new Promise((resolve) => {
      const args = ['-hide_banner', '-nostdin', '-v', 'error', '-xerror', '-err_detect', 'explode', '-threads', '1', '-i', file, '-f', 'null', '-'];
      const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('error', () => resolve(false));
      child.on('close', (code) => resolve(code === 0 && stderr.trim() === ''));
    });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
