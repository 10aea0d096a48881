// A reference image chosen in the browser: checked before it is sent (the server checks its bytes again).

/** The limit of `input_reference` (openapi/vidgate.yaml, VideoCreateForm). */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

export interface ReferenceImage {
  file: File;
  width: number;
  height: number;
  /** Hex SHA-256 of the bytes, for the estimate's cache outlook; null where the browser has no WebCrypto (plain HTTP off localhost). */
  sha256: string | null;
  /** An object URL for the preview; revoke it when the image is dropped. */
  previewUrl: string;
}

/** The media type from the first bytes (what the file is, not what its name says), or null. */
function sniff(bytes: Uint8Array): 'image/jpeg' | 'image/png' | 'image/webp' | null {
  const at = (i: number, ...b: number[]) => b.every((v, k) => bytes[i + k] === v);
  if (at(0, 0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'image/webp';
  return null;
}

const megabytes = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** Reads and checks a file; throws an Error whose message says, for a person, why it is refused. */
export async function readReferenceImage(file: File): Promise<ReferenceImage> {
  if (file.size > MAX_IMAGE_BYTES) throw new Error(`${file.name} is ${megabytes(file.size)}: images may be at most 10 MB.`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (!sniff(bytes)) throw new Error(`${file.name} is not a JPG, PNG or WebP image: choose one of those.`);
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
