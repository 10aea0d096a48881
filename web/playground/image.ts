// A reference image chosen in the browser: checked before it is sent (the server checks its bytes again), with the
// library the server reads image headers with (`image-size`), so both name the same kinds and pixel sizes.
import { imageSize } from 'image-size';

/** The limit of `input_reference` (openapi/vidgate.yaml, VideoCreateForm). */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
/** The most pixels of a reference image (IMAGE_MAX_PIXELS in src/core/image-check.ts; the spec says 50 megapixels). */
export const MAX_IMAGE_PIXELS = 50_000_000;

export interface ReferenceImage {
  file: File;
  width: number;
  height: number;
  /** Hex SHA-256 of the bytes, for the estimate's cache outlook; null where the browser has no WebCrypto (plain HTTP off localhost). */
  sha256: string | null;
  /** An object URL for the preview; revoke it when the image is dropped. */
  previewUrl: string;
}

const KINDS = new Set(['jpg', 'png', 'webp']);

/** The kind and pixel size from the header (what the file is, not what its name says), or null. */
function header(bytes: Uint8Array): { width: number; height: number } | null {
  try {
    const size = imageSize(bytes);
    return KINDS.has(size.type ?? '') && size.width && size.height ? { width: size.width, height: size.height } : null;
  } catch {
    return null;
  }
}

const megabytes = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** Reads and checks a file; throws an Error whose message says, for a person, why it is refused. */
export async function readReferenceImage(file: File): Promise<ReferenceImage> {
  if (file.size > MAX_IMAGE_BYTES) throw new Error(`${file.name} is ${megabytes(file.size)}: images may be at most 10 MB.`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  const declared = header(bytes);
  if (!declared) throw new Error(`${file.name} is not a JPG, PNG or WebP image: choose one of those.`);
  if (declared.width * declared.height > MAX_IMAGE_PIXELS) {
    throw new Error(`${file.name} has too many pixels (${declared.width} × ${declared.height}): images may have at most 50 megapixels.`);
  }
  const bitmap = await createImageBitmap(file).catch(() => {
    throw new Error(`${file.name} could not be read as an image: it may be damaged.`);
  });
  const { width, height } = bitmap;
  bitmap.close();
  const sha256 = crypto.subtle
    ? [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('')
    : null;
  return { file, width, height, sha256, previewUrl: URL.createObjectURL(file) };
}

/** Whether the image has the video's shape (aspect ratios within 1 %), so that neither padding nor cropping changes it. */
export function sameShape(image: { width: number; height: number }, size: string): boolean {
  const [w, h] = size.split('x').map(Number) as [number, number];
  return Math.abs(image.width / image.height / (w / h) - 1) < 0.01;
}
