// Real images for the reference-image tests, made with ffmpeg (a test pattern; `seed` shifts it, so that two
// seeds give different bytes).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
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

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (bytes: Buffer) => (bytes.reduce((c, b) => crcTable[(c ^ b) & 0xff]! ^ (c >>> 8), 0xffffffff) ^ 0xffffffff) >>> 0;
function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/**
 * A valid, black, 1-bit greyscale PNG of `width` × `height` pixels: a 30000 × 30000 one is about 110 KB, far
 * under the byte limit and far over the pixel limit.
 */
export function hugePng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, no filter, no interlace
  const rows = Buffer.alloc(height * (1 + Math.ceil(width / 8))); // each row: filter byte 0, then zero bits
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(rows, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
