// The poller follows each running job by its own clock (poll-schedule.ts), honours the provider's
// `openai-poll-after-ms` hint, and polls each provider's jobs within that provider's own concurrency limit.
// Over real HTTP to fake OpenAI-shaped upstreams, with the gateway's clock injected where the rule is about time.
import { describe, expect, it, type TestContext } from 'vitest';
import { nextPollDelayMs } from '../src/core/poll-schedule';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { mp4Renderer } from './support/mp4';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

const SCHEDULE = { poll_interval_ms: 1000, max_poll_interval_ms: 15_000 };

describe('nextPollDelayMs', () => {
  it('polls a young job at the poll interval, then after a quarter of its age, up to the maximum less a margin and one tick', () => {
    expect(nextPollDelayMs(0, undefined, SCHEDULE)).toBe(1000);
    expect(nextPollDelayMs(4_000, undefined, SCHEDULE)).toBe(1000);
    expect(nextPollDelayMs(20_000, undefined, SCHEDULE)).toBe(5000);
    expect(nextPollDelayMs(50_000, undefined, SCHEDULE)).toBe(12_500);
    // A due job may wait one tick (poll_interval_ms) to be claimed, and its request a little more: 95 % of 15 s less 1 s.
    expect(nextPollDelayMs(60_000, undefined, SCHEDULE)).toBe(13_250);
    expect(nextPollDelayMs(3 * 3600_000, undefined, SCHEDULE)).toBe(13_250);
    // A clock that went back never makes the wait shorter than the interval.
    expect(nextPollDelayMs(-60_000, undefined, SCHEDULE)).toBe(1000);
  });

  it('waits the longest, whatever the age, while the poller is behind', () => {
    expect(nextPollDelayMs(0, undefined, SCHEDULE, true)).toBe(13_250);
    expect(nextPollDelayMs(20_000, undefined, SCHEDULE, true)).toBe(13_250);
    expect(nextPollDelayMs(20_000, 30_000, SCHEDULE, true)).toBe(30_000);
  });

  it("waits at least the provider's hint, even past the maximum", () => {
    expect(nextPollDelayMs(0, 3000, SCHEDULE)).toBe(3000);
    expect(nextPollDelayMs(20_000, 3000, SCHEDULE)).toBe(5000);
    expect(nextPollDelayMs(3 * 3600_000, 20_000, SCHEDULE)).toBe(20_000);
  });
});

type Harness = Awaited<ReturnType<typeof startTestGateway>>;

/** A gateway in front of one fake upstream per model: `hinted` serves sora-2-pro, `plain` serves sora-2. */
async function rig(ctx: TestContext, o: { now?: () => number; hinted?: Parameters<typeof startFakeOpenAI>[0]; plain?: Parameters<typeof startFakeOpenAI>[0]; providers?: object[]; workers?: object } = {}) {
  const hinted = await startFakeOpenAI({ models: ['sora-2-pro'], ...o.hinted });
  const plain = await startFakeOpenAI({ models: ['sora-2'], ...o.plain });
  const provider = (id: string, fake: FakeOpenAI, model: string, extra: object = {}) =>
    ({ id, kind: 'openai', base_url: fake.url, api_key_env: `${id.toUpperCase()}_KEY`, timeout_ms: 30_000, models: [{ model, usd_per_second: { standard: 0.1 } }], ...extra });
  const [hintedExtra, plainExtra] = o.providers ?? [{}, {}];
  const h = await startTestGateway(
    {
      workers: { poll_interval_ms: 50, lease_ms: 10_000, upstream_timeout_ms: 30_000, ...o.workers },
      providers: [provider('hinted', hinted, 'sora-2-pro', hintedExtra), provider('plain', plain, 'sora-2', plainExtra)],
    },
    { env: { HINTED_KEY: hinted.apiKey, PLAIN_KEY: plain.apiKey }, ...(o.now && { now: o.now }) },
  );
  ctx.onTestFinished(async () => {
    // The fakes first: a poll they hold open ends, so the gateway's drain does not wait for it.
    for (const close of [() => hinted.close(), () => plain.close(), () => h.close()]) await close().catch(() => undefined);
  });
  return { h, hinted, plain };
}

async function submit(h: Harness, model: 'sora-2' | 'sora-2-pro', prompt = 'a slow sunrise'): Promise<string> {
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model, prompt, aspect_ratio: '16:9', duration: 4 });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.id as string;
}

/** The running task once a poll moved its next poll past `afterMs`. */
const polledAfter = (h: Harness, id: string, afterMs: number) =>
  waitFor(async () => {
    const t = await h.gateway.store.getTask(id);
    return t?.status === 'processing' && t.next_run_at_ms > afterMs ? t : undefined;
  });

describe('the poller', () => {
  it("schedules each job's next poll by its own age and the provider's poll-after hint", async (ctx) => {
    let clockMs = 1_800_000_000_000;
    const { h, hinted, plain } = await rig(ctx, {
      now: () => clockMs,
      hinted: { jobDurationMs: 3600_000, pollAfterMs: 20_000 },
      plain: { jobDurationMs: 3600_000 },
    });
    const start = clockMs;
    const [a, b] = [await submit(h, 'sora-2-pro'), await submit(h, 'sora-2')];
    // Just submitted (age 0): the hinted job waits for its hint, the other for the poll interval (50 ms).
    expect((await polledAfter(h, a, start)).next_run_at_ms).toBe(start + 20_000);
    expect((await polledAfter(h, b, start)).next_run_at_ms).toBe(start + 50);
    expect(hinted.requestsTo('retrieve')).toHaveLength(1);
    expect(plain.requestsTo('retrieve')).toHaveLength(1);

    // Ten minutes on, both are due: a quarter of the age is 150 s, so the maximum (15 s, less 5 % and a 50 ms tick) applies,
    // and the hint (20 s) is longer still. Neither is asked again before its time: the clock stands still meanwhile.
    clockMs = start + 600_000;
    h.gateway.workers.wake();
    expect((await polledAfter(h, a, clockMs)).next_run_at_ms).toBe(clockMs + 20_000);
    expect((await polledAfter(h, b, clockMs)).next_run_at_ms).toBe(clockMs + 14_200);
    await new Promise((r) => setTimeout(r, 300)); // several ticks, at the same clock
    expect(hinted.requestsTo('retrieve')).toHaveLength(2);
    expect(plain.requestsTo('retrieve')).toHaveLength(2);
  });

  it("downloads a completed job outside the poller's slots: a hanging download holds up no other job's poll, and downloads stay within poll_concurrency", async (ctx) => {
    // Jobs done by their first poll: a poller whose one slot was just claimed full waits long between polls (backlogged).
    const { h, plain } = await rig(ctx, { plain: { jobDurationMs: 1, mp4: mp4Renderer() }, providers: [{}, { poll_concurrency: 1 }] });
    plain.setMode('hang', { route: 'content' });
    const first = await submit(h, 'sora-2', 'first');
    await waitFor(async () => (plain.requestsTo('content').length === 1 ? true : undefined));
    const later = [await submit(h, 'sora-2', 'second'), await submit(h, 'sora-2', 'third')];
    const upstreamIds = await Promise.all(later.map((id) => waitFor(async () => (await h.gateway.store.getTask(id))?.upstream_id ?? undefined)));
    // With one slot, the first job's download would have held it (up to upstream_timeout_ms, 30 s): the later jobs
    // are polled (and found done) meanwhile.
    const polledDone = (upstreamId: string) => plain.requestsTo('retrieve').some((r) => r.path === `/v1/videos/${upstreamId}`);
    await waitFor(async () => (upstreamIds.every(polledDone) ? true : undefined));
    // Their downloads wait their turn: one download at a time, as one poll at a time.
    await new Promise((r) => setTimeout(r, 300));
    expect(plain.requestsTo('content')).toHaveLength(1);
    for (const id of [first, ...later]) expect((await h.gateway.store.getTask(id))?.status).toBe('processing');
  });

  it("polls one provider's jobs at most poll_concurrency at once, and a stalled provider does not hold up another's", async (ctx) => {
    const { h, hinted: stalled, plain: healthy } = await rig(ctx, {
      hinted: { jobDurationMs: 100 },
      plain: { jobDurationMs: 200, mp4: mp4Renderer() },
      providers: [{ poll_concurrency: 2 }, {}],
    });
    // Every poll of the stalled provider hangs (up to upstream_timeout_ms, 30 s).
    stalled.setMode('hang', { route: 'retrieve' });
    const stuck = [];
    for (let i = 0; i < 5; i++) stuck.push(await submit(h, 'sora-2-pro', `stalled ${i}`));
    const fine = [];
    for (let i = 0; i < 4; i++) fine.push(await submit(h, 'sora-2', `healthy ${i}`));
    for (const id of fine) {
      const done = await waitFor(async () => {
        const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
        return t.status === 'completed' || t.status === 'failed' ? t : undefined;
      }, 60_000);
      expect(done.status).toBe('completed');
    }
    await waitFor(async () => (stalled.requestsTo('retrieve').length >= 2 ? true : undefined));
    // All five are due; only two polls are under way, and no third is sent while they hang.
    await new Promise((r) => setTimeout(r, 300));
    expect(stalled.requestsTo('retrieve')).toHaveLength(2);
    expect(healthy.requestsTo('retrieve').length).toBeGreaterThanOrEqual(fine.length);
    for (const id of stuck) expect((await h.gateway.store.getTask(id))?.status).toBe('processing');
  });
});
