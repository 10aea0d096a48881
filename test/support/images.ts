// Real images for the reference-image tests, made with ffmpeg (a test pattern; `seed` shifts it, so that two
// seeds give different bytes).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';

export type ImageFormat = 'png' | 'jpg' | 'webp' | 'gif';

export function makeImage(format: ImageFormat, width = 64, height = 48, seed = 0): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-img-'));
  try {
    const out = path.join(dir, `image.${format}`);
    const args = ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=1`, '-ss', String(seed), '-frames:v', '1', out];
    const run = spawnSync(ffmpeg.path, args, { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`ffmpeg: ${run.stderr}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A PNG signature and header followed by padding up to `bytes`: over the size limit, whatever else it is. */
export function oversizedPng(bytes: number): Buffer {
  const png = makeImage('png');
  return Buffer.concat([png, Buffer.alloc(bytes - png.length)]);
}
