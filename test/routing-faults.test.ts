// Issue 10, faults 1, 2, 3 and 6, over real HTTP: a real gateway routing one model between fake upstreams of both
// wire shapes, at the default breaker and health-check settings unless a test says why it changes one. Each test
// failed on the code before the fix (health counted submits, the half-open gate was taken after the store call,
// no active checks, Retry-After only lengthened the cool-down, the last provider's raw error ended the task).
import { describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { mp4Renderer } from './support/mp4';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

type Task = components['schemas']['Task'];
type ProviderStatus = components['schemas']['ProviderStatus'];
type BreakerStatus = components['schemas']['BreakerStatus'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const MODEL = 'sora-2';
const BODY = { model: MODEL, prompt: 'a lighthouse in a storm', aspect_ratio: '16:9', duration: 4 } as const;
// Real MP4s of each requested shape: every delivered video is verified.
const MP4 = mp4Renderer();

interface Rig {
  h: Harness;
  /** cheap: OpenAI shape, $0.10/s; dear: task API, $0.30/s. */
  cheap: FakeOpenAI;
  dear: FakeTasksApi;
}

async function rig(ctx: TestContext, o: { cheapJobMs?: number; breaker?: object; workers?: object; routing?: object } = {}): Promise<Rig> {
  const cheap = await startFakeOpenAI({ mp4: MP4, jobDurationMs: o.cheapJobMs ?? 150 });
  const dear = await startFakeTasksApi({ mp4: MP4, durationMs: 150 });
  const h = await startTestGateway(
    {
      // Generous timeouts: nothing here may turn into a timeout on a busy machine.
      workers: { poll_interval_ms: 50, retry_backoff_ms: 50, lease_ms: 10_000, upstream_timeout_ms: 10_000, ...o.workers },
      routing: { wait_for_provider_ms: 20_000, ...o.routing, ...(o.breaker && { breaker: o.breaker }) },
      providers: [
        { id: 'cheap', kind: 'openai', base_url: cheap.url, api_key_env: 'CHEAP_KEY', timeout_ms: 10_000, models: [{ model: MODEL, usd_per_second: { standard: 0.1 } }] },
        { id: 'dear', kind: 'tasks-api', base_url: dear.url, api_key_env: 'DEAR_KEY', timeout_ms: 10_000, models: [{ model: MODEL, usd_per_second: { standard: 0.3 } }] },
      ],
    },
    { env: { CHEAP_KEY: cheap.apiKey, DEAR_KEY: dear.apiKey } },
  );
  ctx.onTestFinished(async () => {
    for (const close of [() => cheap.close(), () => dear.close(), () => h.close()]) await close().catch(() => undefined);
  });
  return { h, cheap, dear };
}

async function submit(h: Harness): Promise<Task> {
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(BODY);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as Task;
}

async function getTask(h: Harness, id: string): Promise<Task> {
  return (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body as Task;
}

const settled = (h: Harness, id: string, timeoutMs = 30_000) =>
  waitFor(async () => {
    const t = await getTask(h, id);
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, timeoutMs);

async function health(h: Harness, provider: string): Promise<BreakerStatus> {
  const res = await h.http.get('/v1/providers').set(auth(KEY_A));
  return (res.body.data as ProviderStatus[]).find((p) => p.id === provider)!.models.find((m) => m.model === MODEL)!.health;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fault 1: health learns from job outcomes', () => {
  it('a provider that accepts every job and then fails it opens after consecutive_failures; its probe closes it only when its job completes', async (ctx) => {
    // Two in a row and a short cool-down, so that the test is short; the rule is the default's.
    const r = await rig(ctx, { cheapJobMs: 1500, breaker: { consecutive_failures: 2, cooldown_ms: 1000 } });
    r.cheap.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve' });
    for (let i = 0; i < 2; i++) {
      const done = await settled(r.h, (await submit(r.h)).id);
      expect(done).toMatchObject({ status: 'completed', provider: 'dear' });
      expect(done.attempts.map((a) => [a.provider, a.outcome])).toEqual([['cheap', 'retried'], ['dear', 'completed']]);
    }
    // Two accepted submits did not count as successes: two failed jobs in a row opened it.
    const opened = await health(r.h, 'cheap');
    expect(opened).toMatchObject({ state: 'open', calls: 2, error_rate: 1 });
    expect(opened.reason).toBe('2 consecutive failures, last: internal_error');
    const third = await settled(r.h, (await submit(r.h)).id);
    expect(third.attempts.map((a) => a.provider)).toEqual(['dear']);

    // The provider heals. After the cool-down one task probes it; while its job runs, accepted and progressing,
    // the breaker stays half-open (a successful submit proves nothing); the completed job closes it.
    r.cheap.resetModes();
    await sleep(Math.max(0, opened.until! - Date.now() + 50));
    const probe = await submit(r.h);
    await waitFor(async () => ((await getTask(r.h, probe.id)).status === 'processing' ? true : undefined));
    expect((await getTask(r.h, probe.id)).provider).toBe('cheap');
    expect((await health(r.h, 'cheap')).state).toBe('half_open');
    const done = await settled(r.h, probe.id);
    expect(done).toMatchObject({ status: 'completed', provider: 'cheap' });
    expect(await health(r.h, 'cheap')).toMatchObject({ state: 'closed', reason: null, calls: 3, error_rate: 2 / 3 });
  });
});

describe('fault 2: exactly one probe', () => {
  it('when a cool-down ends with 8 tasks waiting, one probes the provider and the others wait for its outcome', async (ctx) => {
    const r = await rig(ctx, { cheapJobMs: 2000, breaker: { consecutive_failures: 1, cooldown_ms: 1000 } });
    // The cheap provider fails one job (open for 1 s); the dear one asks for 60 s.
    r.cheap.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve', times: 1 });
    r.dear.setMode({ kind: 'http_error', status: 429, retryAfter: '60' }, { route: 'create' });
    const tasks = [await submit(r.h)];
    await waitFor(async () => ((await getTask(r.h, tasks[0]!.id)).attempts[1]?.outcome === 'retried' ? true : undefined));
    for (let i = 0; i < 7; i++) tasks.push(await submit(r.h));
    expect((await health(r.h, 'cheap')).state).toBe('open');

    // The cool-down ends: one task is sent, the probe; its job runs 2 s.
    await waitFor(async () => (r.cheap.requestsTo('create').length >= 2 ? true : undefined));
    await sleep(500);
    expect(r.cheap.requestsTo('create')).toHaveLength(2); // the first task's failed job, and the probe
    expect((await health(r.h, 'cheap')).state).toBe('half_open');
    // The probe's job completes: closed, and the other seven go there.
    const done = await Promise.all(tasks.map((t) => settled(r.h, t.id)));
    for (const t of done) expect(t).toMatchObject({ status: 'completed', provider: 'cheap' });
    expect(r.cheap.requestsTo('create')).toHaveLength(9);
    expect(r.dear.requests.filter((q) => q.method === 'POST')).toHaveLength(1);
  });
});

describe('fault 3: active health checks', () => {
  it('at the default 30 s cool-down, traffic returns to the cheaper provider within seconds of its recovery', async (ctx) => {
    const r = await rig(ctx, { breaker: { consecutive_failures: 1 } });
    r.cheap.setMode('error_500'); // down: every route
    const first = await settled(r.h, (await submit(r.h)).id);
    expect(first.attempts.map((a) => [a.provider, a.outcome])).toEqual([['cheap', 'retried'], ['dear', 'completed']]);
    const opened = await health(r.h, 'cheap');
    expect(opened.until! - opened.since).toBe(30_000);

    // Down for 2 s more (the checks see it down: the breaker stays open), then up.
    await sleep(2000);
    expect((await health(r.h, 'cheap')).state).toBe('open');
    const createsWhileDown = r.cheap.requestsTo('create').length;
    expect(createsWhileDown).toBe(1); // no customer task probed it
    expect(r.cheap.requestsTo('retrieve').length).toBeGreaterThanOrEqual(1); // the checks did
    r.cheap.resetModes();
    const recoveredAt = Date.now();
    let back: Task | undefined;
    while (!back) {
      const t = await settled(r.h, (await submit(r.h)).id);
      if (t.provider === 'cheap') back = t;
      else await sleep(200);
    }
    // Within the check interval (4 s at most) plus slack for a busy machine; the cool-down alone would take 28 s.
    expect(back.attempts[0]!.started_at - recoveredAt).toBeLessThan(12_000);
    expect(back.attempts.map((a) => a.provider)).toEqual(['cheap']);
    expect((await health(r.h, 'cheap')).state).toBe('closed');
  });

  it('Retry-After: 2 keeps the provider out exactly 2 s, not the 30 s cool-down; GET /v1/providers never shows a stale open', async (ctx) => {
    const r = await rig(ctx);
    r.cheap.setMode({ kind: 'rate_limited', retryAfterS: 2 }, { route: 'create', times: 1 });
    const first = await settled(r.h, (await submit(r.h)).id);
    expect(first.provider).toBe('dear');
    const opened = await health(r.h, 'cheap');
    expect(opened).toMatchObject({ state: 'open', reason: 'asked to retry later: rate_limit_exceeded' });
    expect(opened.until! - opened.since).toBe(2000);

    await sleep(Math.max(0, opened.until! - Date.now() + 50));
    // Past its until it does not read open: its probe may go.
    expect(await health(r.h, 'cheap')).toMatchObject({ state: 'half_open', until: null });
    const next = await settled(r.h, (await submit(r.h)).id);
    expect(next).toMatchObject({ status: 'completed', provider: 'cheap' });
    expect(next.attempts.map((a) => a.provider)).toEqual(['cheap']);
    expect((await health(r.h, 'cheap')).state).toBe('closed');
  });
});

describe('fault 6: no provider available', () => {
  it('every provider failing: the task ends with no_provider_available, naming each provider and why, in public words', async (ctx) => {
    const r = await rig(ctx, { routing: { wait_for_provider_ms: 3000 } });
    r.cheap.setMode('error_500', { route: 'create' });
    r.dear.setMode({ kind: 'http_error', status: 503 }, { route: 'create' });
    const done = await settled(r.h, (await submit(r.h)).id);
    expect(done.status).toBe('failed');
    expect(done.error).toEqual({
      code: 'no_provider_available',
      message: 'no provider could serve this request: cheap failed this task (server_error); dear failed this task (http_503)',
    });
    expect(done.attempts.map((a) => [a.provider, a.outcome])).toEqual([['cheap', 'retried'], ['dear', 'retried'], ['cheap', 'failed']]);
  });

  it('every breaker open: a new task waits wait_for_provider_ms, then fails naming each provider as unavailable', async (ctx) => {
    const r = await rig(ctx, { routing: { wait_for_provider_ms: 1500 } });
    r.cheap.setMode({ kind: 'rate_limited', retryAfterS: 60 }, { route: 'create', times: 1 });
    r.dear.setMode({ kind: 'http_error', status: 429, retryAfter: '60' }, { route: 'create', times: 1 });
    await waitFor(async () => ((await settled(r.h, (await submit(r.h)).id)).status === 'failed' ? true : undefined), 30_000);
    const start = Date.now();
    const done = await settled(r.h, (await submit(r.h)).id);
    expect(Date.now() - start).toBeGreaterThanOrEqual(1500);
    expect(done).toMatchObject({ status: 'failed', attempts: [] });
    expect(done.error).toEqual({
      code: 'no_provider_available',
      message: 'no provider could serve this request: cheap is unavailable (circuit breaker open); dear is unavailable (circuit breaker open)',
    });
  });
});
