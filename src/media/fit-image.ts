// A reference image fitted to the video's pixel size, so that no provider refuses it for its size (sora-2
// takes an input_reference only at exactly the requested size). Bytes in, bytes out: it serves images read
// from a URL and images uploaded to vidgate alike.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import type { VideoSize } from '../providers/types';

/**
 * `pad`: scaled to fit inside the size, the rest filled with black (nothing lost); `crop`: scaled to cover
 * the size, the overflow cut off evenly (nothing added). The task API's `resize_mode` means the same.
 */
export type ResizeMode = 'pad' | 'crop';

/** ffmpeg's filter chain for each mode. */
function filterOf(width: number, height: number, mode: ResizeMode): string {
  return mode === 'crop'
    ? `scale=${width}:${height}:force_original_aspect_ratio=increase,crop=${width}:${height},setsar=1`
    : `scale=${width}:${height}:force_original_aspect_ratio=decrease,pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2,setsar=1`;
}

/**
 * The image in `bytes` (any format ffmpeg reads: PNG, JPEG, WebP, ...) as a PNG of exactly `size`, fitted by
 * `mode`. Throws an Error when ffmpeg cannot read it as an image or takes longer than `timeoutMs`.
 */
export async function fitImage(bytes: Buffer, size: VideoSize, mode: ResizeMode = 'pad', timeoutMs = 30_000): Promise<Buffer> {
  const [width, height] = size.split('x').map(Number) as [number, number];
  // From a file, not a pipe: ffmpeg finds no stream in a WebP read from a pipe.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vidgate-fit-'));
  try {
    const input = path.join(dir, 'in');
    await fs.writeFile(input, bytes);
    const args = ['-v', 'error', '-i', input, '-frames:v', '1', '-vf', filterOf(width, height, mode), '-f', 'image2pipe', '-c:v', 'png', 'pipe:1'];
    const child = spawn(ffmpeg.path, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    const png = Buffer.concat(out);
    if (code !== 0 || png.length === 0) throw new Error(`cannot fit the image to ${size}: ${Buffer.concat(err).toString('utf8').trim().slice(0, 300) || `ffmpeg exited with ${code}`}`);
    return png;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
