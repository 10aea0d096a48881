// Renders a test-pattern H.264 MP4 with ffmpeg. The output appears atomically (temp file + rename),
// so a crash mid-render never leaves a partial video behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ProviderError } from '../types';
import { tempPathIn } from './atomic-file';

export interface RenderSpec {
  ffmpegPath: string;
  width: number;
  height: number;
  durationS: number;
  fps: number;
}

const STDERR_TAIL_CHARS = 2000;

export async function renderMp4(spec: RenderSpec, dest: string, tmpDir: string): Promise<void> {
  const tmp = tempPathIn(tmpDir, path.basename(dest));
  try {
    await runFfmpeg(spec.ffmpegPath, ffmpegArgs(spec, tmp));
    await fs.rename(tmp, dest);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err instanceof ProviderError ? err : new ProviderError('service_error', `render failed: ${String(err)}`, true);
  }
}

function ffmpegArgs({ width, height, durationS, fps }: RenderSpec, out: string): string[] {
  return [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-y'],
    ...['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}:duration=${durationS}`],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '35', '-pix_fmt', 'yuv420p'],
    ...['-movflags', '+faststart', '-f', 'mp4', out],
  ];
}

function runFfmpeg(ffmpegPath: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.on('error', (err) => reject(new ProviderError('service_error', `cannot run ffmpeg: ${err.message}`, true)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const reason = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(new ProviderError('service_error', `ffmpeg failed (${reason}): ${stderr.trim()}`, true));
    });
  });
}
