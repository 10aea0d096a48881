// The real server process, killed with SIGKILL while tasks run and started again: every task still
// finishes, with a playable MP4, and none ran twice upstream or completed twice.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listJobs } from '../src/providers/simulated';
import { KEY_A, probeVideo, tempDir } from './support/gateway';
import { startServerProcess, type ServerProcess } from './support/process';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function serverEnv(dataDir: string): Record<string, string> {
  return {
    VIDGATE_DATA_DIR: dataDir,
    VIDGATE_SERVER__PORT: '0',
    VIDGATE_AUTH__API_KEYS: KEY_A,
    VIDGATE_LOG_LEVEL: 'info',
    VIDGATE_PROVIDERS: JSON.stringify([{ id: 'simulated', kind: 'simulated', duration_ms: 1500, fps: 4 }]),
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
    VIDGATE_WORKERS__LEASE_MS: '1000',
  };
}

const headers = { Authorization: `Bearer ${KEY_A}`, 'Content-Type': 'application/json' };

async function getTask(url: string, id: string) {
  return (await fetch(`${url}/v1/tasks/${id}`, { headers })).json() as Promise<{ status: string; attempts: { outcome: string }[]; error?: unknown }>;
}

async function waitAllFinished(url: string, ids: string[], timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tasks = await Promise.all(ids.map((id) => getTask(url, id)));
    if (tasks.every((t) => ['completed', 'failed', 'cancelled'].includes(t.status))) return tasks;
    if (Date.now() > deadline) throw new Error(`tasks not finished: ${JSON.stringify(tasks)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Each test starts the server process several times (each start compiles the sources with tsx): on a busy 2-core
 * machine that alone can take most of a minute, so the tests get their own generous time limit.
 */
const PROCESS_TEST_TIMEOUT_MS = 300_000;

describe('crash and restart', () => {
  it('loses no task and runs none twice across SIGKILLs at several moments, followers included', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const env = serverEnv(dataDir);
    const requests = [
      { model: 'sora-2', prompt: 'one', aspect_ratio: '16:9', duration: 4, size: [1280, 720] },
      { model: 'sora-2', prompt: 'two', aspect_ratio: '9:16', duration: 8, size: [720, 1280] },
      { model: 'sora-2-pro', prompt: 'three', aspect_ratio: '9:16', quality: '1080p', duration: 4, size: [1024, 1792] },
      { model: 'sora-2-pro', prompt: 'four', aspect_ratio: '16:9', duration: 4, size: [1280, 720] },
      { model: 'sora-2', prompt: 'five', aspect_ratio: '1280x720', duration: 4, size: [1280, 720] },
      { model: 'sora-2-pro', prompt: 'six', aspect_ratio: '1792x1024', duration: 4, size: [1792, 1024] },
    ];
    const outputs: string[] = [];
    let server: ServerProcess = await startServerProcess(env);
    const ids: string[] = [];
    for (const { size: _size, ...body } of requests) {
      const res = await fetch(`${server.url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify(body) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    // Identical requests follow the running ones; the crashes must not lose them nor make them run upstream.
    const followers: { id: string; leader: string }[] = [];
    for (const i of [0, 1]) {
      const { size: _size, ...body } = requests[i]!;
      const res = await fetch(`${server.url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify({ ...body, prompt: ` ${body.prompt.toUpperCase()} ` }) });
      const follower = (await res.json()) as { id: string; cache: string };
      expect(follower.cache).toBe('coalesced');
      followers.push({ id: follower.id, leader: ids[i]! });
    }
    // Kill while tasks are being dispatched, then while they are being polled and rendered.
    for (const delayMs of [50, 900, 1700]) {
      await sleep(delayMs);
      server.child.kill('SIGKILL');
      await server.exited;
      outputs.push(server.output());
      server = await startServerProcess(env);
    }
    const finished = await waitAllFinished(server.url, ids);
    expect((await waitAllFinished(server.url, followers.map((f) => f.id))).map((t) => t.status)).toEqual(['completed', 'completed']);
    for (const f of followers) {
      const served = Buffer.from(await (await fetch(`${server.url}/v1/tasks/${f.id}/content`, { headers })).arrayBuffer());
      expect(served.equals(fs.readFileSync(path.join(dataDir, 'videos', `${f.leader}.mp4`)))).toBe(true);
    }
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    outputs.push(server.output());

    expect(finished.map((t) => t.status)).toEqual(ids.map(() => 'completed'));
    expect(finished.map((t) => t.attempts.map((a) => a.outcome))).toEqual(ids.map(() => ['completed']));

    // Exactly one upstream job per task: the resubmissions after each crash reused their idempotency key.
    const jobs = await listJobs(path.join(dataDir, 'simulated', 'simulated'));
    expect(jobs.map((j) => j.idempotency_key).sort()).toEqual(ids.map((id) => `${id}.1`).sort());

    // Each task was marked completed by one process: at most one `task completed` line (a process killed between
    // its COMMIT and its log line writes none; the single completed attempt above proves the completion itself).
    const all = outputs.join('\n');
    const completions = all.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; task_id?: string }).filter((e) => e.msg === 'task completed');
    for (const id of ids) expect(completions.filter((e) => e.task_id === id).length).toBeLessThanOrEqual(1);

    // And every stored video plays at the requested size and duration.
    for (const [i, id] of ids.entries()) {
      const facts = probeVideo(path.join(dataDir, 'videos', `${id}.mp4`));
      expect(facts.codec).toBe('h264');
      expect([facts.width, facts.height]).toEqual(requests[i]!.size);
      expect(Math.abs(facts.duration_s - requests[i]!.duration)).toBeLessThan(0.1);
    }
  }, PROCESS_TEST_TIMEOUT_MS);

  it('drains on SIGTERM and picks the remaining work up on the next start', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const env = serverEnv(dataDir);
    let server = await startServerProcess(env);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify({ prompt: `drain ${i}` }) });
      ids.push(((await res.json()) as { id: string }).id);
    }
    await sleep(300);
    const started = Date.now();
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(server.output()).toContain('SIGTERM: draining');

    server = await startServerProcess(env);
    const finished = await waitAllFinished(server.url, ids);
    expect(finished.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
    server.child.kill('SIGTERM');
    await server.exited;
  }, PROCESS_TEST_TIMEOUT_MS);
});
