// Real H.264 MP4s of a requested shape for the fake upstreams, rendered once per shape with ffmpeg.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ffmpeg from '@ffmpeg-installer/ffmpeg';

/** What a fake is asked for: `WxH` and seconds. */
export interface VideoShape {
  size: string;
  seconds: number;
}

/** A fake's video: the same bytes for every job, or bytes per shape. */
export type Mp4Source = Buffer | ((shape: VideoShape) => Promise<Buffer>);

export async function mp4Of(source: Mp4Source, shape: VideoShape): Promise<Buffer> {
  return typeof source === 'function' ? source(shape) : source;
}

/**
 * Renders an MP4 of any shape at 1 frame per second (quick on a busy machine), memoized per shape. The
 * lavfi `pattern` (e.g. `testsrc2`, `smptebars`) makes two fakes' videos of one shape differ byte for byte.
 * `codec` may be `mpeg4` to serve a video of the wrong codec.
 */
export function mp4Renderer(pattern = 'testsrc2', codec: 'libx264' | 'mpeg4' = 'libx264'): (shape: VideoShape) => Promise<Buffer> {
  const rendered = new Map<string, Promise<Buffer>>();
  return (shape) => {
    const key = `${shape.size}/${shape.seconds}`;
    let bytes = rendered.get(key);
    if (!bytes) rendered.set(key, (bytes = renderMp4(pattern, codec, shape)));
    return bytes;
  };
}

async function renderMp4(pattern: string, codec: string, { size, seconds }: VideoShape): Promise<Buffer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vidgate-test-mp4-'));
  try {
    const file = path.join(dir, 'v.mp4');
    const args = ['-v', 'error', '-f', 'lavfi', '-i', `${pattern}=size=${size}:rate=1:duration=${seconds}`, '-c:v', codec];
    if (codec === 'libx264') args.push('-preset', 'ultrafast');
    await promisify(execFile)(ffmpeg.path, [...args, '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file]);
    return await fs.readFile(file);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
