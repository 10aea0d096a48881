// Three real vidgate processes on one PostgreSQL schema and one S3-compatible bucket, no load balancer: the test
// spreads requests across them itself. A budget holds across replicas under 200 parallel submits, identical
// requests at three replicas make one upstream job, and any replica serves a task another one made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { KEY_A } from './support/gateway';
import { mp4Renderer } from './support/mp4';
import { newPostgresSchema, openPostgresStore, postgresUrl } from './support/postgres';
import { admin, CREDITS_PER_TASK, SHAPE, startReplicas, taskBody, type Replica } from './support/replicas';
import { startTestS3, type TestS3 } from './support/s3-server';
import { checkTeamLedger } from './support/ledger-check';
import type { Store } from '../src/store/types';

const REPLICAS = 3;
/** Upstream job length: long enough for identical requests to meet a running generation. */
const JOB_MS = 1500;
const LONG_TIMEOUT_MS = 240_000;

let upstream: FakeTasksApi;
let s3: TestS3;
let replicas: Replica[];
let store: Store;
let schema: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const mp4 = mp4Renderer('testsrc2');
  await mp4(SHAPE);
  upstream = await startFakeTasksApi({ mp4, durationMs: JOB_MS });
  cleanups.push(() => upstream.close());
  s3 = await startTestS3();
  cleanups.push(() => s3.close());
  schema = newPostgresSchema();
  // The replicas start together with the same configured key: they race to store it and its default team.
  const started = await startReplicas({ postgresUrl: postgresUrl(), schema, s3, upstream: { kind: 'tasks-api', fake: upstream }, extraEnv: { VIDGATE_AUTH__API_KEYS: KEY_A } }, REPLICAS);
  replicas = started.replicas;
  cleanups.unshift(started.cleanup);
  store = await openPostgresStore(schema, 2);
  cleanups.unshift(() => store.close());
}, LONG_TIMEOUT_MS);

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
});

async function newTeam(name: string, quotas: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const team = await admin<{ id: string }>(replicas[0]!.url, 'POST', '/admin/teams', { name, quotas });
  const { key } = await admin<{ key: string }>(replicas[1]!.url, 'POST', `/admin/teams/${team.id}/keys`, { name: `${name}-key` });
  return { id: team.id, key };
}

const headers = (key: string) => ({ Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' });

interface Task { id: string; status: string; cache: string; usage: { credits_reserved: number; credits_settled: number | null } }

async function submit(url: string, key: string, body: object): Promise<{ status: number; json: Record<string, any> }> {
  const res = await fetch(`${url}/v1/videos/generations`, { method: 'POST', headers: headers(key), body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

async function waitTerminal(key: string, ids: string[], timeoutMs = 120_000): Promise<Task[]> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; ; round++) {
    // Each round reads through a different replica.
    const url = replicas[round % REPLICAS]!.url;
    const tasks = await Promise.all(ids.map(async (id) => (await fetch(`${url}/v1/tasks/${id}`, { headers: headers(key) })).json() as Promise<Task>));
    if (tasks.every((t) => ['completed', 'failed', 'cancelled'].includes(t.status))) return tasks;
    if (Date.now() > deadline) throw new Error(`not terminal: ${JSON.stringify(tasks.filter((t) => !['completed', 'failed', 'cancelled'].includes(t.status)))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('three replicas on one PostgreSQL database and one bucket', () => {
  it('started together, stores the configured key once, in one default team, and each replica accepts it', async () => {
    const teams = await admin<{ data: { id: string; name: string }[] }>(replicas[0]!.url, 'GET', '/admin/teams');
    const defaults = teams.data.filter((t) => t.name === 'default');
    expect(defaults).toHaveLength(1);
    const keys = await admin<{ data: { name: string }[] }>(replicas[2]!.url, 'GET', `/admin/teams/${defaults[0]!.id}/keys`);
    expect(keys.data.map((k) => k.name)).toEqual(['configured']);
    for (const r of replicas) expect((await fetch(`${r.url}/v1/usage`, { headers: headers(KEY_A) })).status).toBe(200);
  });

  it('accepts exactly as many of 200 parallel submits, spread over the replicas, as the budget covers', async () => {
    const fits = 7;
    const team = await newTeam('budget', { credits_per_day: fits * CREDITS_PER_TASK, submits_per_minute: null, max_concurrent: null });
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => ({ prompt: `budget race ${i}`, ...(await submit(replicas[i % REPLICAS]!.url, team.key, taskBody(`budget race ${i}`))) })),
    );
    const accepted = answers.filter((a) => a.status === 202);
    const refused = answers.filter((a) => a.status !== 202);
    expect(accepted).toHaveLength(fits);
    for (const r of refused) {
      expect(r.status).toBe(402);
      expect(r.json).toMatchObject({ error: { type: 'insufficient_quota_error', code: 'credits_per_day_exceeded' } });
    }
    const tasks = await waitTerminal(team.key, accepted.map((a) => a.json.id as string));
    expect(tasks.map((t) => t.status)).toEqual(tasks.map(() => 'completed'));
    const summary = await checkTeamLedger(store, team.id);
    expect(summary.problems).toEqual([]);
    expect(summary.settledTotal).toBe(fits * CREDITS_PER_TASK);
    // One upstream job per accepted task, none for a refused one.
    const jobs = [...upstream.tasks.values()].filter((t) => String(t.body.prompt).startsWith('budget race '));
    expect(jobs.map((j) => j.body.prompt).sort()).toEqual(accepted.map((a) => a.prompt).sort());
    expect((await admin<{ counters_corrected: number }>(replicas[2]!.url, 'POST', '/admin/ledger/verify')).counters_corrected).toBe(0);
  }, LONG_TIMEOUT_MS);

  it('makes one upstream submission for 12 identical concurrent requests across replicas', async () => {
    const team = await newTeam('coalesce', { credits_per_day: null, submits_per_minute: null });
    const prompt = 'a lighthouse in a storm, twelve times';
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => submit(replicas[i % REPLICAS]!.url, team.key, taskBody(prompt))));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    expect(answers.map((a) => a.json.cache).sort()).toEqual([...Array(11).fill('coalesced'), 'miss'].sort());
    const tasks = await waitTerminal(team.key, answers.map((a) => a.json.id as string));
    expect(tasks.map((t) => t.status)).toEqual(tasks.map(() => 'completed'));
    expect([...upstream.tasks.values()].filter((t) => t.body.prompt === prompt)).toHaveLength(1);
    // Every follower serves the leader's video, through any replica.
    const leader = answers.find((a) => a.json.cache === 'miss')!.json.id as string;
    const object = await s3.bytes(`videos/${leader}.mp4`);
    for (const [i, a] of answers.entries()) {
      const res = await fetch(`${replicas[(i + 1) % REPLICAS]!.url}/v1/tasks/${a.json.id}/content`, { headers: headers(team.key) });
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(object)).toBe(true);
    }
    expect((await checkTeamLedger(store, team.id)).problems).toEqual([]);
  }, LONG_TIMEOUT_MS);

  it('reads, cancels and downloads on one replica a task made on another', async () => {
    const team = await newTeam('across', { credits_per_day: null, submits_per_minute: null });
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    // Made on A, read on B and C.
    const made = await submit(a.url, team.key, taskBody('a train crossing a bridge'));
    expect(made.status).toBe(202);
    for (const r of [b, c]) {
      const res = await fetch(`${r.url}/v1/tasks/${made.json.id}`, { headers: headers(team.key) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as Task).id).toBe(made.json.id);
    }
    // Downloaded on C once done (the video is in the bucket, kept by whichever replica finished it).
    await waitTerminal(team.key, [made.json.id]);
    const video = await fetch(`${c.url}/v1/tasks/${made.json.id}/content`, { headers: headers(team.key) });
    expect(video.status).toBe(200);
    expect(Buffer.from(await video.arrayBuffer()).equals(await s3.bytes(`videos/${made.json.id}.mp4`))).toBe(true);
    const ranged = await fetch(`${a.url}/v1/tasks/${made.json.id}/content`, { headers: { ...headers(team.key), Range: 'bytes=0-99' } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(100);

    // Made on B, cancelled on C while it runs; A sees it cancelled, and its reservation released.
    const doomed = await submit(b.url, team.key, taskBody('a slow sunset, cancelled'));
    expect(doomed.status).toBe(202);
    const cancel = await fetch(`${c.url}/v1/tasks/${doomed.json.id}/cancel`, { method: 'POST', headers: headers(team.key) });
    expect(cancel.status).toBe(200);
    expect(((await cancel.json()) as Task).status).toBe('cancelled');
    const seen = (await (await fetch(`${a.url}/v1/tasks/${doomed.json.id}`, { headers: headers(team.key) })).json()) as Task;
    expect(seen.status).toBe('cancelled');
    expect(seen.usage.credits_settled).toBe(0);
    // A cancelled task has no video, on any replica.
    const none = await fetch(`${a.url}/v1/tasks/${doomed.json.id}/content`, { headers: headers(team.key) });
    expect(none.status).toBe(409);
    expect((await checkTeamLedger(store, team.id)).problems).toEqual([]);
  }, LONG_TIMEOUT_MS);
});
