// Renders a test-pattern H.264 MP4 with ffmpeg. The output appears atomically (temp file + rename),
// so a crash mid-render never leaves a partial video behind, and ffmpeg never outlives this process.
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

/**
 * Runs its arguments as a command under a watcher that holds this process's end of a stdin pipe. The pipe
 * closes when this process dies, however it dies (SIGKILL included, where no exit handler runs); the watcher
 * then reads end-of-file and kills the command. A normal end is told by writing a line first.
 */
const KILL_WITH_PARENT = `exec 3<&0
"$@" & pid=$!
(read _ <&3 || kill -KILL $pid) >/dev/null 2>&1 &
wait $pid`;

function runFfmpeg(ffmpegPath: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', KILL_WITH_PARENT, 'sh', ffmpegPath, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    child.stdin.on('error', () => undefined); // the watcher may be gone already
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.on('error', (err) => reject(new ProviderError('service_error', `cannot run ffmpeg: ${err.message}`, true)));
    child.on('close', (code, signal) => {
      child.stdin.end('done\n');
      if (code === 0) return resolve();
      const reason = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(new ProviderError('service_error', `ffmpeg failed (${reason}): ${stderr.trim()}`, true));
    });
  });
}
