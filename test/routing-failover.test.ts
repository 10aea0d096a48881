// Failover and provider health, end to end: a real gateway routing one model between two fake upstreams over real
// HTTP (a cheap one and a dearer one, of the two wire shapes), driven and observed through the public API only:
// the task (status, provider, attempts, error), GET /v1/providers (breakers), /v1/models, /v1/estimates, /v1/usage.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { KEY_A, auth, probeVideo, startTestGateway, waitFor, type VideoFacts } from './support/gateway';
import { mp4Renderer, type VideoShape } from './support/mp4';

type Task = components['schemas']['Task'];
type ProviderStatus = components['schemas']['ProviderStatus'];
type BreakerStatus = components['schemas']['BreakerStatus'];
type Estimate = components['schemas']['Estimate'];
type Model = components['schemas']['Model'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

/** The two fakes, by the id their provider has in the gateway. */
type Kind = 'openai' | 'tasks';
const KINDS = ['openai', 'tasks'] as const;
const other = (k: Kind): Kind => (k === 'openai' ? 'tasks' : 'openai');

const MODEL = 'sora-2';
/** 16:9 at 720p, 4 s: $1.00 (100 credits) on the cheap provider, $2.00 (200 credits) on the dear one. */
const BODY = { model: MODEL, prompt: 'a lighthouse in a storm', aspect_ratio: '16:9', duration: 4 } as const;
const CHEAP_USD_S = 0.25;
const DEAR_USD_S = 0.5;
const CHEAP_USD = 1;
const DEAR_USD = 2;
const CHEAP_CREDITS = 100;
const DEAR_CREDITS = 200;

const JOB_MS = 150;
/** Generous, so that a loaded machine never turns a good call into a timeout; hang tests set a short one. */
const PROVIDER_TIMEOUT_MS = 10_000;
/**
 * The cheap provider's timeout where it hangs: long enough that on a busy machine every send reaches the fake
 * before the client gives up (the sends are counted there), short enough for a test.
 */
const HANG_TIMEOUT_MS = 1500;
const COOLDOWN_MS = 500;
const UPSTREAM_ID: Record<Kind, RegExp> = { openai: /^video_\d{6}$/, tasks: /^task-unified-\d+-[0-9a-f]{8}$/ };
/** Each fake renders real MP4s of the requested shape in its own pattern, so the stored video tells which provider produced it. */
const MP4: Record<Kind, (shape: VideoShape) => Promise<Buffer>> = { openai: mp4Renderer('testsrc2'), tasks: mp4Renderer('smptebars') };
/** The shape of BODY. */
const SHAPE: VideoShape = { size: '1280x720', seconds: 4 };

beforeAll(async () => {
  await Promise.all(KINDS.map((k) => MP4[k](SHAPE)));
  // Warm up this process's HTTP client (the gateway runs in it), so that the first upstream call of a run is not
  // slower than the short timeouts some tests use.
  const warm = await startFakeOpenAI();
  try {
    const form = new FormData();
    for (const [k, v] of Object.entries({ prompt: 'warm-up', model: MODEL, seconds: '4', size: '1280x720' })) form.append(k, v);
    const headers = { Authorization: `Bearer ${warm.apiKey}` };
    const created = (await (await fetch(`${warm.url}/v1/videos`, { method: 'POST', body: form, headers })).json()) as { id: string };
    await (await fetch(`${warm.url}/v1/videos/${created.id}`, { headers })).json();
  } finally {
    await warm.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The rig: two fakes and a gateway routing between them, all closed when the test finishes.

interface RigOptions {
  /** Which fake is the cheap provider (the other is the dear one). Default openai. */
  cheap?: Kind;
  /** Job durations of each fake (default JOB_MS). */
  jobMs?: Partial<Record<Kind, number>>;
  maxConcurrent?: Partial<Record<Kind, number>>;
  /** timeout_ms of the cheap provider (default PROVIDER_TIMEOUT_MS). */
  cheapTimeoutMs?: number;
  breaker?: Record<string, number>;
  workers?: Record<string, number>;
  waitForProviderMs?: number;
  /** routing.health_check.enabled (default true). */
  healthChecks?: boolean;
  /** More offers for the dear provider, besides sora-2. */
  dearExtraModels?: object[];
  /** Providers put in front of the two (e.g. one whose key is missing). */
  extraProviders?: object[];
}

interface Rig {
  h: Harness;
  openai: FakeOpenAI;
  tasks: FakeTasksApi;
  cheap: Kind;
  dear: Kind;
}

/** Closes what a test started when it finishes: fakes first, so that a step hanging on one ends at once. */
function cleanup(ctx: TestContext) {
  const fakes: (() => Promise<void>)[] = [];
  const gateways: (() => Promise<void>)[] = [];
  ctx.onTestFinished(async () => {
    for (const close of [...fakes, ...gateways]) await close().catch(() => undefined);
  });
  return { fake: (close: () => Promise<void>) => fakes.push(close), gateway: (close: () => Promise<void>) => gateways.push(close) };
}

async function rig(ctx: TestContext, options: RigOptions = {}): Promise<Rig> {
  const cheap = options.cheap ?? 'openai';
  const dear = other(cheap);
  const closing = cleanup(ctx);
  const openai = await startFakeOpenAI({ mp4: MP4.openai, jobDurationMs: options.jobMs?.openai ?? JOB_MS });
  closing.fake(() => openai.close());
  const tasks = await startFakeTasksApi({ mp4: MP4.tasks, durationMs: options.jobMs?.tasks ?? JOB_MS });
  closing.fake(() => tasks.close());

  const price = (k: Kind) => (k === cheap ? CHEAP_USD_S : DEAR_USD_S);
  const extra = (k: Kind) => (k === dear ? (options.dearExtraModels ?? []) : []);
  const timeout = (k: Kind) => (k === cheap ? (options.cheapTimeoutMs ?? PROVIDER_TIMEOUT_MS) : PROVIDER_TIMEOUT_MS);
  const limit = (k: Kind) => (options.maxConcurrent?.[k] === undefined ? {} : { max_concurrent: options.maxConcurrent[k] });
  const h = await startTestGateway(
    {
      server: { drain_timeout_ms: 2000 },
      workers: {
        poll_interval_ms: 50,
        retry_backoff_ms: 50,
        lease_ms: 5000,
        max_attempts: 3,
        upstream_timeout_ms: PROVIDER_TIMEOUT_MS,
        upstream_deadline_ms: 8000,
        download_timeout_ms: PROVIDER_TIMEOUT_MS,
        lost_answer_grace_ms: 1000,
        ...options.workers,
      },
      routing: {
        wait_for_provider_ms: options.waitForProviderMs ?? 5000,
        health_check: { enabled: options.healthChecks ?? true },
        breaker: { consecutive_failures: 1, error_ratio: 0.5, window_ms: 60_000, min_calls: 10, cooldown_ms: COOLDOWN_MS, max_cooldown_ms: 8000, ...options.breaker },
      },
      providers: [
        ...(options.extraProviders ?? []),
        {
          id: 'openai',
          kind: 'openai',
          base_url: openai.url,
          api_key_env: 'FAKE_OPENAI_KEY',
          timeout_ms: timeout('openai'),
          ...limit('openai'),
          models: [{ model: MODEL, usd_per_second: { standard: price('openai') } }, ...extra('openai')],
        },
        {
          id: 'tasks',
          kind: 'tasks-api',
          base_url: tasks.url,
          api_key_env: 'FAKE_TASKS_KEY',
          timeout_ms: timeout('tasks'),
          ...limit('tasks'),
          models: [{ model: MODEL, usd_per_second: { standard: price('tasks') } }, ...extra('tasks')],
        },
      ],
    },
    { env: { FAKE_OPENAI_KEY: openai.apiKey, FAKE_TASKS_KEY: tasks.apiKey } },
  );
  closing.gateway(() => h.close());
  return { h, openai, tasks, cheap, dear };
}

// ---------------------------------------------------------------------------------------------------------------
// Through the public API.

async function submit(h: Harness, body: object = BODY): Promise<Task> {
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as Task;
}

async function getTask(h: Harness, id: string): Promise<Task> {
  const res = await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A));
  expect(res.status).toBe(200);
  return res.body as Task;
}

async function settled(h: Harness, id: string, timeoutMs = 15_000): Promise<Task> {
  return waitFor(async () => {
    const t = await getTask(h, id);
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, timeoutMs);
}

async function providers(h: Harness): Promise<Record<string, ProviderStatus>> {
  const res = await h.http.get('/v1/providers').set(auth(KEY_A));
  expect(res.status).toBe(200);
  return Object.fromEntries((res.body.data as ProviderStatus[]).map((p) => [p.id, p]));
}

async function health(h: Harness, provider: string, model = MODEL): Promise<BreakerStatus> {
  const p = (await providers(h))[provider];
  const m = p?.models.find((x) => x.model === model);
  if (!m) throw new Error(`no ${model} on provider ${provider} in GET /v1/providers`);
  return m.health;
}

async function estimate(h: Harness, body: object = BODY): Promise<Estimate> {
  const res = await h.http.post('/v1/estimates').set(auth(KEY_A)).send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Estimate;
}

/** The stored MP4 as served by /content, checked by ffprobe. */
async function video(h: Harness, id: string): Promise<{ bytes: Buffer; facts: VideoFacts }> {
  const res = await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)).responseType('blob');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('video/mp4');
  const bytes = res.body as Buffer;
  const file = path.join(h.dir, `${id}.download.mp4`);
  fs.writeFileSync(file, bytes);
  return { bytes, facts: probeVideo(file) };
}

/** The task completed with the video of `kind`'s fake, byte for byte, served and stored. */
async function expectVideoFrom(h: Harness, id: string, kind: Kind): Promise<void> {
  const { bytes, facts } = await video(h, id);
  const expected = await MP4[kind](SHAPE);
  expect(facts).toMatchObject({ codec: 'h264', width: 1280, height: 720, duration_s: 4 });
  expect(bytes.equals(expected)).toBe(true);
  // The stored file is the whole video, and the only one for this task: no partial file left behind.
  const stored = fs.readdirSync(h.config.assets.dir).filter((f) => f.startsWith(id));
  expect(stored, 'files in the asset store').toEqual([`${id}.mp4`]);
  expect(fs.readFileSync(path.join(h.config.assets.dir, `${id}.mp4`)).equals(expected)).toBe(true);
}

/** Creates (submissions) each fake received. */
function creates(r: Rig, kind: Kind): number {
  return kind === 'openai'
    ? r.openai.requestsTo('create').length
    : r.tasks.requests.filter((q) => q.method === 'POST' && q.path === '/v1/videos/generations').length;
}

/** Downloads of the video bytes each fake served (or was asked for). */
function downloads(r: Rig, kind: Kind): number {
  return kind === 'openai' ? r.openai.requestsTo('content').length : r.tasks.requests.filter((q) => q.path.startsWith('/files/')).length;
}

/** The upstream job exists on the fake (the completed attempt's id is a real job there). */
function knowsJob(r: Rig, kind: Kind, upstreamId: string): boolean {
  return kind === 'openai' ? r.openai.jobs.has(upstreamId) : r.tasks.tasks.has(upstreamId);
}

const price = (k: Kind, r: Rig) => (k === r.cheap ? CHEAP_USD : DEAR_USD);

/** A retried attempt. Its error text is the public one: the provider's own words about itself are not shown. */
function retried(r: Rig, provider: Kind, code: string | undefined, submitted: boolean) {
  return {
    provider,
    upstream_id: submitted ? expect.stringMatching(UPSTREAM_ID[provider]) : null,
    started_at: expect.any(Number),
    ended_at: expect.any(Number),
    outcome: 'retried',
    price_usd: price(provider, r),
    error:
      code === undefined
        ? { code: expect.any(String), message: expect.stringMatching(new RegExp(`^${provider} failed on its side \\(`)) }
        : { code, message: `${provider} failed on its side (${code})` },
  };
}

function completed(r: Rig, provider: Kind) {
  return {
    provider,
    upstream_id: expect.stringMatching(UPSTREAM_ID[provider]),
    started_at: expect.any(Number),
    ended_at: expect.any(Number),
    outcome: 'completed',
    price_usd: price(provider, r),
  };
}

/** Attempts follow one another: each ended before the next started. */
function expectSequential(t: Task): void {
  for (let i = 1; i < t.attempts.length; i++) expect(t.attempts[i]!.started_at).toBeGreaterThanOrEqual(t.attempts[i - 1]!.ended_at!);
  for (const a of t.attempts) if (a.ended_at !== null) expect(a.ended_at).toBeGreaterThanOrEqual(a.started_at);
}

/**
 * A breaker opened by this one failure (consecutive_failures 1 in the rig), for the cool-down. Once the cool-down is
 * over (or an active check passed after a submit-side failure) it reads half_open, its probe free: never a stale open.
 */
function expectOpenedBy(h: BreakerStatus, code: string, calls: number, errorRate: number, cooldownMs = COOLDOWN_MS): void {
  expect(h).toMatchObject({ calls, error_rate: errorRate });
  expect(h.reason).toBe(`1 consecutive failures, last: ${code}`);
  expectOutFor(h, cooldownMs);
}

/** Open for `ms` from its opening, or (read after that) half_open with no `until`. */
function expectOutFor(h: BreakerStatus, ms: number): void {
  if (h.state === 'open') expect(h.until! - h.since).toBe(ms);
  else expect(h).toMatchObject({ state: 'half_open', until: null });
}

/** A breaker that saw only successes. */
function expectHealthy(h: BreakerStatus): void {
  expect(h).toMatchObject({ state: 'closed', reason: null, until: null, error_rate: 0 });
  expect(h.calls).toBeGreaterThanOrEqual(1);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// Upstream behaviours, each with either fake as the cheap provider.

interface Behaviour {
  name: string;
  /** timeout_ms of the cheap provider, when the behaviour needs a short one. */
  cheapTimeoutMs?: number;
  inject: { openai: (f: FakeOpenAI) => void; tasks: (f: FakeTasksApi) => void };
  /** The error code the failed attempt records. */
  code: Record<Kind, string>;
}

/** Failures of the submission itself (no upstream job exists). Every one persists: the cheap fake stays broken. */
const SUBMIT_FAILURES: Behaviour[] = [
  {
    name: '500 on submit',
    inject: { openai: (f) => f.setMode('error_500', { route: 'create' }), tasks: (f) => f.setMode({ kind: 'http_error', status: 500 }, { route: 'create' }) },
    code: { openai: 'server_error', tasks: 'http_500' },
  },
  {
    name: 'hang past the timeout on submit',
    cheapTimeoutMs: HANG_TIMEOUT_MS,
    inject: { openai: (f) => f.setMode('hang', { route: 'create' }), tasks: (f) => f.setMode('hang', { route: 'create' }) },
    code: { openai: 'timeout', tasks: 'timeout' },
  },
  {
    name: 'connection reset on submit',
    inject: { openai: (f) => f.setMode('reset', { route: 'create' }), tasks: (f) => f.setMode('reset', { route: 'create' }) },
    code: { openai: 'network_error', tasks: 'network_error' },
  },
  {
    name: 'malformed JSON on submit',
    inject: { openai: (f) => f.setMode('malformed_json', { route: 'create' }), tasks: (f) => f.setMode('malformed_json', { route: 'create' }) },
    code: { openai: 'malformed_response', tasks: 'malformed_response' },
  },
];

/** Failures after a successful submission (an upstream job exists and is abandoned). */
const JOB_FAILURES: (Behaviour & { jobMs?: number; workers?: Record<string, number>; minAttemptMs?: number })[] = [
  {
    name: 'upstream job fails with a retryable code',
    inject: {
      openai: (f) => f.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve' }),
      tasks: (f) => f.setMode({ kind: 'fail_task', code: 'service_error' }, { route: 'task' }),
    },
    code: { openai: 'internal_error', tasks: 'service_error' },
  },
  {
    name: 'upstream loses the job (404)',
    inject: { openai: (f) => f.setMode({ kind: 'lose_job' }, { route: 'retrieve' }), tasks: (f) => f.setMode('lose_task', { route: 'task' }) },
    code: { openai: 'resource_not_found', tasks: 'resource_not_found' },
  },
  {
    name: 'the video link has expired (410)',
    inject: { openai: (f) => f.setMode({ kind: 'expired_mp4', status: 410 }, { route: 'content' }), tasks: (f) => f.setMode('expired', { route: 'file' }) },
    code: { openai: 'result_expired', tasks: 'result_expired' },
  },
  {
    name: 'upstream silent past the deadline',
    inject: { openai: () => undefined, tasks: () => undefined },
    code: { openai: 'generation_timeout', tasks: 'generation_timeout' },
    jobMs: 60_000, // the cheap job never finishes within the test
    workers: { upstream_deadline_ms: 1000 },
    minAttemptMs: 1000,
  },
];

// Sequential on purpose: every gateway and fake shares this process's event loop, and a gateway compiling its
// request validators stalls the others, which turns the short timeouts here into false failures.
describe.each(KINDS)('the %s fake as the cheap provider', (cheapKind) => {
  it.for(SUBMIT_FAILURES)('$name: fails over to the dearer provider and completes there', async (b, ctx) => {
    const r = await rig(ctx, { cheap: cheapKind, cheapTimeoutMs: b.cheapTimeoutMs });
    b.inject[r.cheap](r[r.cheap] as never);
    const code = b.code[r.cheap];

    const task = await submit(r.h);
    expect(task.usage.credits_reserved).toBe(CHEAP_CREDITS);
    const done = await settled(r.h, task.id);

    expect(done).toMatchObject({ status: 'completed', provider: r.dear });
    expect(done.error).toBeUndefined();
    expect(done.attempts).toEqual([retried(r, r.cheap, code, false), completed(r, r.dear)]);
    expectSequential(done);
    if (code === 'timeout') expect(done.attempts[0]!.ended_at! - done.attempts[0]!.started_at).toBeGreaterThanOrEqual(HANG_TIMEOUT_MS - 2);
    expect(knowsJob(r, r.dear, done.attempts[1]!.upstream_id!)).toBe(true);
    // Neither fake honours idempotency keys: a lost answer is never sent again (the OpenAI one's job list is
    // searched instead, and here holds nothing); the dear one created one job.
    expect(creates(r, r.cheap)).toBe(1);
    if (r.cheap === 'openai') {
      expect(r.openai.requestsTo('create').map((q) => q.headers['idempotency-key'])).toEqual([`${task.id}.1`]);
      expect(r.openai.requestsTo('list').length).toBe(['timeout', 'network_error'].includes(code) ? 1 : 0);
    }
    expect(creates(r, r.dear)).toBe(1);
    expect(r.openai.requestsTo('delete')).toEqual([]); // no upstream job to cancel
    await expectVideoFrom(r.h, task.id, r.dear);

    // Opened by the first failure.
    expectOpenedBy(await health(r.h, r.cheap), code, 1, 1);
    expectHealthy(await health(r.h, r.dear));
  });

  it('429 with Retry-After on submit: fails over, and the breaker stays open for the Retry-After, not the shorter cool-down', async (ctx) => {
    // Only the Retry-After may open the breaker here (not the consecutive-failure rule).
    const r = await rig(ctx, { cheap: cheapKind, breaker: { consecutive_failures: 5 } });
    if (r.cheap === 'openai') r.openai.setMode({ kind: 'rate_limited', retryAfterS: 3 }, { route: 'create', times: 1 });
    else r.tasks.setMode({ kind: 'http_error', status: 429, retryAfter: '3' }, { route: 'create', times: 1 });
    const code = r.cheap === 'openai' ? 'rate_limit_exceeded' : 'http_429';

    const before = Date.now();
    const first = await submit(r.h);
    const done = await settled(r.h, first.id);
    expect(done).toMatchObject({ status: 'completed', provider: r.dear });
    expect(done.attempts).toEqual([retried(r, r.cheap, code, false), completed(r, r.dear)]);
    await expectVideoFrom(r.h, first.id, r.dear);

    const h = await health(r.h, r.cheap);
    expect(h).toMatchObject({ state: 'open', calls: 1, error_rate: 1 });
    expect(h.reason).toBe(`asked to retry later: ${code}`);
    expect(h.until! - h.since).toBe(3000); // the Retry-After, not the 500 ms cool-down
    expect(h.until!).toBeGreaterThanOrEqual(before + 3000);

    // Past the cool-down but within the Retry-After, traffic still goes straight to the dear provider,
    // although the cheap one would answer now (the 429 was a single one).
    await sleep(COOLDOWN_MS + 100 - (Date.now() - h.since));
    expect(Date.now()).toBeLessThan(h.until!);
    const second = await submit(r.h);
    const done2 = await settled(r.h, second.id);
    expect(done2).toMatchObject({ status: 'completed', provider: r.dear });
    expect(done2.attempts).toEqual([completed(r, r.dear)]);
    expect(creates(r, r.cheap)).toBe(1);
    expect(await health(r.h, r.cheap)).toMatchObject({ state: 'open', until: h.until, calls: 1 });
  });

  it.for(JOB_FAILURES)('$name: resubmitted to the dearer provider after submission, completes there', async (b, ctx) => {
    const r = await rig(ctx, { cheap: cheapKind, jobMs: b.jobMs === undefined ? {} : { [cheapKind]: b.jobMs }, workers: b.workers });
    b.inject[r.cheap](r[r.cheap] as never);
    const code = b.code[r.cheap];

    const task = await submit(r.h);
    const done = await settled(r.h, task.id);

    expect(done).toMatchObject({ status: 'completed', provider: r.dear });
    expect(done.error).toBeUndefined();
    expect(done.attempts).toEqual([retried(r, r.cheap, code, true), completed(r, r.dear)]);
    expectSequential(done);
    if (b.minAttemptMs) expect(done.attempts[0]!.ended_at! - done.attempts[0]!.started_at).toBeGreaterThanOrEqual(b.minAttemptMs);
    expect(creates(r, r.cheap)).toBe(1);
    expect(creates(r, r.dear)).toBe(1);
    await expectVideoFrom(r.h, task.id, r.dear);
    // The abandoned job is cancelled where the adapter can (the OpenAI shape has DELETE; the task API has none).
    const abandoned = done.attempts[0]!.upstream_id!;
    if (r.cheap === 'openai') expect(r.openai.requestsTo('delete').map((q) => q.path)).toEqual([`/v1/videos/${abandoned}`]);
    else expect(r.openai.requestsTo('delete')).toEqual([]);

    // The submission succeeded, then the job failed: one failed job (an accepted submit is not a success).
    expectOpenedBy(await health(r.h, r.cheap), code, 1, 1);
    expectHealthy(await health(r.h, r.dear));
  });

  it('upstream job fails with a terminal code (content_policy_violation): task failed with that code, not moved, provider health untouched', async (ctx) => {
    const r = await rig(ctx, { cheap: cheapKind });
    if (r.cheap === 'openai') r.openai.setMode({ kind: 'fail_job', code: 'content_policy_violation' }, { route: 'retrieve' });
    else r.tasks.setMode({ kind: 'fail_task', code: 'content_policy_violation' }, { route: 'task' });

    const task = await submit(r.h);
    const done = await settled(r.h, task.id);

    // The provider's own words about the request are passed on (they help the client); about itself, they are not.
    const reason = { code: 'content_policy_violation', message: expect.stringContaining('content_policy_violation') };
    expect(done).toMatchObject({ status: 'failed', provider: r.cheap, error: reason });
    expect(done.results).toBeUndefined();
    expect(done.attempts).toEqual([
      {
        provider: r.cheap,
        upstream_id: expect.stringMatching(UPSTREAM_ID[r.cheap]),
        started_at: expect.any(Number),
        ended_at: expect.any(Number),
        outcome: 'failed',
        price_usd: CHEAP_USD,
        error: reason,
      },
    ]);
    expect(creates(r, r.cheap)).toBe(1);
    expect(creates(r, r.dear)).toBe(0); // not moved
    const content = await r.h.http.get(`/v1/tasks/${task.id}/content`).set(auth(KEY_A));
    expect(content.status).toBe(409);

    // The request was at fault, not the provider: with consecutive_failures 1, one blamed failure would open it.
    expect(await health(r.h, r.cheap)).toMatchObject({ state: 'closed', reason: null, until: null, calls: 0, error_rate: 0 });
    const dear = await health(r.h, r.dear);
    expect(dear).toMatchObject({ state: 'closed', calls: 0, error_rate: 0 });
  });

  it('truncated MP4, then a good one: retried on the same provider, completes with the full video; nothing truncated stored', async (ctx) => {
    const r = await rig(ctx, { cheap: cheapKind, breaker: { consecutive_failures: 3 } });
    if (r.cheap === 'openai') r.openai.setMode({ kind: 'truncated_mp4' }, { route: 'content', times: 2 });
    else r.tasks.setMode('truncate', { route: 'file', times: 2 });

    const task = await submit(r.h);
    const done = await settled(r.h, task.id);

    expect(done).toMatchObject({ status: 'completed', provider: r.cheap });
    expect(done.attempts).toEqual([completed(r, r.cheap)]);
    expect(downloads(r, r.cheap)).toBe(3);
    expect(creates(r, r.dear)).toBe(0);
    await expectVideoFrom(r.h, task.id, r.cheap);

    // Two failed downloads, then a good one: one completed job, which is what health counts.
    expect(await health(r.h, r.cheap)).toMatchObject({ state: 'closed', reason: null, calls: 1, error_rate: 0 });
  });

  it('truncated MP4 every time: after the download retries, generated again on the dearer provider; nothing truncated stored', async (ctx) => {
    const r = await rig(ctx, { cheap: cheapKind, breaker: { consecutive_failures: 3 } });
    if (r.cheap === 'openai') r.openai.setMode({ kind: 'truncated_mp4' }, { route: 'content' });
    else r.tasks.setMode('truncate', { route: 'file' });

    const task = await submit(r.h);
    const done = await settled(r.h, task.id);

    expect(done).toMatchObject({ status: 'completed', provider: r.dear });
    expect(done.attempts).toEqual([retried(r, r.cheap, undefined, true), completed(r, r.dear)]);
    expect(downloads(r, r.cheap)).toBe(3);
    expect(creates(r, r.dear)).toBe(1);
    await expectVideoFrom(r.h, task.id, r.dear);

    // The attempt ended once, as one failed job (its three downloads are one outcome): not yet 3 in a row.
    expect(await health(r.h, r.cheap)).toMatchObject({ state: 'closed', calls: 1, error_rate: 1 });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('circuit breaker lifecycle', () => {
  it('opens after N consecutive failures, a failed probe reopens it for twice as long, a good probe closes it and traffic returns', async (ctx) => {
    const cooldown = 600;
    // Without active checks: this is the breaker's own cycle (a passing check would end the submit-side outage early).
    const r = await rig(ctx, { breaker: { consecutive_failures: 2, cooldown_ms: cooldown }, cheapTimeoutMs: HANG_TIMEOUT_MS, healthChecks: false });
    r.openai.setMode('error_500', { route: 'create', times: 2 });

    // First failure: the breaker notes it but stays closed.
    const t1 = await settled(r.h, (await submit(r.h)).id);
    expect(t1).toMatchObject({ status: 'completed', provider: 'tasks' });
    expect(t1.attempts).toEqual([retried(r, 'openai', 'server_error', false), completed(r, 'tasks')]);
    expect(await health(r.h, 'openai')).toMatchObject({ state: 'closed', reason: null, calls: 1, error_rate: 1 });

    // Second failure in a row: open.
    const t2 = await submit(r.h);
    const opened = await waitFor(async () => {
      const h = await health(r.h, 'openai');
      return h.state === 'open' ? h : undefined;
    });
    expect(opened.reason).toBe('2 consecutive failures, last: server_error');
    expect(opened).toMatchObject({ calls: 2, error_rate: 1 });
    expect(opened.until! - opened.since).toBe(cooldown);

    // While open, no traffic reaches it: a new task goes straight to the dear provider.
    const t3 = await submit(r.h);
    expect((await settled(r.h, t2.id)).attempts).toEqual([retried(r, 'openai', 'server_error', false), completed(r, 'tasks')]);
    const done3 = await settled(r.h, t3.id);
    expect(done3.attempts).toEqual([completed(r, 'tasks')]);
    expect(done3.attempts[0]!.started_at).toBeLessThan(opened.until!); // placed within the cool-down
    expect(creates(r, 'openai')).toBe(2);

    // After the cool-down, one probe goes through; it hangs: half_open while it is under way, then open again,
    // with the cool-down doubled. (Its lost answer is not sent again: the fake honours no key; its job list is searched.)
    r.openai.setMode('hang', { route: 'create', times: 1 });
    await sleep(Math.max(0, opened.until! - Date.now() + 20));
    expect(await health(r.h, 'openai')).toMatchObject({ state: 'half_open', until: null }); // its probe may go
    const t4 = await submit(r.h);
    await waitFor(async () => ((await health(r.h, 'openai')).state === 'half_open' ? true : undefined), 5000, 20);
    const reopened = await waitFor(async () => {
      const h = await health(r.h, 'openai');
      return h.state === 'open' ? h : undefined;
    });
    expect(reopened.reason).toBe('probe failed: timeout');
    expect(reopened.until! - reopened.since).toBe(2 * cooldown);
    const done4 = await settled(r.h, t4.id);
    expect(done4).toMatchObject({ status: 'completed', provider: 'tasks' });
    expect(done4.attempts).toEqual([retried(r, 'openai', 'timeout', false), completed(r, 'tasks')]);
    expect(creates(r, 'openai')).toBe(3);
    // Still the reopened breaker (read half_open once its until has passed).
    const after4 = await health(r.h, 'openai');
    if (after4.state === 'open') expect(after4).toMatchObject({ since: reopened.since, until: reopened.until });
    else expect(after4).toMatchObject({ state: 'half_open', since: reopened.until, until: null });

    // After the doubled cool-down, the next probe succeeds: closed, and the task is served by the cheap provider.
    await sleep(Math.max(0, reopened.until! - Date.now() + 20));
    const t5 = await submit(r.h);
    const closed = await waitFor(async () => {
      const h = await health(r.h, 'openai');
      return h.state === 'closed' ? h : undefined;
    });
    expect(closed).toMatchObject({ reason: null, until: null });
    expect(closed.since).toBeGreaterThanOrEqual(reopened.until!);
    const done5 = await settled(r.h, t5.id);
    expect(done5).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(done5.attempts).toEqual([completed(r, 'openai')]);
    await expectVideoFrom(r.h, t5.id, 'openai');
    // And the next one too, without a probe.
    const done6 = await settled(r.h, (await submit(r.h)).id);
    expect(done6.attempts).toEqual([completed(r, 'openai')]);
    expect(creates(r, 'tasks')).toBe(4);
  });
});

describe('no provider available', () => {
  it('every provider failing: the task waits up to wait_for_provider_ms, then fails with no_provider_available', async (ctx) => {
    const waitMs = 1000;
    // Both answer 429 with a long Retry-After: both breakers open, for longer than the wait.
    const r = await rig(ctx, { waitForProviderMs: waitMs, breaker: { consecutive_failures: 5 } });
    r.openai.setMode({ kind: 'rate_limited', retryAfterS: 30 }, { route: 'create' });
    r.tasks.setMode({ kind: 'http_error', status: 429, retryAfter: '30' }, { route: 'create' });

    const start = Date.now();
    const first = await submit(r.h);
    await waitFor(async () => ((await getTask(r.h, first.id)).attempts[1]?.outcome === 'retried' ? true : undefined));
    for (const p of KINDS) expect(await health(r.h, p)).toMatchObject({ state: 'open', reason: expect.stringMatching(/^asked to retry later: /) });
    // The estimate says so too.
    const est = await estimate(r.h);
    expect(est).toMatchObject({ provider: null, usd: null, credits: null });
    expect(est.options.map((o) => [o.provider, o.available])).toEqual([['openai', false], ['tasks', false]]);

    // A task arriving while every breaker is open is never submitted, and fails after the wait too.
    const start2 = Date.now();
    const second = await submit(r.h);

    const done = await settled(r.h, first.id);
    const waited = Date.now() - start;
    expect(done).toMatchObject({ status: 'failed', error: { code: 'no_provider_available', message: expect.any(String) } });
    expect(done.attempts).toEqual([retried(r, 'openai', 'rate_limit_exceeded', false), retried(r, 'tasks', 'http_429', false)]);
    expect(waited).toBeGreaterThanOrEqual(waitMs);
    expect(waited).toBeLessThan(waitMs + 3000);

    const done2 = await settled(r.h, second.id);
    expect(Date.now() - start2).toBeGreaterThanOrEqual(waitMs);
    expect(done2).toMatchObject({ status: 'failed', provider: null, attempts: [], error: { code: 'no_provider_available' } });
    expect(creates(r, 'openai')).toBe(1);
    expect(creates(r, 'tasks')).toBe(1);
  });

  it('a provider recovering within the wait: the task completes there instead', async (ctx) => {
    const r = await rig(ctx, { waitForProviderMs: 8000, breaker: { consecutive_failures: 5 } });
    r.openai.setMode({ kind: 'rate_limited', retryAfterS: 1 }, { route: 'create', times: 1 });
    r.tasks.setMode({ kind: 'http_error', status: 429, retryAfter: '3' }, { route: 'create', times: 1 });

    const task = await submit(r.h);
    // Both failed; the task waits for a provider.
    await waitFor(async () => ((await getTask(r.h, task.id)).attempts[1]?.outcome === 'retried' ? true : undefined));
    const waiting = await getTask(r.h, task.id);
    expect(waiting.status).toBe('pending');
    expect(waiting.attempts).toEqual([retried(r, 'openai', 'rate_limit_exceeded', false), retried(r, 'tasks', 'http_429', false)]);
    expect((await estimate(r.h)).provider).toBeNull();

    // openai's Retry-After (1 s) ends first: its probe succeeds and the task completes there.
    const done = await settled(r.h, task.id);
    expect(done).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(done.attempts).toEqual([retried(r, 'openai', 'rate_limit_exceeded', false), retried(r, 'tasks', 'http_429', false), completed(r, 'openai')]);
    expect(done.attempts[2]!.started_at - done.attempts[0]!.ended_at!).toBeGreaterThanOrEqual(1000 - 5);
    await expectVideoFrom(r.h, task.id, 'openai');
    // One failed submit, one completed job.
    expect(await health(r.h, 'openai')).toMatchObject({ state: 'closed', reason: null, calls: 2, error_rate: 1 / 2 });
    const tasksHealth = await health(r.h, 'tasks');
    expect(tasksHealth).toMatchObject({ calls: 1, error_rate: 1, reason: 'asked to retry later: http_429' });
    expectOutFor(tasksHealth, 3000);
  });
});

describe('configuration and load', () => {
  it('a provider whose key variable is missing is listed as disabled, with the variable named, and gets no traffic', async (ctx) => {
    const ghost = await startFakeOpenAI({ mp4: MP4.openai, jobDurationMs: JOB_MS });
    cleanup(ctx).fake(() => ghost.close());
    const r = await rig(ctx, {
      extraProviders: [
        // The cheapest of all, if it were enabled.
        { id: 'ghost', kind: 'openai', base_url: ghost.url, api_key_env: 'VIDGATE_TEST_GHOST_KEY', models: [{ model: MODEL, usd_per_second: { standard: 0.05 } }] },
      ],
    });

    const list = await providers(r.h);
    expect(list.ghost).toEqual({
      id: 'ghost',
      kind: 'openai',
      enabled: false,
      disabled_reason: expect.stringContaining('VIDGATE_TEST_GHOST_KEY'),
      max_concurrent: null,
      active_tasks: 0,
      models: [],
    });
    expect(list.ghost!.disabled_reason).toBe('environment variable VIDGATE_TEST_GHOST_KEY is not set');
    expect(list.openai).toMatchObject({ enabled: true, disabled_reason: null });
    expect(list.tasks).toMatchObject({ enabled: true, disabled_reason: null });

    // Not in the catalog, the estimate or the routing.
    const models = await r.h.http.get('/v1/models').set(auth(KEY_A));
    const sora = (models.body.data as Model[]).find((m) => m.id === MODEL)!;
    expect(sora.providers).toEqual(['openai', 'tasks']);
    expect(sora.price_usd_per_second['720p']).toEqual({ min: CHEAP_USD_S, max: DEAR_USD_S });
    expect((await estimate(r.h)).options.map((o) => o.provider)).toEqual(['openai', 'tasks']);

    const task = await submit(r.h);
    expect(task.usage.credits_reserved).toBe(CHEAP_CREDITS);
    const done = await settled(r.h, task.id);
    expect(done).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(done.attempts).toEqual([completed(r, 'openai')]);
    expect(ghost.requests).toEqual([]);
  });

  it('max_concurrent 1 on the cheap provider: a task arriving while it is full goes to the dearer provider', async (ctx) => {
    const r = await rig(ctx, { maxConcurrent: { openai: 1 }, jobMs: { openai: 600, tasks: 600 } });
    const a = await submit(r.h);
    await waitFor(async () => ((await getTask(r.h, a.id)).status === 'processing' ? true : undefined));
    const b = await submit(r.h);
    await waitFor(async () => ((await getTask(r.h, b.id)).status === 'processing' ? true : undefined));
    expect((await getTask(r.h, a.id)).status).toBe('processing'); // a still running when b was placed

    const list = await providers(r.h);
    expect(list.openai).toMatchObject({ max_concurrent: 1, active_tasks: 1 });
    expect(list.tasks).toMatchObject({ max_concurrent: null, active_tasks: 1 });

    const [doneA, doneB] = await Promise.all([settled(r.h, a.id), settled(r.h, b.id)]);
    expect(doneA).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(doneA.attempts).toEqual([completed(r, 'openai')]);
    expect(doneB).toMatchObject({ status: 'completed', provider: 'tasks' });
    expect(doneB.attempts).toEqual([completed(r, 'tasks')]); // placed there, not failed over
    await expectVideoFrom(r.h, b.id, 'tasks');
    expect(creates(r, 'openai')).toBe(1);
    expect(creates(r, 'tasks')).toBe(1);
    const after = await providers(r.h);
    expect([after.openai!.active_tasks, after.tasks!.active_tasks]).toEqual([0, 0]);
  });

  // Both tasks are claimed in one dispatcher batch; the limit holds because the store checks it when the attempt
  // starts (before 3c1587e each read the load first and both went to the cheap provider).
  it('max_concurrent 1 on the cheap provider: of two simultaneous tasks, one goes to the dearer provider', async (ctx) => {
    const r = await rig(ctx, { maxConcurrent: { openai: 1 }, jobMs: { openai: 600, tasks: 600 } });
    const [a, b] = await Promise.all([submit(r.h), submit(r.h)]);
    await waitFor(async () => {
      const [ta, tb] = await Promise.all([getTask(r.h, a!.id), getTask(r.h, b!.id)]);
      return ta.status === 'processing' && tb.status === 'processing' ? true : undefined;
    });
    const list = await providers(r.h);
    expect(list.openai).toMatchObject({ max_concurrent: 1, active_tasks: 1 });
    expect(list.tasks).toMatchObject({ active_tasks: 1 });
    const done = await Promise.all([settled(r.h, a!.id), settled(r.h, b!.id)]);
    expect(done.map((t) => t.provider).sort()).toEqual(['openai', 'tasks']);
    for (const t of done) expect(t.attempts).toEqual([completed(r, t.provider as Kind)]);
  });

  it('never billed twice, never a second result: the abandoned job is cancelled upstream, one completed attempt, one settlement', async (ctx) => {
    // The cheap job never finishes; past the deadline the task moves to the dear provider.
    const r = await rig(ctx, { jobMs: { openai: 60_000 }, workers: { upstream_deadline_ms: 1000 } });
    const task = await submit(r.h);
    expect(task.usage.credits_reserved).toBe(CHEAP_CREDITS);

    const running = await waitFor(async () => {
      const t = await getTask(r.h, task.id);
      return t.status === 'processing' && t.provider === 'openai' ? t : undefined;
    });
    const abandoned = running.attempts[0]!.upstream_id!;
    expect(r.openai.jobs.has(abandoned)).toBe(true);
    expect(running.usage.credits_reserved).toBe(CHEAP_CREDITS);

    const done = await settled(r.h, task.id);
    expect(done).toMatchObject({ status: 'completed', provider: 'tasks' });
    // The failover grew the reservation to the dearer quote (README, "The ledger"), never to the sum of both.
    expect(done.usage.credits_reserved).toBe(DEAR_CREDITS);
    expect(done.attempts).toEqual([
      { ...retried(r, 'openai', 'generation_timeout', true), upstream_id: abandoned },
      completed(r, 'tasks'),
    ]);
    expect(done.attempts.filter((a) => a.outcome === 'completed')).toHaveLength(1);

    // The abandoned job was deleted upstream, so it can neither bill nor deliver; its video was never fetched.
    expect(r.openai.requestsTo('delete').map((q) => q.path)).toEqual([`/v1/videos/${abandoned}`]);
    expect(r.openai.jobs.has(abandoned)).toBe(false);
    expect(r.openai.requestsTo('content')).toEqual([]);
    expect(creates(r, 'openai')).toBe(1);
    expect(creates(r, 'tasks')).toBe(1);
    await expectVideoFrom(r.h, task.id, 'tasks');

    // Settled once, at the price of the provider that served it; nothing for the abandoned job; nothing left reserved.
    const usage = await r.h.http.get('/v1/usage').set(auth(KEY_A));
    expect(usage.status).toBe(200);
    expect(usage.body.totals).toEqual({ credits: DEAR_CREDITS, usd: DEAR_USD, tasks: 1 });
    expect(usage.body.spend).toEqual([{ day: expect.any(String), model: MODEL, provider: 'tasks', tasks: 1, credits: DEAR_CREDITS, usd: DEAR_USD }]);
    expect(usage.body.open_reservations).toEqual([]);

    // Nothing more happens to it afterwards: no more calls to the cheap provider, the task unchanged.
    // (The active health checks of its open breaker are no calls about the task.)
    const aboutTasks = () => r.openai.requests.filter((q) => !q.path.endsWith('/vidgate-health-check')).length;
    const callsToOpenAI = aboutTasks();
    await sleep(300);
    expect(aboutTasks()).toBe(callsToOpenAI);
    const later = await getTask(r.h, task.id);
    expect({ status: later.status, provider: later.provider, attempts: later.attempts, usage: later.usage }).toEqual({
      status: done.status,
      provider: done.provider,
      attempts: done.attempts,
      usage: done.usage,
    });
  });
});

describe('abandoned jobs and waiting, at the edges', () => {
  // Before 3c1587e the job of a last attempt was never cancelled and kept running (and billing) upstream.
  it('the last attempt silent past the deadline: the task fails with generation_timeout and its still-running job is cancelled upstream', async (ctx) => {
    const r = await rig(ctx, { jobMs: { openai: 60_000 }, workers: { max_attempts: 1, upstream_deadline_ms: 600 } });
    const task = await submit(r.h);
    const done = await settled(r.h, task.id);
    const reason = { code: 'generation_timeout', message: 'openai failed on its side (generation_timeout)' };
    expect(done).toMatchObject({ status: 'failed', provider: 'openai', error: reason });
    const upstreamId = done.attempts[0]!.upstream_id!;
    expect(done.attempts).toEqual([
      {
        provider: 'openai',
        upstream_id: expect.stringMatching(UPSTREAM_ID.openai),
        started_at: expect.any(Number),
        ended_at: expect.any(Number),
        outcome: 'failed',
        price_usd: CHEAP_USD,
        error: reason,
      },
    ]);
    expect(creates(r, 'tasks')).toBe(0);
    // Nobody wants that job any more, but it would still bill and deliver upstream unless cancelled.
    await waitFor(async () => (r.openai.requestsTo('delete').length > 0 ? true : undefined), 1000).catch(() => undefined);
    expect(r.openai.requestsTo('delete').map((q) => q.path)).toEqual([`/v1/videos/${upstreamId}`]);
  });

  // Before 3c1587e the wait counted from the task's creation: such a task failed at once, without waiting at all.
  it('a task that ran longer than wait_for_provider_ms still waits for a provider after a failover, instead of failing at once', async (ctx) => {
    const waitMs = 1000;
    const r = await rig(ctx, { waitForProviderMs: waitMs, jobMs: { openai: 60_000 } });
    // Open the dear provider's breaker for long (30 s Retry-After), through a first task that we then cancel.
    r.openai.setMode('error_500', { route: 'create', times: 1 });
    r.tasks.setMode({ kind: 'http_error', status: 429, retryAfter: '30' }, { route: 'create' });
    const first = await submit(r.h);
    await waitFor(async () => ((await getTask(r.h, first.id)).attempts[1]?.outcome === 'retried' ? true : undefined));
    expect((await r.h.http.post(`/v1/tasks/${first.id}/cancel`).set(auth(KEY_A))).status).toBe(200);
    expect(await health(r.h, 'tasks')).toMatchObject({ state: 'open' });

    // A second task runs on the cheap provider (after its cool-down) for longer than wait_for_provider_ms ...
    const cheapOpen = await health(r.h, 'openai');
    await sleep(Math.max(0, cheapOpen.until! - Date.now() + 20));
    const submittedAt = Date.now();
    const task = await submit(r.h);
    const running = await waitFor(async () => {
      const t = await getTask(r.h, task.id);
      return t.status === 'processing' ? t : undefined;
    });
    expect(running.provider).toBe('openai');
    await sleep(submittedAt + waitMs + 200 - Date.now());
    // ... then its job fails (provider-side). The cheap breaker opens for COOLDOWN_MS (< waitMs), the dear one is
    // open for 30 s: the task should wait, and be resubmitted to the cheap provider once its cool-down is over.
    r.openai.failJob(running.attempts[0]!.upstream_id!, 'internal_error');
    const next = await waitFor(async () => {
      const t = await getTask(r.h, task.id);
      return t.status === 'failed' || (t.attempts.length >= 2 && t.status === 'processing') ? t : undefined;
    }, 5000);
    expect(next.error).toBeUndefined();
    expect(next.attempts).toEqual([
      retried(r, 'openai', 'internal_error', true),
      { provider: 'openai', upstream_id: expect.stringMatching(UPSTREAM_ID.openai), started_at: expect.any(Number), ended_at: null, outcome: 'running', price_usd: CHEAP_USD },
    ]);
    expect(next.attempts[1]!.started_at - next.attempts[0]!.ended_at!).toBeGreaterThanOrEqual(COOLDOWN_MS - 5);
  });
});

describe('catalog and estimates', () => {
  it('GET /v1/models shows the price range across the providers', async (ctx) => {
    const r = await rig(ctx, { dearExtraModels: [{ model: 'sora-2-pro', usd_per_second: { standard: 0.3, high: 0.5 } }] });
    const res = await r.h.http.get('/v1/models').set(auth(KEY_A));
    expect(res.status).toBe(200);
    expect(res.body.usd_per_credit).toBe(0.01);
    const byId = Object.fromEntries((res.body.data as Model[]).map((m) => [m.id, m]));
    expect(byId[MODEL]).toMatchObject({
      providers: ['openai', 'tasks'],
      qualities: ['720p'],
      price_usd_per_second: { '720p': { min: CHEAP_USD_S, max: DEAR_USD_S } },
    });
    expect(byId[MODEL]!.price_usd_per_second['1080p']).toBeUndefined();
    expect(byId['sora-2-pro']).toMatchObject({
      providers: ['tasks'],
      qualities: ['720p', '1080p'],
      price_usd_per_second: { '720p': { min: 0.3, max: 0.3 }, '1080p': { min: 0.5, max: 0.5 } },
    });
  });

  it('POST /v1/estimates: the cheapest available provider with USD and credits; the next one while its breaker is open', async (ctx) => {
    const r = await rig(ctx, { breaker: { consecutive_failures: 5 } });
    expect(await estimate(r.h)).toEqual({
      object: 'estimate',
      model: MODEL,
      size: '1280x720',
      duration: 4,
      provider: 'openai',
      usd: CHEAP_USD,
      credits: CHEAP_CREDITS,
      options: [
        { provider: 'openai', usd: CHEAP_USD, credits: CHEAP_CREDITS, available: true },
        { provider: 'tasks', usd: DEAR_USD, credits: DEAR_CREDITS, available: true },
      ],
    });
    // 8 s doubles it.
    expect(await estimate(r.h, { ...BODY, duration: 8 })).toMatchObject({ provider: 'openai', usd: 2, credits: 200 });
    expect(creates(r, 'openai') + creates(r, 'tasks')).toBe(0); // nothing submitted

    // Open the cheap breaker (a 429 with Retry-After, through a real task).
    r.openai.setMode({ kind: 'rate_limited', retryAfterS: 5 }, { route: 'create', times: 1 });
    const done = await settled(r.h, (await submit(r.h)).id);
    expect(done.provider).toBe('tasks');
    expect((await health(r.h, 'openai')).state).toBe('open');

    expect(await estimate(r.h)).toMatchObject({
      provider: 'tasks',
      usd: DEAR_USD,
      credits: DEAR_CREDITS,
      options: [
        { provider: 'openai', usd: CHEAP_USD, credits: CHEAP_CREDITS, available: false },
        { provider: 'tasks', usd: DEAR_USD, credits: DEAR_CREDITS, available: true },
      ],
    });
    // A task submitted now reserves what the estimate said, and goes where it said.
    const next = await submit(r.h);
    expect(next.usage.credits_reserved).toBe(DEAR_CREDITS);
    const doneNext = await settled(r.h, next.id);
    expect(doneNext).toMatchObject({ status: 'completed', provider: 'tasks', usage: { credits_reserved: DEAR_CREDITS } });
    expect(doneNext.attempts).toEqual([completed(r, 'tasks')]);
  });
});
