// The media helpers on real files: ffprobe's facts and the verdict on them, and reference images fitted by ffmpeg.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { afterAll, describe, expect, it } from 'vitest';
import { fitImage } from '../src/media/fit-image';
import { DURATION_TOLERANCE_S, probeVideo, verifyVideo, videoMismatch } from '../src/media/probe-video';
import { tempDir } from './support/gateway';
import { makeImage } from './support/images';
import { mp4Renderer } from './support/mp4';

const dir = tempDir('vidgate-media-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** One RGB pixel of a PNG at (x, y), decoded by ffmpeg. */
function pixel(png: Buffer, x: number, y: number): number[] {
  const raw = execFileSync(ffmpeg.path, ['-v', 'error', '-i', 'pipe:0', '-vf', `crop=1:1:${x}:${y}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { input: png });
  return [...raw.subarray(0, 3)];
}

describe('verifying a video', () => {
  it('reads codec, size and duration of a real MP4, and accepts it for what it is', async () => {
    const file = path.join(dir, 'ok.mp4');
    fs.writeFileSync(file, await mp4Renderer()({ size: '720x1280', seconds: 4 }));
    expect(await probeVideo(file)).toEqual({ codec: 'h264', width: 720, height: 1280, duration_s: 4 });
    await expect(verifyVideo(file, { size: '720x1280', duration_s: 4 })).resolves.toMatchObject({ codec: 'h264' });
    const error = await verifyVideo(file, { size: '1280x720', duration_s: 8 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'output_mismatch', retryable: true });
    expect((error as Error).message).toContain('720x1280, not 1280x720');
    expect((error as Error).message).toContain('4.00 s, not 8 s');
  });

  it('a file ffprobe cannot read is invalid_video, the provider at fault', async () => {
    const file = path.join(dir, 'junk.mp4');
    fs.writeFileSync(file, '\0\0\0\x18ftypmp42 not a video');
    await expect(verifyVideo(file, { size: '1280x720', duration_s: 4 })).rejects.toMatchObject({ code: 'invalid_video', retryable: true });
  });

  it(`tolerates ${DURATION_TOLERANCE_S} s of duration either way, and no other codec`, () => {
    const wanted = { size: '1280x720', duration_s: 4 } as const;
    const facts = { codec: 'h264', width: 1280, height: 720 };
    expect(videoMismatch({ ...facts, duration_s: 4 + DURATION_TOLERANCE_S }, wanted)).toBeNull();
    expect(videoMismatch({ ...facts, duration_s: 4 - DURATION_TOLERANCE_S }, wanted)).toBeNull();
    expect(videoMismatch({ ...facts, duration_s: 4 + DURATION_TOLERANCE_S + 0.01 }, wanted)).toMatch(/s, not 4 s/);
    expect(videoMismatch({ ...facts, codec: 'hevc', duration_s: 4 }, wanted)).toMatch(/codec hevc/);
  });
});

describe('fitting a reference image', () => {
  // 640x480, white: pad adds black bars to reach 9:16, crop only cuts white away.
  const white = execFileSync(ffmpeg.path, ['-v', 'error', '-f', 'lavfi', '-i', 'color=white:size=640x480', '-frames:v', '1', '-f', 'image2pipe', '-c:v', 'png', 'pipe:1']);

  it.for(['pad', 'crop'] as const)('%s: a PNG of exactly the requested size', async (mode) => {
    const png = await fitImage(white, '720x1280', mode);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    // PNG IHDR: width and height, big-endian, at bytes 16 and 20.
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([720, 1280]);
    const top = pixel(png, 360, 10);
    if (mode === 'pad') expect(Math.max(...top)).toBeLessThan(30); // a black bar above the image
    else expect(Math.min(...top)).toBeGreaterThan(225); // still the image
  });

  it.for(['jpg', 'png', 'webp'] as const)('fits every accepted kind of image: %s', async (format) => {
    const png = await fitImage(makeImage(format, 64, 48), '1280x720');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 720]);
  });

  it('bytes that are not an image are refused with a message', async () => {
    await expect(fitImage(Buffer.from('not an image'), '1280x720')).rejects.toThrow(/cannot fit the image to 1280x720/);
  });
});
