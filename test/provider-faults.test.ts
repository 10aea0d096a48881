// Provider faults that used to cost real money (issue 10, faults 4, 5 and 7), end to end over real HTTP: a real
// gateway routing sora-2 between a cheap and a dear fake upstream. Each test counts the jobs the fakes made, so
// a duplicate or orphaned paid job shows.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { startFakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi } from './support/fake-tasks-api';
import { createGateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { KEY_A, auth, startTestGateway, tempDir, testConfig, waitFor } from './support/gateway';
import { mp4Renderer, type VideoShape } from './support/mp4';

type Task = components['schemas']['Task'];
type BreakerStatus = components['schemas']['BreakerStatus'];
type Kind = 'openai' | 'tasks';

const BODY = { model: 'sora-2', prompt: 'a heron on a frozen pond', aspect_ratio: '16:9', duration: 4 } as const;
const SHAPE: VideoShape = { size: '1280x720', seconds: 4 };
const CHEAP_CREDITS = 100; // $0.25/s x 4 s
const DEAR_CREDITS = 200; // $0.50/s x 4 s
const MP4 = { openai: mp4Renderer('testsrc2'), tasks: mp4Renderer('smptebars') };

beforeAll(async () => {
  await Promise.all([MP4.openai(SHAPE), MP4.tasks(SHAPE)]);
});

interface RigOptions {
  cheap: Kind;
  /** timeout_ms of the cheap provider. Generous by default, so that a busy machine never makes a timeout. */
  cheapTimeoutMs?: number;
  graceMs?: number;
  consecutiveFailures?: number;
  /** The cheap OpenAI fake (and its provider config) honours Idempotency-Key. */
  idempotent?: boolean;
  /** What the cheap fake serves as its videos (default: real MP4s of the requested shape). */
  cheapMp4?: (shape: VideoShape) => Promise<Buffer>;
  /** The OpenAI fake refuses a reference image of another pixel size than the video's. */
  strictReferenceSize?: boolean;
  /** Origins exempt from the outbound address check (a local image host). */
  trustedOrigins?: string[];
}

async function rig(ctx: TestContext, o: RigOptions) {
  const dear: Kind = o.cheap === 'openai' ? 'tasks' : 'openai';
  const mp4 = (k: Kind) => (k === o.cheap && o.cheapMp4 ? o.cheapMp4 : MP4[k]);
  const openai = await startFakeOpenAI({ mp4: mp4('openai'), jobDurationMs: 150, honoursIdempotencyKey: o.idempotent, strictReferenceSize: o.strictReferenceSize });
  const tasks = await startFakeTasksApi({ mp4: mp4('tasks'), durationMs: 150 });
  const usd = (k: Kind) => (k === o.cheap ? 0.25 : 0.5);
  const timeout = (k: Kind) => (k === o.cheap ? (o.cheapTimeoutMs ?? 5000) : 5000);
  const h = await startTestGateway(
    {
      workers: { poll_interval_ms: 50, retry_backoff_ms: 50, lease_ms: 10_000, max_attempts: 3, upstream_timeout_ms: 10_000, lost_answer_grace_ms: o.graceMs ?? 3000 },
      outbound: { trusted_origins: o.trustedOrigins ?? [] },
      routing: { wait_for_provider_ms: 5000, breaker: { consecutive_failures: o.consecutiveFailures ?? 5, cooldown_ms: 30_000 } },
      providers: [
        {
          id: 'openai',
          kind: 'openai',
          base_url: openai.url,
          api_key_env: 'FAKE_OPENAI_KEY',
          timeout_ms: timeout('openai'),
          honours_idempotency_key: o.idempotent ?? false,
          models: [{ model: 'sora-2', usd_per_second: { standard: usd('openai') } }],
        },
        { id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'FAKE_TASKS_KEY', timeout_ms: timeout('tasks'), models: [{ model: 'sora-2', usd_per_second: { standard: usd('tasks') } }] },
      ],
    },
    { env: { FAKE_OPENAI_KEY: openai.apiKey, FAKE_TASKS_KEY: tasks.apiKey } },
  );
  ctx.onTestFinished(async () => {
    await openai.close().catch(() => undefined);
    await tasks.close().catch(() => undefined);
    await h.close();
  });
  return { h, openai, tasks, cheap: o.cheap, dear };
}
type Rig = Awaited<ReturnType<typeof rig>>;

async function submitAndSettle(r: Rig, body: object = BODY): Promise<Task> {
  const res = await r.h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return waitFor(async () => {
    const t = (await r.h.http.get(`/v1/tasks/${res.body.id}`).set(auth(KEY_A))).body as Task;
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, 30_000);
}

/** Creates each fake received. */
function creates(r: Rig, kind: Kind): number {
  return kind === 'openai' ? r.openai.requestsTo('create').length : r.tasks.requests.filter((q) => q.method === 'POST').length;
}

/** Upstream jobs each fake still holds (the OpenAI fake forgets a deleted one). */
function jobs(r: Rig, kind: Kind): string[] {
  return kind === 'openai' ? [...r.openai.jobs.keys()] : [...r.tasks.tasks.keys()];
}

/** Jobs upstream that no attempt of `task` knows: paid for, and never collected or cancelled. */
function orphans(r: Rig, task: Task): string[] {
  const known = new Set(task.attempts.map((a) => a.upstream_id));
  return [...jobs(r, 'openai'), ...jobs(r, 'tasks')].filter((id) => !known.has(id));
}

/** Credits settled for the team (GET /v1/usage totals): what it was charged. */
async function charged(r: Rig): Promise<number> {
  const res = await r.h.http.get('/v1/usage').set(auth(KEY_A));
  expect(res.status).toBe(200);
  return res.body.totals.credits as number;
}

async function breaker(r: Rig, provider: Kind): Promise<BreakerStatus> {
  const res = await r.h.http.get('/v1/providers').set(auth(KEY_A));
  const p = (res.body.data as components['schemas']['ProviderStatus'][]).find((x) => x.id === provider)!;
  return p.models.find((m) => m.model === 'sora-2')!.health;
}

async function storedVideo(r: Rig, id: string): Promise<Buffer> {
  const res = await r.h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)).responseType('blob');
  expect(res.status).toBe(200);
  return res.body as Buffer;
}

describe('fault 4: a lost create answer is never blindly resent', () => {
  it('OpenAI shape, answer arriving after the timeout: the job is found in the job list and adopted; one job, none orphaned', async (ctx) => {
    // The timeout is long enough for the create to reach the fake on a busy machine; the answer comes later.
    const r = await rig(ctx, { cheap: 'openai', cheapTimeoutMs: 1500 });
    r.openai.setMode({ kind: 'late_answer', delayMs: 3500 }, { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(task.attempts).toHaveLength(1);
    expect(task.attempts[0]!.upstream_id).toBe(jobs(r, 'openai')[0]);
    expect(creates(r, 'openai')).toBe(1);
    expect(r.openai.requestsTo('list')).toHaveLength(1);
    expect(jobs(r, 'openai')).toHaveLength(1);
    expect(creates(r, 'tasks')).toBe(0);
    expect(orphans(r, task)).toEqual([]);
    expect(await charged(r)).toBe(CHEAP_CREDITS);
  });

  it('OpenAI shape, connection reset after the job was made: adopted from the job list, not created again', async (ctx) => {
    const r = await rig(ctx, { cheap: 'openai' });
    r.openai.setMode({ kind: 'lost_answer' }, { route: 'create', times: 1 });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(creates(r, 'openai')).toBe(1);
    expect(jobs(r, 'openai')).toEqual([task.attempts[0]!.upstream_id]);
    expect(orphans(r, task)).toEqual([]);
  });

  it('a provider that honours idempotency keys is asked again under the same key: the same job, one of it', async (ctx) => {
    const r = await rig(ctx, { cheap: 'openai', idempotent: true });
    r.openai.setMode({ kind: 'lost_answer' }, { route: 'create', times: 1 });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'openai' });
    const keys = r.openai.requestsTo('create').map((q) => q.headers['idempotency-key']);
    expect(keys).toEqual([`${task.id}.1`, `${task.id}.1`]);
    expect(jobs(r, 'openai')).toEqual([task.attempts[0]!.upstream_id]);
    expect(r.openai.requestsTo('list')).toHaveLength(0);
  });

  it('task API (no key, no job list), answer lost: sent once, then the task moves on to the next provider', async (ctx) => {
    const r = await rig(ctx, { cheap: 'tasks' });
    r.tasks.setMode('lost_answer', { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'openai' });
    expect(task.attempts.map((a) => [a.provider, a.outcome, a.error?.code])).toEqual([
      ['tasks', 'retried', 'network_error'],
      ['openai', 'completed', undefined],
    ]);
    expect(creates(r, 'tasks')).toBe(1); // was 3: the answer resent twice, each a new paid job
    expect(jobs(r, 'tasks')).toHaveLength(1); // made upstream, but the task API gives no way to learn its id
    expect(await charged(r)).toBe(DEAR_CREDITS);
  });

  it('task API, answer arriving after the timeout but within the grace: the late answer is adopted; one job, none orphaned', async (ctx) => {
    const r = await rig(ctx, { cheap: 'tasks', cheapTimeoutMs: 1000, graceMs: 4000 });
    r.tasks.setMode({ kind: 'late_answer', delayMs: 2000 }, { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    expect(task.attempts).toHaveLength(1);
    expect(creates(r, 'tasks')).toBe(1);
    expect(jobs(r, 'tasks')).toEqual([task.attempts[0]!.upstream_id]);
    expect(orphans(r, task)).toEqual([]);
    // The late answer counted against the provider at the timeout, before it arrived.
    expect((await breaker(r, 'tasks')).error_rate).toBeGreaterThan(0);
  });

  it.for([
    ['openai', 'pending'],
    ['tasks', 'queued'],
  ] as const)('%s: a create answered with a job id and the unknown status %s keeps the job and completes it', async ([cheap, status], ctx) => {
    const r = await rig(ctx, { cheap });
    if (cheap === 'openai') r.openai.setMode({ kind: 'unknown_status', status }, { route: 'create' });
    else r.tasks.setMode({ kind: 'unknown_status', status }, { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: cheap });
    expect(task.attempts).toHaveLength(1);
    expect(creates(r, cheap)).toBe(1);
    expect(jobs(r, cheap)).toEqual([task.attempts[0]!.upstream_id]);
    expect(orphans(r, task)).toEqual([]);
  });
});

describe('fault 4: a crash during the create (the process died after sending it, before recording its answer)', () => {
  /**
   * A gateway whose store holds a task with a started, unconfirmed attempt on `provider`, whose create did reach
   * the fake (it made a job there); then the gateway starts, as the next process would.
   */
  async function afterCrash(ctx: TestContext, provider: Kind) {
    const openai = await startFakeOpenAI({ mp4: MP4.openai, jobDurationMs: 150 });
    const tasks = await startFakeTasksApi({ mp4: MP4.tasks, durationMs: 150 });
    const dir = tempDir();
    const config = testConfig(dir, {
      providers: [
        { id: 'openai', kind: 'openai', base_url: openai.url, api_key_env: 'K1', models: [{ model: 'sora-2', usd_per_second: { standard: provider === 'openai' ? 0.25 : 0.5 } }] },
        { id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'K2', models: [{ model: 'sora-2', usd_per_second: { standard: provider === 'tasks' ? 0.25 : 0.5 } }] },
      ],
    });
    const gateway = await createGateway(config, { log: createLogger('silent'), env: { K1: openai.apiKey, K2: tasks.apiKey } });
    ctx.onTestFinished(async () => {
      await openai.close();
      await tasks.close();
      await gateway.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const { store } = gateway;
    const request = { model: 'sora-2', prompt: 'a crash mid-create', size: '1280x720', duration_s: 4 } as const;
    await store.createTask({ id: 'task_crashed', owner_id: 'default', key_id: 'key-crashed', model: 'sora-2', request_json: JSON.stringify(request), callback_url: null, credits_reserved: CHEAP_CREDITS, created_at_ms: Date.now(), cache_key: null, cache_status: 'disabled' });
    const [claimed] = await store.claimDue('dispatch', 1, 60_000, Date.now());
    expect(await store.startAttempt(claimed!.id, claimed!.lease_token, provider, { micro_usd: 1_000_000, credits: CHEAP_CREDITS }, Date.now())).toBe('started');
    const upstreamId = (await gateway.router.provider(provider)!.submit(request, { idempotencyKey: 'task_crashed.1' })).upstreamId;
    await store.releaseLease(claimed!.id, claimed!.lease_token, Date.now(), Date.now()); // as its lease would expire
    await gateway.start();
    const done = await waitFor(async () => {
      const t = await store.getTask('task_crashed');
      return t && ['completed', 'failed'].includes(t.status) ? t : undefined;
    }, 30_000);
    return { done, upstreamId, attempts: await store.listAttempts(['task_crashed']), openai, tasks };
  }

  it('OpenAI shape: the next process finds the job in the job list and adopts it; no second create', async (ctx) => {
    const { done, upstreamId, attempts, openai } = await afterCrash(ctx, 'openai');
    expect(done).toMatchObject({ status: 'completed', provider_id: 'openai', upstream_id: upstreamId });
    expect(attempts.map((a) => [a.provider_id, a.upstream_id, a.outcome])).toEqual([['openai', upstreamId, 'completed']]);
    expect(openai.requestsTo('create')).toHaveLength(1); // was 2: resent under a key the host ignores
    expect([...openai.jobs.keys()]).toEqual([upstreamId]);
  });

  it('task API (no key, no job list): not sent again; the task moves on to the next provider', async (ctx) => {
    const { done, attempts, tasks } = await afterCrash(ctx, 'tasks');
    expect(done).toMatchObject({ status: 'completed', provider_id: 'openai' });
    expect(attempts.map((a) => [a.provider_id, a.outcome, a.error_code])).toEqual([
      ['tasks', 'retried', 'submission_unconfirmed'],
      ['openai', 'completed', null],
    ]);
    expect(tasks.requests.filter((q) => q.method === 'POST')).toHaveLength(1); // was 2: a second paid job
  });
});

describe('fault 5: a hanging provider', () => {
  it('holds a task for one timeout plus at most the grace, gets one create, and its breaker is not bypassed by resends', async (ctx) => {
    const timeoutMs = 1000;
    const graceMs = 500;
    // Honours keys, so a resend would be safe, but its breaker opens at the first timeout: no resend then.
    const r = await rig(ctx, { cheap: 'openai', idempotent: true, cheapTimeoutMs: timeoutMs, graceMs, consecutiveFailures: 1 });
    r.openai.setMode('hang', { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    const first = task.attempts[0]!;
    expect(first).toMatchObject({ provider: 'openai', outcome: 'retried', error: { code: 'timeout' } });
    expect(creates(r, 'openai')).toBe(1); // was 3, two of them sent while the breaker was open
    // Three timeouts before; one timeout and the grace now (plus generous room for a busy machine).
    expect(first.ended_at! - first.started_at).toBeGreaterThanOrEqual(timeoutMs - 5);
    expect(first.ended_at! - first.started_at).toBeLessThan(timeoutMs + graceMs + 1000);
    expect(await breaker(r, 'openai')).toMatchObject({ state: 'open', calls: 1, error_rate: 1 });
  });

  it('the first timeout counts against health at once, and a hanging provider that honours keys gets one resend bounded by the grace', async (ctx) => {
    const timeoutMs = 800;
    const graceMs = 400;
    const r = await rig(ctx, { cheap: 'openai', idempotent: true, cheapTimeoutMs: timeoutMs, graceMs });
    r.openai.setMode('hang', { route: 'create' });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    const first = task.attempts[0]!;
    expect(creates(r, 'openai')).toBe(2); // the create, and one resend under its key
    expect(r.openai.requestsTo('create').map((q) => q.headers['idempotency-key'])).toEqual([`${task.id}.1`, `${task.id}.1`]);
    expect(first.ended_at! - first.started_at).toBeLessThan(timeoutMs + graceMs + 1000);
    expect(await breaker(r, 'openai')).toMatchObject({ state: 'closed', calls: 1, error_rate: 1 });
  });
});

describe('fault 7: the delivered video is verified', () => {
  const wrong = {
    'the wrong size (720x1280 for 1280x720)': mp4Renderer('testsrc2'),
    'the wrong duration (2 s for 4 s)': mp4Renderer('testsrc2'),
    'the wrong codec (MPEG-4 part 2)': mp4Renderer('testsrc2', 'mpeg4'),
  };
  const serve: Record<keyof typeof wrong, (shape: VideoShape) => VideoShape> = {
    'the wrong size (720x1280 for 1280x720)': (s) => ({ ...s, size: s.size.split('x').reverse().join('x') }),
    'the wrong duration (2 s for 4 s)': (s) => ({ ...s, seconds: 2 }),
    'the wrong codec (MPEG-4 part 2)': (s) => s,
  };

  it.for(Object.keys(wrong) as (keyof typeof wrong)[])('%s: output_mismatch on the attempt, failed over, charged only for the good video, the bad one not kept', async (name, ctx) => {
    const r = await rig(ctx, { cheap: 'openai', cheapMp4: (shape) => wrong[name](serve[name](shape)) });
    const task = await submitAndSettle(r);
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    expect(task.attempts.map((a) => [a.provider, a.outcome, a.error?.code])).toEqual([
      ['openai', 'retried', 'output_mismatch'],
      ['tasks', 'completed', undefined],
    ]);
    expect(await charged(r)).toBe(DEAR_CREDITS);
    expect((await storedVideo(r, task.id)).equals(await MP4.tasks(SHAPE))).toBe(true);
    expect(fs.readdirSync(r.h.config.assets.dir)).toEqual([`${task.id}.mp4`]);
    const health = await breaker(r, 'openai');
    expect(health.error_rate).toBeGreaterThan(0);
    expect(health.reason ?? '').not.toContain('http'); // counted as the job's failure, not a transport one
  });
});

describe('fault 8: reference images', () => {
  /** A local image host serving one 640x480 PNG (neither 1280x720 nor 16:9), trusted by the gateway. */
  async function imageHost(ctx: TestContext): Promise<string> {
    const png = execFileSync(ffmpeg.path, ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x480', '-frames:v', '1', '-f', 'image2pipe', '-c:v', 'png', 'pipe:1']);
    const server = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(png));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ctx.onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it.for(['pad', 'crop', undefined] as const)('an image of the wrong pixel size (resize_mode %s) is fitted by vidgate and uploaded: a strict provider takes it', async (mode, ctx) => {
    const origin = await imageHost(ctx);
    const r = await rig(ctx, { cheap: 'openai', strictReferenceSize: true, trustedOrigins: [origin] });
    const task = await submitAndSettle(r, { ...BODY, image_urls: [`${origin}/ref.png`], ...(mode && { resize_mode: mode }) });
    expect(task).toMatchObject({ status: 'completed', provider: 'openai' });
    const [create] = r.openai.requestsTo('create');
    expect(create!.body).toMatchObject({ input_reference: { type: 'image/png' } });
    expect(create!.body!['input_reference[image_url]']).toBeUndefined();
    expect(jobs(r, 'openai')).toHaveLength(1);
  });

  it('the task API gets the image URL with a resize_mode (pad when the request names none), so it fits the image itself', async (ctx) => {
    const origin = await imageHost(ctx);
    const r = await rig(ctx, { cheap: 'tasks', trustedOrigins: [origin] });
    const task = await submitAndSettle(r, { ...BODY, image_urls: [`${origin}/ref.png`] });
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    const create = r.tasks.requests.find((q) => q.method === 'POST');
    expect(create!.body).toMatchObject({ image_urls: [`${origin}/ref.png`], resize_mode: 'pad' });
  });
});
