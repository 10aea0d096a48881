import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import ffprobe from '@ffprobe-installer/ffprobe';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createSimulatedProvider,
  listJobs,
  type SimulatedProviderOptions,
} from '../src/providers/simulated';
import { ProviderError, type NormalizedRequest, type ProviderAdapter } from '../src/providers/types';
import { request, pollToEnd, rejection, removeWorkDirs, tempWorkDir } from './support/adapters';
import { setTimeout as sleep } from 'node:timers/promises';

const DURATION_MS = 300;

afterAll(removeWorkDirs);

function provider(workDir: string, options: Partial<SimulatedProviderOptions> = {}): ProviderAdapter {
  return createSimulatedProvider({ workDir, durationMs: DURATION_MS, fps: 8, ...options });
}





async function saveStream(stream: Readable, file: string): Promise<void> {
  await fs.promises.writeFile(file, stream);
}

function probe(file: string) {
  const out = execFileSync(ffprobe.path, [
    ...['-v', 'error', '-select_streams', 'v:0'],
    ...['-show_entries', 'stream=codec_name,width,height,pix_fmt:format=duration', '-of', 'json', file],
  ]);
  const info = JSON.parse(out.toString()) as {
    streams: { codec_name: string; width: number; height: number; pix_fmt: string }[];
    format: { duration: string };
  };
  return { ...info.streams[0]!, duration: Number(info.format.duration) };
}

describe('simulated provider', () => {
  it('runs a job to a real MP4 of the requested size and duration', async () => {
    const workDir = tempWorkDir();
    const adapter = provider(workDir);
    const { upstreamId } = await adapter.submit(request({ model: 'sora-2-pro', size: '1024x1792' }), {});
    expect(upstreamId).toMatch(/^sim_/);

    expect((await adapter.poll(upstreamId, {})).state).not.toBe('completed');
    await expect(adapter.download(upstreamId, {})).rejects.toMatchObject({ code: 'not_ready', retryable: true });

    const results = await pollToEnd(adapter, upstreamId);
    expect(results.at(-1)).toEqual({ state: 'completed' });
    const progresses = results.flatMap((r) => ('progress' in r ? [r.progress] : []));
    expect(progresses).toEqual([...progresses].sort((a, b) => a - b));
    expect(progresses.every((p) => Number.isInteger(p) && p >= 0 && p <= 99)).toBe(true);

    const file = path.join(workDir, 'downloaded.mp4');
    await saveStream(await adapter.download(upstreamId, {}), file);
    const video = probe(file);
    expect(video).toMatchObject({ codec_name: 'h264', width: 1024, height: 1792, pix_fmt: 'yuv420p' });
    expect(Math.abs(video.duration - 4)).toBeLessThanOrEqual(0.1);
  });

  it('renders once when the same job is polled concurrently', async () => {
    const workDir = tempWorkDir();
    // An ffmpeg wrapper that counts its runs.
    const runs = path.join(workDir, 'ffmpeg-runs');
    const ffmpegPath = path.join(workDir, 'ffmpeg.sh');
    fs.writeFileSync(ffmpegPath, `#!/bin/sh\necho run >> '${runs}'\nexec '${ffmpeg.path}' "$@"\n`, { mode: 0o755 });
    const adapter = provider(workDir, { ffmpegPath });
    const { upstreamId } = await adapter.submit(request(), {});
    await sleep(DURATION_MS + 20);
    const results = await Promise.all([1, 2, 3].map(() => adapter.poll(upstreamId, {})));
    expect(results).toEqual(Array(3).fill({ state: 'completed' }));
    expect(fs.readdirSync(path.join(workDir, 'videos'))).toEqual([`${upstreamId}.mp4`]);
    expect(fs.readdirSync(path.join(workDir, 'tmp'))).toEqual([]);
    expect(fs.readFileSync(runs, 'utf8')).toBe('run\n');
  });

  it('reports a failed render as a retryable service_error', async () => {
    const adapter = provider(tempWorkDir(), { ffmpegPath: '/nonexistent/ffmpeg' });
    const { upstreamId } = await adapter.submit(request(), {});
    await sleep(DURATION_MS + 20);
    expect(await rejection(adapter.poll(upstreamId, {}))).toMatchObject({ code: 'service_error', retryable: true });
  });

  it('returns the same job for a repeated idempotency key', async () => {
    const workDir = tempWorkDir();
    const adapter = provider(workDir);
    const ctx = { idempotencyKey: 'task-1:attempt-1' };
    const [a, b] = await Promise.all([adapter.submit(request(), ctx), adapter.submit(request(), ctx)]);
    const c = await adapter.submit(request(), ctx);
    expect(b.upstreamId).toBe(a.upstreamId);
    expect(c.upstreamId).toBe(a.upstreamId);
    const other = await adapter.submit(request(), { idempotencyKey: 'task-2:attempt-1' });
    expect(other.upstreamId).not.toBe(a.upstreamId);

    const jobs = await listJobs(workDir);
    expect(jobs.map((j) => j.idempotency_key).sort()).toEqual(['task-1:attempt-1', 'task-2:attempt-1']);
  });

  it('keeps jobs across provider instances on the same workDir', async () => {
    const workDir = tempWorkDir();
    const before = provider(workDir);
    const ctx = { idempotencyKey: 'task-3:attempt-1' };
    const { upstreamId } = await before.submit(request(), ctx);

    // A restarted process with other options: the job keeps its own timing and key.
    const after = provider(workDir, { durationMs: 60_000 });
    expect(await after.submit(request(), ctx)).toEqual({ upstreamId });
    expect((await pollToEnd(after, upstreamId)).at(-1)).toEqual({ state: 'completed' });
    expect(await listJobs(workDir)).toHaveLength(1);
  });

  it('recovers a key whose job file was never written', async () => {
    const workDir = tempWorkDir();
    const adapter = provider(workDir);
    const ctx = { idempotencyKey: 'task-4:attempt-1' };
    const { upstreamId } = await adapter.submit(request(), ctx);
    fs.rmSync(path.join(workDir, 'jobs', `${upstreamId}.json`)); // as if killed between key and job write
    expect(await adapter.submit(request(), ctx)).toEqual({ upstreamId });
    expect((await pollToEnd(adapter, upstreamId)).at(-1)).toEqual({ state: 'completed' });
  });

  it.each([
    ['retryable', 'service_error', true],
    ['terminal', 'content_policy_violation', false],
  ] as const)('fails a doomed job halfway (%s)', async (failureKind, code, retryable) => {
    const adapter = provider(tempWorkDir(), { failureRate: 1, failureKind });
    const { upstreamId } = await adapter.submit(request(), {});
    const results = await pollToEnd(adapter, upstreamId);
    const last = results.at(-1);
    expect(last?.state).toBe('failed');
    if (last?.state !== 'failed') return;
    expect(last.error).toBeInstanceOf(ProviderError);
    expect(last.error).toMatchObject({ code, retryable });
    expect(results.every((r) => !('progress' in r) || r.progress < 50)).toBe(true);
  });

  it('cancels a running job', async () => {
    const adapter = provider(tempWorkDir(), { durationMs: 60_000 });
    const { upstreamId } = await adapter.submit(request(), {});
    expect(await adapter.poll(upstreamId, {})).toEqual({ state: 'pending', progress: 0 });
    await adapter.cancel!(upstreamId, {});
    const result = await adapter.poll(upstreamId, {});
    expect(result.state).toBe('failed');
    if (result.state !== 'failed') return;
    expect(result.error).toMatchObject({ code: 'request_cancelled', retryable: false });
  });

  it('leaves a completed job alone on cancel', async () => {
    const adapter = provider(tempWorkDir());
    const { upstreamId } = await adapter.submit(request(), {});
    await pollToEnd(adapter, upstreamId);
    await adapter.cancel!(upstreamId, {});
    expect(await adapter.poll(upstreamId, {})).toEqual({ state: 'completed' });
  });

  it('reports unknown ids as resource_not_found', async () => {
    const adapter = provider(tempWorkDir());
    for (const id of ['sim_000000000000000000000000', '../../etc/passwd']) {
      // One call at a time: a call started early could reject before anything awaits it (an unhandled rejection).
      for (const call of [() => adapter.poll(id, {}), () => adapter.download(id, {}), () => adapter.cancel!(id, {})]) {
        expect(await rejection(call())).toMatchObject({ code: 'resource_not_found', retryable: true });
      }
    }
  });

  it('rejects requests outside its catalog as terminal', async () => {
    const workDir = tempWorkDir();
    const catalog = [{ ...createSimulatedProvider({ workDir }).catalog[0]!, image_input: false }];
    const adapter = provider(workDir, { catalog });
    const invalid: NormalizedRequest[] = [
      request({ model: 'no-such-model' }),
      request({ size: '1792x1024' }),
      request({ duration_s: 5 as NormalizedRequest['duration_s'] }),
      request({ image_url: 'https://example.com/cat.png' }),
    ];
    for (const r of invalid) {
      expect(await rejection(adapter.submit(r, {}))).toMatchObject({ code: 'invalid_parameters', retryable: false });
    }
    expect(await listJobs(workDir)).toEqual([]);
  });
});
