// The result cache and coalescing, end to end: a real gateway with the cache on, in front of fake upstreams over
// real HTTP, observed through the public API (status codes, the task's `cache`, the stored video's bytes), the
// upstreams' own request logs (how many jobs were submitted or cancelled), /metrics and the ledger.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { createGateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { mp4Renderer } from './support/mp4';
import { KEY_A, KEY_B, auth, startTestGateway, waitFor, type ConfigOverrides } from './support/gateway';
import { makeImage } from './support/images';
import { checkTeamLedger } from './support/ledger-check';

type Task = components['schemas']['Task'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const BODY = { model: 'sora-2', prompt: 'A paper boat on a rainy street', aspect_ratio: '16:9', duration: 4 } as const;
/** $0.10 per second on the cheap provider: 40 credits for 4 s; the dear one costs twice as much. */
const CHEAP_CREDITS = 40;
/** Real MP4s of each requested shape (the gateway verifies them); every test here compares BODY's. */
const RENDER = mp4Renderer();
let MP4: Buffer;

beforeAll(async () => {
  MP4 = await RENDER({ size: '1280x720', seconds: 4 });
});

interface Rig {
  h: Harness;
  openai: FakeOpenAI;
  tasks: FakeTasksApi;
  /** Moves the gateway's clock forward. */
  advance(ms: number): void;
}

/** A gateway with the cache on; openai is the cheap provider, tasks (the task API) the dear one. */
async function rig(ctx: TestContext, cache: Record<string, unknown> = {}, more: ConfigOverrides = {}, jobMs = 300): Promise<Rig> {
  const openai = await startFakeOpenAI({ mp4: RENDER, jobDurationMs: jobMs });
  const tasks = await startFakeTasksApi({ mp4: RENDER, durationMs: jobMs });
  let offset = 0;
  const h = await startTestGateway(
    {
      cache: { enabled: true, ...cache },
      workers: { poll_interval_ms: 30, retry_backoff_ms: 30, lease_ms: 5000, max_attempts: 3 },
      routing: { breaker: { consecutive_failures: 5, cooldown_ms: 500 } },
      providers: [
        { id: 'openai', kind: 'openai', base_url: openai.url, api_key_env: 'FAKE_OPENAI_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] },
        { id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'FAKE_TASKS_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.2 } }] },
      ],
      ...more,
    },
    { env: { FAKE_OPENAI_KEY: openai.apiKey, FAKE_TASKS_KEY: tasks.apiKey }, now: () => Date.now() + offset },
  );
  ctx.onTestFinished(async () => {
    await openai.close();
    await tasks.close();
    await h.close();
  });
  return { h, openai, tasks, advance: (ms) => void (offset += ms) };
}

async function post(h: Harness, body: object = BODY, key = KEY_A, headers: Record<string, string> = {}) {
  const res = await h.http.post('/v1/videos/generations').set(auth(key)).set(headers).send(body);
  expect([200, 202], JSON.stringify(res.body)).toContain(res.status);
  return { status: res.status, task: res.body as Task };
}

async function getTask(h: Harness, id: string, key = KEY_A): Promise<Task> {
  const res = await h.http.get(`/v1/tasks/${id}`).set(auth(key));
  expect(res.status).toBe(200);
  return res.body as Task;
}

async function finished(h: Harness, id: string, key = KEY_A): Promise<Task> {
  return waitFor(async () => {
    const t = await getTask(h, id, key);
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, 15_000);
}

async function video(h: Harness, id: string, key = KEY_A): Promise<Buffer> {
  const res = await h.http.get(`/v1/tasks/${id}/content`).set(auth(key)).buffer(true).parse((r, done) => {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.on('end', () => done(null, Buffer.concat(chunks)));
  });
  expect(res.status).toBe(200);
  return res.body as Buffer;
}

/** Jobs submitted to the task API (the dear provider). */
const taskApiSubmissions = (r: Rig) => r.tasks.requests.filter((q) => q.method === 'POST' && q.path === '/v1/videos/generations').length;
const submissions = (r: Rig) => r.openai.requestsTo('create').length + taskApiSubmissions(r);

/** The id of the default team, which KEY_A belongs to. */
async function teamA(h: Harness): Promise<string> {
  return (await h.gateway.store.findTeamByName('default'))!.id;
}

/** Upstream submissions once the given tasks have all finished (submission is asynchronous). */
async function submissionsAfter(r: Rig, tasks: { task: Task }[]): Promise<number> {
  for (const t of tasks) await finished(r.h, t.task.id);
  return submissions(r);
}

async function metric(h: Harness, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await h.http.get('/metrics')).text;
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(' ').at(-1));
  }
  return total;
}

describe('cache hits', () => {
  it('serves a repeat, written differently, from the stored video at once and for free', async (ctx) => {
    const r = await rig(ctx);
    const first = await post(r.h);
    expect(first).toMatchObject({ status: 202, task: { cache: 'miss', status: 'pending' } });
    const original = await finished(r.h, first.task.id);
    expect(original.status).toBe('completed');

    const again = await post(r.h, { ...BODY, prompt: '  a PAPER boat\n\ton a rainy\u00a0street ' });
    expect(again.status).toBe(200);
    expect(again.task).toMatchObject({ cache: 'hit', status: 'completed', progress: 100, provider: null, attempts: [], usage: { credits_reserved: 0 } });
    expect(again.task.id).not.toBe(original.id);
    expect(again.task.expires_at).toBe(original.expires_at); // the video is the original's, deleted with it
    expect(submissions(r)).toBe(1);
    expect((await video(r.h, again.task.id)).equals(await video(r.h, original.id))).toBe(true);
    expect((await video(r.h, again.task.id)).equals(MP4)).toBe(true);

    expect(await metric(r.h, 'vidgate_cache_requests_total', { result: 'hit', team: await teamA(r.h), model: 'sora-2' })).toBe(1);
    expect(await metric(r.h, 'vidgate_cache_requests_total', { result: 'miss', team: await teamA(r.h) })).toBe(1);
    expect(await metric(r.h, 'vidgate_cache_credits_saved_total', { team: await teamA(r.h), model: 'sora-2' })).toBe(CHEAP_CREDITS);
    const ledger = await checkTeamLedger(r.h.gateway.store, await teamA(r.h));
    expect(ledger.problems).toEqual([]);
    expect(ledger.settledTotal).toBe(CHEAP_CREDITS);
    const usage = await r.h.http.get('/v1/usage').set(auth(KEY_A));
    expect(usage.status).toBe(200);
    expect(usage.body.spend.map((s: { provider: string; tasks: number; credits: number }) => [s.provider, s.tasks, s.credits]).sort()).toEqual([
      ['cache', 1, 0],
      ['openai', 1, CHEAP_CREDITS],
    ]);
  });

  it('charges the configured price of a hit, and misses on any difference that changes the video', async (ctx) => {
    const r = await rig(ctx, { hit_credits: 3 });
    await finished(r.h, (await post(r.h)).task.id);
    expect((await post(r.h)).task).toMatchObject({ cache: 'hit', usage: { credits_reserved: 3 } });
    const variants = [{ duration: 8 }, { aspect_ratio: '9:16' }, { prompt: 'A paper boat on a sunny street' }, { model: 'sora-2', aspect_ratio: '1280x720', resize_mode: 'crop' }];
    const misses = [];
    for (const change of variants) {
      const answer = await post(r.h, { ...BODY, ...change });
      expect(answer.task.cache, JSON.stringify(change)).toBe('miss');
      misses.push(answer);
    }
    expect(await submissionsAfter(r, misses)).toBe(1 + variants.length);
  });

  it('misses once the result is older than the TTL', async (ctx) => {
    const r = await rig(ctx, { ttl_ms: 60_000 });
    await finished(r.h, (await post(r.h)).task.id);
    r.advance(59_000);
    expect((await post(r.h)).task.cache).toBe('hit');
    r.advance(2_000);
    const late = await post(r.h);
    expect(late.task.cache).toBe('miss');
    await finished(r.h, late.task.id);
    expect(submissions(r)).toBe(2);
    expect((await post(r.h)).task.cache).toBe('hit'); // the new result serves from now on
  });

  it('misses once retention has deleted the video, however long the TTL', async (ctx) => {
    const r = await rig(ctx, { ttl_ms: 3_600_000 });
    const first = await finished(r.h, (await post(r.h)).task.id);
    const hit = await post(r.h);
    await r.h.gateway.store.markAssetExpired(first.id); // what the retention sweep does
    expect((await getTask(r.h, hit.task.id)).results).toEqual([]);
    expect((await r.h.http.get(`/v1/tasks/${hit.task.id}/content`).set(auth(KEY_A))).status).toBe(410);
    expect((await post(r.h)).task.cache).toBe('miss');
  });

  it('generates afresh on cache: false and on Cache-Control: no-cache, and the fresh take serves later repeats', async (ctx) => {
    const r = await rig(ctx);
    const first = await finished(r.h, (await post(r.h)).task.id);
    const fresh = await post(r.h, { ...BODY, cache: false });
    expect(fresh).toMatchObject({ status: 202, task: { cache: 'bypassed', status: 'pending' } });
    const header = await post(r.h, BODY, KEY_A, { 'Cache-Control': 'no-cache' });
    expect(header.task.cache).toBe('bypassed'); // nor does a bypass follow the identical one running
    expect(await submissionsAfter(r, [fresh, header])).toBe(3);
    const later = await post(r.h);
    expect(later.task.cache).toBe('hit');
    const sources = await r.h.gateway.store.getTask(later.task.id);
    expect(sources?.source_id).not.toBe(first.id); // the newest take
  });
});

describe('scope', () => {
  it('by team: another team neither hits nor follows, and cannot see the first team tasks', async (ctx) => {
    const r = await rig(ctx);
    const a = await post(r.h);
    const bWhileRunning = await post(r.h, BODY, KEY_B);
    expect(bWhileRunning.task.cache).toBe('miss');
    await finished(r.h, a.task.id);
    await finished(r.h, bWhileRunning.task.id, KEY_B);
    expect((await post(r.h, BODY, KEY_B)).task.cache).toBe('hit'); // its own result
    expect(submissions(r)).toBe(2);
    expect((await r.h.http.get(`/v1/tasks/${a.task.id}`).set(auth(KEY_B))).status).toBe(404);
    // Team A's video and team B's are distinct generations, however alike the bytes.
    const bHit = await r.h.gateway.store.getTask((await post(r.h, BODY, KEY_B)).task.id);
    expect(bHit?.source_id).toBe(bWhileRunning.task.id);
  });

  it('global: every team shares results, and a hit names nothing of the team that paid', async (ctx) => {
    const r = await rig(ctx, { scope: 'global' });
    const a = await finished(r.h, (await post(r.h)).task.id);
    const b = await post(r.h, BODY, KEY_B);
    expect(b.task).toMatchObject({ cache: 'hit', status: 'completed' });
    expect(JSON.stringify(b.task)).not.toContain(a.id);
    expect((await video(r.h, b.task.id, KEY_B)).equals(MP4)).toBe(true);
    // Nor does the download tell when the original was made.
    const head = await r.h.http.get(`/v1/tasks/${b.task.id}/content`).set(auth(KEY_B));
    expect([head.headers['last-modified'], head.headers.etag]).toEqual([undefined, undefined]);
    expect(submissions(r)).toBe(1);
  });
});

describe('coalescing', () => {
  it('N identical concurrent requests make exactly one upstream submission, and all get the video', async (ctx) => {
    const r = await rig(ctx, {}, {}, 600);
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(r.h)));
    const byCache = answers.map((a) => a.task.cache).sort();
    expect(byCache).toEqual(['coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'miss']);
    const done = await Promise.all(answers.map((a) => finished(r.h, a.task.id)));
    expect(done.every((t) => t.status === 'completed' && t.provider === 'openai')).toBe(true);
    expect(submissions(r)).toBe(1);
    for (const t of done) expect((await video(r.h, t.id)).equals(MP4)).toBe(true);
    const followers = done.filter((t) => t.cache === 'coalesced');
    expect(followers.every((t) => t.attempts.length === 0 && t.usage.credits_reserved === 0)).toBe(true);
    const ledger = await checkTeamLedger(r.h.gateway.store, await teamA(r.h));
    expect(ledger.problems).toEqual([]);
    expect(ledger.settledTotal).toBe(CHEAP_CREDITS); // only the original pays
    expect(await metric(r.h, 'vidgate_cache_requests_total', { result: 'coalesced' })).toBe(7);
    expect(await metric(r.h, 'vidgate_cache_credits_saved_total', { team: await teamA(r.h) })).toBe(7 * CHEAP_CREDITS);
  });

  it('identical requests racing through two replicas on one database make one submission', async (ctx) => {
    const r = await rig(ctx, {}, {}, 600);
    const replica = await createGateway(r.h.config, {
      env: { FAKE_OPENAI_KEY: r.openai.apiKey, FAKE_TASKS_KEY: r.tasks.apiKey },
      log: createLogger('silent'),
      validateResponses: true,
    });
    const replicaUrl = await replica.start();
    ctx.onTestFinished(() => replica.stop());
    const answers = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await fetch(`${i % 2 ? replicaUrl : r.h.url}/v1/videos/generations`, {
          method: 'POST',
          headers: { ...auth(KEY_A), 'Content-Type': 'application/json' },
          body: JSON.stringify({ ...BODY, prompt: i % 3 ? BODY.prompt : BODY.prompt.toUpperCase() }),
        });
        expect(res.status).toBe(202);
        return { task: (await res.json()) as Task };
      }),
    );
    expect(answers.filter((a) => a.task.cache === 'miss')).toHaveLength(1);
    expect(await submissionsAfter(r, answers)).toBe(1);
    expect((await checkTeamLedger(r.h.gateway.store, await teamA(r.h))).problems).toEqual([]);
  });

  it('a follower reports the progress of the generation it follows', async (ctx) => {
    const r = await rig(ctx, {}, {}, 1500);
    const leader = await post(r.h);
    const follower = await post(r.h);
    const seen = await waitFor(async () => {
      const [l, f] = [await getTask(r.h, leader.task.id), await getTask(r.h, follower.task.id)];
      return l.status === 'processing' && l.progress > 0 && f.progress === l.progress ? f : undefined;
    });
    expect(seen.status).toBe('processing');
  });

  it("when the original's owner cancels, followers still get their video and the job is not cancelled", async (ctx) => {
    const r = await rig(ctx, {}, {}, 1200);
    const leader = await post(r.h);
    const job = await waitFor(async () => (await getTask(r.h, leader.task.id)).attempts[0]?.upstream_id ?? undefined);
    const f1 = await post(r.h);
    const f2 = await post(r.h, BODY, KEY_A);
    expect([f1.task.cache, f2.task.cache]).toEqual(['coalesced', 'coalesced']);
    const cancelled = await r.h.http.post(`/v1/tasks/${leader.task.id}/cancel`).set(auth(KEY_A));
    expect(cancelled.body).toMatchObject({ status: 'cancelled' });

    const [d1, d2] = await Promise.all([finished(r.h, f1.task.id), finished(r.h, f2.task.id)]);
    expect([d1.status, d2.status]).toEqual(['completed', 'completed']);
    expect(submissions(r)).toBe(1);
    expect(r.openai.requestsTo('delete')).toHaveLength(0);
    // The oldest follower adopted the job (and pays for it); the other still follows.
    expect(d1).toMatchObject({ cache: 'miss', attempts: [{ provider: 'openai', upstream_id: job, outcome: 'completed' }] });
    expect(d2).toMatchObject({ cache: 'coalesced', attempts: [] });
    const ledger = await checkTeamLedger(r.h.gateway.store, await teamA(r.h));
    expect(ledger.problems).toEqual([]);
    expect(ledger.settledTotal).toBe(CHEAP_CREDITS);
    // The credit metrics add up too: the heir's reservation grew when it adopted the job.
    const team = await teamA(r.h);
    const credits = (kind: string) => metric(r.h, 'vidgate_credits_total', { kind, team });
    expect(await credits('reserved')).toBe((await credits('settled')) + (await credits('released')));
    expect(await credits('settled')).toBe(CHEAP_CREDITS);
  });

  it('a follower whose key cannot pay for the job keeps following the one that adopts it, for free', async (ctx) => {
    const r = await rig(ctx, {}, {}, 1200);
    const { key: poorKey } = await r.h.gateway.teams.addKey(await teamA(r.h), { name: 'poor', credits_per_day: 5 });
    const leader = await post(r.h);
    await waitFor(async () => ((await getTask(r.h, leader.task.id)).status === 'processing' ? true : undefined));
    const poor = await post(r.h, BODY, poorKey);
    const rich = await post(r.h);
    expect([poor.task.cache, rich.task.cache]).toEqual(['coalesced', 'coalesced']);
    await r.h.http.post(`/v1/tasks/${leader.task.id}/cancel`).set(auth(KEY_A));
    const [p, q] = [await finished(r.h, poor.task.id, poorKey), await finished(r.h, rich.task.id)];
    expect([p.status, p.cache, p.usage.credits_reserved]).toEqual(['completed', 'coalesced', 0]);
    expect([q.status, q.cache, q.usage.credits_reserved]).toEqual(['completed', 'miss', CHEAP_CREDITS]);
    expect(submissions(r)).toBe(1);
    expect(r.openai.requestsTo('delete')).toHaveLength(0);
  });

  it('cancelling every follower, then the original, cancels the upstream job', async (ctx) => {
    const r = await rig(ctx, {}, {}, 2000);
    const leader = await post(r.h);
    await waitFor(async () => ((await getTask(r.h, leader.task.id)).status === 'processing' ? true : undefined));
    const follower = await post(r.h);
    expect((await r.h.http.post(`/v1/tasks/${follower.task.id}/cancel`).set(auth(KEY_A))).body.status).toBe('cancelled');
    expect(r.openai.requestsTo('delete')).toHaveLength(0);
    expect((await getTask(r.h, leader.task.id)).status).toBe('processing');
    await r.h.http.post(`/v1/tasks/${leader.task.id}/cancel`).set(auth(KEY_A));
    expect(r.openai.requestsTo('delete')).toHaveLength(1);
  });

  it('when the generation fails over, followers fail over with it and complete from the next provider', async (ctx) => {
    const r = await rig(ctx, {}, {}, 500);
    r.openai.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve', times: 1 });
    const answers = await Promise.all([post(r.h), post(r.h), post(r.h)]);
    const done = await Promise.all(answers.map((a) => finished(r.h, a.task.id)));
    expect(done.map((t) => [t.status, t.provider])).toEqual([['completed', 'tasks'], ['completed', 'tasks'], ['completed', 'tasks']]);
    expect(r.openai.requestsTo('create')).toHaveLength(1);
    expect(taskApiSubmissions(r)).toBe(1);
    expect((await checkTeamLedger(r.h.gateway.store, await teamA(r.h))).problems).toEqual([]);
  });

  it('when the generation fails for good, followers fail with the same error', async (ctx) => {
    const r = await rig(ctx, {}, {}, 500);
    r.openai.setMode({ kind: 'fail_job', code: 'content_policy_violation', message: 'the prompt was refused' }, { route: 'retrieve' });
    const answers = await Promise.all([post(r.h), post(r.h)]);
    const done = await Promise.all(answers.map((a) => finished(r.h, a.task.id)));
    expect(done.map((t) => t.status)).toEqual(['failed', 'failed']);
    expect(done[1]!.error).toEqual(done[0]!.error);
    expect(done[0]!.error?.code).toBe('content_policy_violation');
    expect(submissions(r)).toBe(1);
    expect((await checkTeamLedger(r.h.gateway.store, await teamA(r.h))).problems).toEqual([]);
  });
});

describe('reference images', () => {
  it('keys an image by its bytes: the same bytes at another URL hit, other bytes at the same URL miss', async (ctx) => {
    let served = makeImage('png', 64, 48, 1);
    const images = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(served));
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    ctx.onTestFinished(() => new Promise<void>((resolve) => images.close(() => resolve())));
    const origin = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
    const r = await rig(ctx, {}, { outbound: { trusted_origins: [origin] } });

    const withImage = (path: string) => ({ ...BODY, image_urls: [`${origin}${path}`] });
    await finished(r.h, (await post(r.h, withImage('/a.png'))).task.id);
    expect((await post(r.h, withImage('/b.png?copy=1'))).task.cache).toBe('hit');
    expect((await post(r.h, BODY)).task.cache).toBe('miss'); // no image is another request
    served = makeImage('png', 64, 48, 2);
    expect((await post(r.h, withImage('/a.png'))).task.cache).toBe('miss');
  });

  it('global scope shares no request with an image: the provider fetches the URL itself and may get other bytes', async (ctx) => {
    const images = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(makeImage('png')));
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    ctx.onTestFinished(() => new Promise<void>((resolve) => images.close(() => resolve())));
    const origin = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
    const r = await rig(ctx, { scope: 'global' }, { outbound: { trusted_origins: [origin] } });
    const body = { ...BODY, image_urls: [`${origin}/a.png`] };
    await finished(r.h, (await post(r.h, body)).task.id);
    expect((await post(r.h, body)).task.cache).toBe('hit');
    expect((await post(r.h, body, KEY_B)).task.cache).toBe('miss');
    expect((await post(r.h, BODY, KEY_B)).task.cache).toBe('miss');
    expect((await post(r.h, BODY)).task.cache).toBe('coalesced'); // without an image, teams share
  });

  it('refuses an image URL on a private address unless its origin is trusted', async (ctx) => {
    const r = await rig(ctx);
    const res = await r.h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ ...BODY, image_urls: ['http://127.0.0.1:9/x.png'] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_url', param: 'image_urls' });
    expect(submissions(r)).toBe(0);
  });
});
