// The simulated provider's files over restarts: a finished video is not rendered again, its copy goes once
// released, and temp files of dead processes are removed at start. (ffmpeg dying with a SIGKILLed gateway is
// in process-lifecycle.test.ts.)
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSimulatedProvider } from '../src/providers/simulated';
import { ProviderError } from '../src/providers/types';
import { pollToEnd, readAll, rejection, request, removeWorkDirs, tempWorkDir } from './support/adapters';

afterAll(removeWorkDirs);

/** A provider that cannot render: any render it starts fails. */
const withoutFfmpeg = (workDir: string) => createSimulatedProvider({ workDir, durationMs: 1, fps: 4, ffmpegPath: path.join(workDir, 'no-ffmpeg') });

describe('simulated provider files', () => {
  it('a restart does not render a finished video again', async () => {
    const workDir = tempWorkDir();
    const first = createSimulatedProvider({ workDir, durationMs: 1, fps: 4 });
    const { upstreamId } = await first.submit(request(), {});
    expect((await pollToEnd(first, upstreamId)).at(-1)).toEqual({ state: 'completed' });
    const video = path.join(workDir, 'videos', `${upstreamId}.mp4`);
    const rendered = fs.statSync(video);

    const restarted = withoutFfmpeg(workDir);
    expect(await restarted.poll(upstreamId, {})).toEqual({ state: 'completed' });
    expect((await readAll(await restarted.download(upstreamId, {}))).length).toBe(rendered.size);
    expect(fs.statSync(video).mtimeMs).toBe(rendered.mtimeMs);
  });

  it('release deletes its copy; the job then stays completed and is never rendered again', async () => {
    const workDir = tempWorkDir();
    const adapter = createSimulatedProvider({ workDir, durationMs: 1, fps: 4 });
    const { upstreamId } = await adapter.submit(request(), {});
    await pollToEnd(adapter, upstreamId);
    await adapter.release!(upstreamId, {});
    expect(fs.readdirSync(path.join(workDir, 'videos'))).toEqual([]);

    const restarted = withoutFfmpeg(workDir);
    expect(await restarted.poll(upstreamId, {})).toEqual({ state: 'completed' });
    const err = await rejection(restarted.download(upstreamId, {}));
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: 'resource_not_found', retryable: false });
    expect(fs.readdirSync(path.join(workDir, 'videos'))).toEqual([]);
  });

  it('removes the temp files of dead processes at start, and keeps those of live ones', async () => {
    const workDir = tempWorkDir();
    const tmp = path.join(workDir, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const dead = 2 ** 22 + 1; // above Linux's largest pid
    const names = {
      dead: `sim_a.mp4.${dead}.0123456789ab.tmp`,
      ours: `sim_b.mp4.${process.pid}.0123456789ab.tmp`, // a previous run with our pid (a container's PID 1)
      live: `sim_c.mp4.${process.ppid}.0123456789ab.tmp`,
      other: 'not-ours.txt',
    };
    for (const n of Object.values(names)) fs.writeFileSync(path.join(tmp, n), 'x');
    createSimulatedProvider({ workDir });
    expect(fs.readdirSync(tmp)).toEqual([names.live]);
  });
});
