// Quotas and credits over HTTP: daily and monthly credits (team, and tighter per key), reservations released on
// failure and cancellation, settlement at the serving provider's price, growth on failover to a dearer provider,
// unfinished-task and per-minute limits, allowed models, the usage reports and the credit metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewKeyOptions } from '../src/core/teams';
import type { Quotas } from '../src/store/types';
import { ADMIN_TOKEN, KEY_A, auth, startTestGateway, waitFor } from './support/gateway';
import { creditSamples, sumCredits } from './support/ledger-check';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;

/** A provider whose jobs take a minute, so tasks on it stay unfinished for as long as a test needs. */
const SLOW = { id: 'slow', kind: 'simulated', duration_ms: 60_000, fps: 4, models: [{ model: 'slow-model', usd_per_second: { standard: 0.05 } }] };
const FAST = { id: 'simulated', kind: 'simulated', duration_ms: 250, fps: 4 };

let h: Harness; // simulated (sora-2 $0.10/s, sora-2-pro $0.30/s or $0.50/s at 1080p) and slow
let f: Harness; // failover: 'cheap' fails every job (retryably), 'dear' costs 2.5 times as much
let d: Harness; // every job fails terminally

beforeAll(async () => {
  [h, f, d] = await Promise.all([
    startTestGateway({ providers: [FAST, SLOW] }),
    startTestGateway({
      providers: [
        { id: 'cheap', kind: 'simulated', duration_ms: 200, fps: 4, failure_rate: 1, models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] },
        { id: 'dear', kind: 'simulated', duration_ms: 200, fps: 4, models: [{ model: 'sora-2', usd_per_second: { standard: 0.25 } }] },
      ],
      // Keep 'cheap' in the rotation however often it fails, so that every task tries it first.
      routing: { breaker: { consecutive_failures: 1000, min_calls: 1000 } },
    }),
    startTestGateway({ providers: [{ id: 'doomed', kind: 'simulated', duration_ms: 200, fps: 4, failure_rate: 1, failure_kind: 'terminal' }] }),
  ]);
});
afterAll(async () => {
  await Promise.all([h, f, d].map((g) => g?.close()));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const admin = auth(ADMIN_TOKEN);
let seq = 0;

/**
 * A team with one key. Set up through the services rather than POST /admin/teams/{id}/keys, whose answer fails
 * the response validation these harnesses run with (see admin.test.ts, "answers match the spec").
 */
async function team(g: Harness, quotas: Partial<Quotas> = {}, keyOptions: NewKeyOptions = {}) {
  const t = await g.gateway.teams.createTeam(`quota team ${++seq}`, quotas);
  const { key, record } = await g.gateway.teams.addKey(t.id, keyOptions);
  return { id: t.id, key, keyId: record.id, addKey: async (o: NewKeyOptions = {}) => (await g.gateway.teams.addKey(t.id, o)).key };
}

const submit = (g: Harness, key: string, body: object = {}) =>
  g.http.post('/v1/videos/generations').set(auth(key)).send({ prompt: 'quota test', ...body });
const SLOW_BODY = { model: 'slow-model' }; // 20 credits, never finishes during a test
const SORA = { model: 'sora-2', aspect_ratio: '16:9', duration: 4 }; // 40 credits on 'simulated' and 'cheap'

async function finished(g: Harness, key: string, id: string) {
  return waitFor(async () => {
    const res = await g.http.get(`/v1/tasks/${id}`).set(auth(key));
    return ['completed', 'failed', 'cancelled'].includes(res.body.status) ? res.body : undefined;
  });
}

const usage = async (g: Harness, key: string, query = '') => {
  const res = await g.http.get(`/v1/usage${query}`).set(auth(key));
  expect(res.status).toBe(200);
  return res.body;
};

function expectError(res: { status: number; body: unknown }, status: number, type: string, code: string, param: string | null) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String), type, param } });
}

/** Retry-After of a credit refusal: the seconds until the UTC day or month renews, give or take the request's time. */
function expectRetryAfterUntil(res: { headers: Record<string, string> }, window: 'day' | 'month') {
  const now = new Date();
  const next =
    window === 'day'
      ? Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)
      : Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  const expected = Math.ceil((next - now.getTime()) / 1000);
  const got = Number(res.headers['retry-after']);
  expect(Number.isInteger(got)).toBe(true);
  expect(got).toBeGreaterThanOrEqual(expected - 1);
  expect(got).toBeLessThanOrEqual(expected + 5);
}

/** Per-minute tests count requests in one UTC minute: start them well inside one. */
async function awayFromMinuteEdge(needS = 10) {
  const left = 60 - new Date().getUTCSeconds();
  if (left < needS) await sleep(left * 1000 + 250);
}

describe('credits per day and per month', () => {
  it("going over the team's daily credits answers 402 credits_per_day_exceeded with a Retry-After to midnight UTC", async () => {
    const t = await team(h, { credits_per_day: 100 });
    expect((await submit(h, t.key, SORA)).status).toBe(202);
    expect((await submit(h, t.key, SORA)).status).toBe(202);
    const over = await submit(h, t.key, SORA);
    expectError(over, 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
    expect(over.body.error.message).toContain("team's");
    expectRetryAfterUntil(over, 'day');
    // The refusal reserved nothing and created no task.
    const u = await usage(h, t.key);
    expect(u.quotas.team.credits_per_day).toEqual({ limit: 100, used: 80, remaining: 20 });
    expect((await h.http.get('/v1/tasks').set(auth(t.key))).body.data).toHaveLength(2);
    // A cheaper request that fits the 20 left is still accepted.
    expect((await submit(h, t.key, SLOW_BODY)).status).toBe(202);
    expectError(await submit(h, t.key, SLOW_BODY), 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
  });

  it("going over the team's monthly credits answers 402 credits_per_month_exceeded with a Retry-After to the next month", async () => {
    const t = await team(h, { credits_per_month: 60 });
    expect((await submit(h, t.key, SORA)).status).toBe(202);
    const over = await submit(h, t.key, SORA);
    expectError(over, 402, 'insufficient_quota_error', 'credits_per_month_exceeded', null);
    expectRetryAfterUntil(over, 'month');
    expect((await usage(h, t.key)).quotas.team.credits_per_month).toEqual({ limit: 60, used: 40, remaining: 20 });
  });

  it("a key's own daily and monthly credits are tighter than its team's, and charge the team too", async () => {
    const t = await team(h, { credits_per_day: 1000, credits_per_month: 1000 }, { credits_per_day: 40 });
    const monthly = await t.addKey({ credits_per_month: 40 });
    const free = await t.addKey();

    expect((await submit(h, t.key, SORA)).status).toBe(202);
    const dayOver = await submit(h, t.key, SORA);
    expectError(dayOver, 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
    expect(dayOver.body.error.message).toContain("this key's");
    expectRetryAfterUntil(dayOver, 'day');

    expect((await submit(h, monthly, SORA)).status).toBe(202);
    const monthOver = await submit(h, monthly, SORA);
    expectError(monthOver, 402, 'insufficient_quota_error', 'credits_per_month_exceeded', null);
    expect(monthOver.body.error.message).toContain("this key's");
    expectRetryAfterUntil(monthOver, 'month');

    // The team still has room for a key without limits of its own.
    expect((await submit(h, free, SORA)).status).toBe(202);
    const u = await usage(h, t.key);
    expect(u.quotas.key.credits_per_day).toEqual({ limit: 40, used: 40, remaining: 0 });
    expect(u.quotas.team.credits_per_day).toEqual({ limit: 1000, used: 120, remaining: 880 });
    expect((await usage(h, monthly)).quotas.key.credits_per_month).toEqual({ limit: 40, used: 40, remaining: 0 });
  });

  it('lowering the quota below what is used refuses the next task; raising it admits it again', async () => {
    const t = await team(h, { credits_per_day: 200 });
    expect((await submit(h, t.key, SORA)).status).toBe(202);
    expect((await h.http.patch(`/admin/teams/${t.id}`).set(admin).send({ quotas: { credits_per_day: 50 } })).status).toBe(200);
    expectError(await submit(h, t.key, SORA), 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
    expect((await h.http.patch(`/admin/teams/${t.id}`).set(admin).send({ quotas: { credits_per_day: null } })).status).toBe(200);
    expect((await submit(h, t.key, SORA)).status).toBe(202);
  });
});

describe('reservations', () => {
  it('cancelling releases the reservation in full, so its credits are available again', async () => {
    const t = await team(h, { credits_per_day: 40 });
    const a = await submit(h, t.key, SLOW_BODY);
    const b = await submit(h, t.key, SLOW_BODY);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.usage.credits_reserved).toBe(20);
    expectError(await submit(h, t.key, SLOW_BODY), 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
    const open = (await usage(h, t.key)).open_reservations;
    expect(open.map((r: { task_id: string; credits_reserved: number }) => [r.task_id, r.credits_reserved]).sort()).toEqual([[a.body.id, 20], [b.body.id, 20]].sort());

    expect((await h.http.post(`/v1/tasks/${a.body.id}/cancel`).set(auth(t.key))).status).toBe(200);
    let u = await usage(h, t.key);
    expect(u.quotas.team.credits_per_day).toEqual({ limit: 40, used: 20, remaining: 20 });
    expect(u.quotas.team.max_concurrent.used).toBe(1);
    expect(u.open_reservations.map((r: { task_id: string }) => r.task_id)).toEqual([b.body.id]);
    expect((await submit(h, t.key, SLOW_BODY)).status).toBe(202);

    // Cancelling everything leaves nothing used and nothing spent.
    for (const task of (await h.http.get('/v1/tasks').set(auth(t.key))).body.data) {
      if (task.status !== 'cancelled') expect((await h.http.post(`/v1/tasks/${task.id}/cancel`).set(auth(t.key))).status).toBe(200);
    }
    u = await usage(h, t.key);
    expect(u.quotas.team.credits_per_day.used).toBe(0);
    expect(u.quotas.key.credits_per_day.used).toBe(0);
    expect(u.open_reservations).toEqual([]);
    expect(u.totals).toEqual({ credits: 0, usd: 0, tasks: 0 });
  });

  it('a failed task releases its reservation in full', async () => {
    const t = await team(d, { credits_per_day: 40 });
    const res = await submit(d, t.key, SORA);
    expect(res.status).toBe(202);
    expectError(await submit(d, t.key, SORA), 402, 'insufficient_quota_error', 'credits_per_day_exceeded', null);
    const done = await finished(d, t.key, res.body.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('content_policy_violation');
    const u = await usage(d, t.key);
    expect(u.quotas.team.credits_per_day).toEqual({ limit: 40, used: 0, remaining: 40 });
    expect(u.quotas.team.max_concurrent.used).toBe(0);
    expect(u.open_reservations).toEqual([]);
    expect(u.spend).toEqual([]);
    expect((await submit(d, t.key, SORA)).status).toBe(202);
  });

  it('completion settles at the price of the provider that served the task', async () => {
    const t = await team(h, { credits_per_day: 1000 });
    const res = await submit(h, t.key, { model: 'sora-2-pro', aspect_ratio: '16:9', quality: '1080p', duration: 8 });
    expect(res.body.usage.credits_reserved).toBe(400); // $0.50/s x 8 s
    const done = await finished(h, t.key, res.body.id);
    expect(done.status).toBe('completed');
    const u = await usage(h, t.key);
    expect(u.quotas.team.credits_per_day.used).toBe(400);
    expect(u.spend).toEqual([{ day: u.day, model: 'sora-2-pro', provider: 'simulated', tasks: 1, credits: 400, usd: 4 }]);
    const ledger = (await h.gateway.store.listLedger(t.id)).map((e) => [e.kind, e.credits, e.provider_id]);
    expect(ledger).toEqual([['reserve', 400, null], ['release', -400, 'simulated'], ['settle', 400, 'simulated']]);
  });
});

describe('failover to a dearer provider', () => {
  it('grows the reservation to the dearer price and settles there', async () => {
    const t = await team(f, { credits_per_day: 100 });
    const res = await submit(f, t.key, SORA);
    expect(res.status).toBe(202);
    expect(res.body.usage.credits_reserved).toBe(40); // the cheapest capable provider's price
    const done = await finished(f, t.key, res.body.id);
    expect(done.status).toBe('completed');
    expect(done.provider).toBe('dear');
    expect(done.usage.credits_reserved).toBe(100);
    expect(done.attempts.map((a: { provider: string; outcome: string; price_usd: number }) => [a.provider, a.outcome, a.price_usd])).toEqual([
      ['cheap', 'retried', 0.4],
      ['dear', 'completed', 1],
    ]);
    const u = await usage(f, t.key);
    expect(u.quotas.team.credits_per_day).toEqual({ limit: 100, used: 100, remaining: 0 });
    expect(u.spend).toEqual([{ day: u.day, model: 'sora-2', provider: 'dear', tasks: 1, credits: 100, usd: 1 }]);
    const ledger = (await f.gateway.store.listLedger(t.id)).map((e) => [e.kind, e.credits]);
    expect(ledger).toEqual([['reserve', 40], ['reserve', 60], ['release', -100], ['settle', 100]]);
  });

  it('fails the task with insufficient_quota when the budget cannot cover the growth, releasing everything', async () => {
    for (const [quotas, keyOptions, whose] of [
      [{ credits_per_day: 80 }, {}, "team's credits_per_day"],
      [{}, { credits_per_month: 99 }, "key's credits_per_month"],
    ] as const) {
      const t = await team(f, quotas, keyOptions);
      const res = await submit(f, t.key, SORA);
      expect(res.status).toBe(202);
      const done = await finished(f, t.key, res.body.id);
      expect(done.status).toBe('failed');
      expect(done.error.code).toBe('insufficient_quota');
      expect(done.error.message).toContain(whose);
      expect(done.usage.credits_reserved).toBe(40);
      expect(done.attempts.map((a: { provider: string; outcome: string }) => [a.provider, a.outcome])).toEqual([['cheap', 'retried']]);
      const u = await usage(f, t.key);
      for (const scope of [u.quotas.team, u.quotas.key]) {
        expect(scope.credits_per_day.used).toBe(0);
        expect(scope.credits_per_month.used).toBe(0);
        expect(scope.max_concurrent.used).toBe(0);
      }
      expect(u.open_reservations).toEqual([]);
      expect(u.spend).toEqual([]);
      expect((await f.gateway.store.listLedger(t.id)).map((e) => [e.kind, e.credits])).toEqual([['reserve', 40], ['release', -40]]);
    }
  });

  it('the credit metrics add up: reserved = settled + released, per team, and settled matches the spend', async () => {
    const t = await team(f, { credits_per_day: 140 });
    // One after the other: the first grows to 100 and completes; then 100 + 40 fit, but not the growth to 100 + 100.
    const done = [];
    for (let i = 0; i < 3; i++) {
      const res = await submit(f, t.key, SORA);
      expect(res.status).toBe(202);
      done.push(await finished(f, t.key, res.body.id));
    }
    expect(done.map((x) => x.status)).toEqual(['completed', 'failed', 'failed']);
    const samples = creditSamples((await f.http.get('/metrics')).text);
    const reserved = sumCredits(samples, { team: t.id, kind: 'reserved' });
    const settled = sumCredits(samples, { team: t.id, kind: 'settled' });
    const released = sumCredits(samples, { team: t.id, kind: 'released' });
    expect(reserved).toBe(120 + 60);
    expect(settled).toBe(100);
    expect(released).toBe(80);
    expect(reserved).toBe(settled + released);
    expect(sumCredits(samples, { team: t.id, kind: 'reserved', provider: 'none', model: 'sora-2' })).toBe(120);
    expect(sumCredits(samples, { team: t.id, kind: 'reserved', provider: 'dear', model: 'sora-2' })).toBe(60);
    expect(sumCredits(samples, { team: t.id, kind: 'settled', provider: 'dear', model: 'sora-2' })).toBe(100);
    const u = await usage(f, t.key);
    expect(u.totals.credits).toBe(settled);
  });
});

describe('max_concurrent', () => {
  it('answers 429 max_concurrent_exceeded over the team limit, and frees a slot when a task is cancelled', async () => {
    const t = await team(h, { max_concurrent: 2 });
    const a = await submit(h, t.key, SLOW_BODY);
    expect(a.status).toBe(202);
    expect((await submit(h, t.key, SLOW_BODY)).status).toBe(202);
    const over = await submit(h, t.key, SLOW_BODY);
    expectError(over, 429, 'rate_limit_error', 'max_concurrent_exceeded', null);
    expect(over.headers['retry-after']).toBe('10');
    expect((await usage(h, t.key)).quotas.team.max_concurrent).toEqual({ limit: 2, used: 2, remaining: 0 });
    await h.http.post(`/v1/tasks/${a.body.id}/cancel`).set(auth(t.key));
    expect((await submit(h, t.key, SLOW_BODY)).status).toBe(202);
  });

  it('frees the slot when a task finishes', async () => {
    const t = await team(h, { max_concurrent: 1 });
    const first = await submit(h, t.key, SORA);
    expect(first.status).toBe(202);
    expectError(await submit(h, t.key, SORA), 429, 'rate_limit_error', 'max_concurrent_exceeded', null);
    expect((await finished(h, t.key, first.body.id)).status).toBe('completed');
    expect((await submit(h, t.key, SORA)).status).toBe(202);
  });

  it("a key's own limit applies to it alone", async () => {
    const t = await team(h, { max_concurrent: 5 }, { max_concurrent: 1 });
    const other = await t.addKey();
    expect((await submit(h, t.key, SLOW_BODY)).status).toBe(202);
    const over = await submit(h, t.key, SLOW_BODY);
    expectError(over, 429, 'rate_limit_error', 'max_concurrent_exceeded', null);
    expect(over.body.error.message).toContain("this key's");
    expect((await submit(h, other, SLOW_BODY)).status).toBe(202);
    const u = await usage(h, t.key);
    expect(u.quotas.key.max_concurrent).toEqual({ limit: 1, used: 1, remaining: 0 });
    expect(u.quotas.team.max_concurrent).toEqual({ limit: 5, used: 2, remaining: 3 });
  });
});

describe('reads and submissions per minute', () => {
  it('every /v1 answer carries X-RateLimit-Resource, -Limit, -Remaining (one less each time) and -Reset of its own kind', async () => {
    await awayFromMinuteEdge();
    const t = await team(h, { credits_per_day: 40 });
    const reads = [
      await h.http.get('/v1/models').set(auth(t.key)), // 200
      await h.http.get('/v1/tasks/task_000000000000000000000000').set(auth(t.key)), // 404
      await h.http.get('/v1/usage').set(auth(t.key)), // 200
      await h.http.post('/v1/estimates').set(auth(t.key)).send({ prompt: 'x' }), // 200: a POST that changes nothing
    ];
    const submits = [
      await submit(h, t.key, SORA), // 202
      await submit(h, t.key, SORA), // 402
      await submit(h, t.key, { colour: 'red' }), // 400
    ];
    expect([...reads, ...submits].map((r) => r.status)).toEqual([200, 404, 200, 200, 202, 402, 400]);
    const expectHeaders = (answers: typeof reads, resource: string, limit: number) =>
      answers.forEach((r, i) => {
        expect(r.headers['x-ratelimit-resource']).toBe(resource);
        expect(r.headers['x-ratelimit-limit']).toBe(String(limit)); // the configured defaults of a team
        expect(r.headers['x-ratelimit-remaining']).toBe(String(limit - 1 - i));
        const reset = Number(r.headers['x-ratelimit-reset']);
        expect(reset).toBeGreaterThanOrEqual(1);
        expect(reset).toBeLessThanOrEqual(60);
      });
    expectHeaders(reads, 'reads', 1200);
    expectHeaders(submits, 'submits', 600);
    // The key without a limit of its own, of the default team, gets them too.
    expect((await h.http.get('/v1/models').set(auth(KEY_A))).headers['x-ratelimit-limit']).toBe('1200');
  });

  it('a client polling hard, past its reads per minute, can still submit', async () => {
    await awayFromMinuteEdge();
    const t = await team(h, { reads_per_minute: 5, submits_per_minute: 3 });
    const first = await submit(h, t.key, SLOW_BODY);
    expect(first.status).toBe(202);
    const polls = [];
    for (let i = 0; i < 8; i++) polls.push(await h.http.get(`/v1/tasks/${first.body.id}`).set(auth(t.key)));
    expect(polls.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const over = polls.at(-1)!;
    expectError(over, 429, 'rate_limit_error', 'reads_per_minute_exceeded', null);
    expect(over.headers['x-ratelimit-resource']).toBe('reads');
    expect(over.headers['x-ratelimit-remaining']).toBe('0');
    expect(Number(over.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(over.headers['x-ratelimit-reset']).toBe(over.headers['retry-after']);
    // Polling used none of the submissions: two more are admitted, the next is refused on its own limit.
    const more = [await submit(h, t.key, SLOW_BODY), await submit(h, t.key, SLOW_BODY), await submit(h, t.key, SLOW_BODY)];
    expect(more.map((r) => r.status)).toEqual([202, 202, 429]);
    expect(more[1]!.headers).toMatchObject({ 'x-ratelimit-resource': 'submits', 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '0' });
    const refused = more[2]!;
    expectError(refused, 429, 'rate_limit_error', 'submits_per_minute_exceeded', null);
    expect(refused.headers['x-ratelimit-resource']).toBe('submits');
    const retry = Number(refused.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60 - new Date().getUTCSeconds() + 1);
    // The usage report counts each kind apart (read by the admin: the team's reads are used up).
    const u = (await h.http.get(`/admin/teams/${t.id}/usage`).set(admin)).body;
    expect(u.quotas.team.submits_per_minute).toEqual({ limit: 3, used: 3, remaining: 0 });
    expect(u.quotas.team.reads_per_minute).toEqual({ limit: 5, used: 5, remaining: 0 });
    // Other teams are not affected.
    expect((await h.http.get('/v1/models').set(auth(KEY_A))).status).toBe(200);
  });

  it("a key's own limit is tighter than its team's, and the headers show the tighter one", async () => {
    await awayFromMinuteEdge();
    const t = await team(h, { reads_per_minute: 100 }, { reads_per_minute: 2 });
    const r1 = await h.http.get('/v1/models').set(auth(t.key));
    expect([r1.headers['x-ratelimit-limit'], r1.headers['x-ratelimit-remaining']]).toEqual(['2', '1']);
    expect((await h.http.get('/v1/models').set(auth(t.key))).status).toBe(200);
    const over = await h.http.get('/v1/models').set(auth(t.key));
    expectError(over, 429, 'rate_limit_error', 'reads_per_minute_exceeded', null);
    expect(over.body.error.message).toContain('2 reads (GET, HEAD, estimates) per minute');
  });

  it("requests a key's own limit refused do not use up its team's limit", async () => {
    await awayFromMinuteEdge();
    // Estimates are reads (they change nothing): typing in the playground cannot use up the submissions.
    const t = await team(h, { reads_per_minute: 5, submits_per_minute: 1 }, { reads_per_minute: 2 });
    const other = await t.addKey();
    const estimate = (key: string) => h.http.post('/v1/estimates').set(auth(key)).send({ prompt: 'x' });
    const limited = [];
    for (let i = 0; i < 5; i++) limited.push((await estimate(t.key)).status);
    expect(limited).toEqual([200, 200, 429, 429, 429]);
    // Only two requests of the team were admitted: the other key still has three of the team's five.
    const others = [];
    for (let i = 0; i < 4; i++) others.push((await estimate(other)).status);
    expect(others).toEqual([200, 200, 200, 429]);
  });
});

describe('allowed models', () => {
  it('a model outside the key list answers 403 model_not_allowed and reserves nothing', async () => {
    const t = await team(h, { credits_per_day: 1000 }, { allowed_models: ['sora-2'] });
    const res = await submit(h, t.key, { model: 'sora-2-pro', prompt: 'pro please' });
    expectError(res, 403, 'permission_error', 'model_not_allowed', 'model');
    expect(res.body.error.message).toContain('sora-2');
    expect((await submit(h, t.key, SORA)).status).toBe(202);
    const u = await usage(h, t.key);
    expect(u.quotas.team.credits_per_day.used).toBe(40);
    expect(u.open_reservations.map((r: { model: string }) => r.model)).toEqual(['sora-2']);
    // Another key of the same team is not restricted.
    expect((await submit(h, await t.addKey(), { model: 'sora-2-pro', prompt: 'pro please' })).status).toBe(202);
  });
});

describe('usage reports', () => {
  it('GET /v1/usage: spend by day, model and provider, remaining quotas of team and key, open reservations', async () => {
    const t = await team(h, { credits_per_day: 2000, credits_per_month: 5000, max_concurrent: 10, reads_per_minute: 500, submits_per_minute: 50 }, { credits_per_day: 1000, max_concurrent: 5 });
    const bodies = [
      SORA, // 40
      { model: 'sora-2-pro', aspect_ratio: '16:9', duration: 4 }, // 120
      { model: 'sora-2-pro', aspect_ratio: '9:16', quality: '1080p', duration: 4 }, // 200
    ];
    const ids: string[] = [];
    for (const b of bodies) ids.push((await submit(h, t.key, b)).body.id);
    const done = await Promise.all(ids.map((id) => finished(h, t.key, id)));
    expect(done.map((x) => x.status)).toEqual(['completed', 'completed', 'completed']);
    const running = await submit(h, t.key, SLOW_BODY);
    expect(running.status).toBe(202);
    // Once submitted upstream, it stays processing for the rest of the test.
    await waitFor(async () => ((await h.http.get(`/v1/tasks/${running.body.id}`).set(auth(t.key))).body.status === 'processing' ? true : undefined));

    const u = await usage(h, t.key);
    const today = new Date().toISOString().slice(0, 10);
    expect(u).toMatchObject({ object: 'usage', team: { id: t.id, name: expect.stringMatching(/^quota team/) }, day: today, month: today.slice(0, 7) });
    expect(u.spend).toEqual([
      { day: today, model: 'sora-2', provider: 'simulated', tasks: 1, credits: 40, usd: 0.4 },
      { day: today, model: 'sora-2-pro', provider: 'simulated', tasks: 2, credits: 320, usd: 3.2 },
    ]);
    expect(u.totals).toEqual({ credits: 360, usd: 3.6, tasks: 3 });
    expect(u.quotas.team).toEqual({
      credits_per_day: { limit: 2000, used: 380, remaining: 1620 },
      credits_per_month: { limit: 5000, used: 380, remaining: 4620 },
      max_concurrent: { limit: 10, used: 1, remaining: 9 },
      reads_per_minute: { limit: 500, used: expect.any(Number), remaining: expect.any(Number) },
      submits_per_minute: { limit: 50, used: expect.any(Number), remaining: expect.any(Number) },
    });
    expect(u.quotas.team.reads_per_minute.used + u.quotas.team.reads_per_minute.remaining).toBe(500);
    expect(u.quotas.team.submits_per_minute.used + u.quotas.team.submits_per_minute.remaining).toBe(50);
    expect(u.quotas.key).toEqual({
      credits_per_day: { limit: 1000, used: 380, remaining: 620 },
      credits_per_month: { limit: null, used: 380, remaining: null },
      max_concurrent: { limit: 5, used: 1, remaining: 4 },
      reads_per_minute: { limit: null, used: expect.any(Number), remaining: null },
      submits_per_minute: { limit: null, used: expect.any(Number), remaining: null },
    });
    expect(u.open_reservations).toEqual([{ task_id: running.body.id, status: 'processing', model: 'slow-model', credits_reserved: 20, created: running.body.created }]);

    // The report's window: days outside it show no spend; a reversed window is refused.
    const old = await usage(h, t.key, '?from=2001-01-01&to=2001-01-31');
    expect(old.spend).toEqual([]);
    expect(old.totals).toEqual({ credits: 0, usd: 0, tasks: 0 });
    expect(old.open_reservations).toHaveLength(1);
    expectError(await h.http.get(`/v1/usage?from=${today}&to=2001-01-01`).set(auth(t.key)), 400, 'invalid_request_error', 'invalid_value', 'from');
    expectError(await h.http.get('/v1/usage?from=yesterday').set(auth(t.key)), 400, 'invalid_request_error', 'invalid_value', 'from');

    // The admin views: the same team's usage (without key quotas), and every team's.
    const one = await h.http.get(`/admin/teams/${t.id}/usage`).set(admin);
    expect(one.status).toBe(200);
    const { key: _key, ...teamQuotas } = u.quotas;
    expect(one.body).toMatchObject({ ...u, quotas: { team: { ...teamQuotas.team, reads_per_minute: expect.any(Object), submits_per_minute: expect.any(Object) } } });
    expect(one.body.quotas.key).toBeUndefined();
    const all = await h.http.get('/admin/usage').set(admin);
    expect(all.status).toBe(200);
    expect(all.body.object).toBe('list');
    const teams = (await h.gateway.store.listTeams()).map((x) => x.id);
    expect(all.body.data.map((x: { team: { id: string } }) => x.team.id)).toEqual(teams);
    const mine = all.body.data.find((x: { team: { id: string } }) => x.team.id === t.id);
    expect(mine.spend).toEqual(u.spend);
    expect(mine.totals).toEqual(u.totals);
    expect(mine.open_reservations).toEqual(u.open_reservations);
    for (const x of all.body.data) expect(x.quotas.key).toBeUndefined();

    // The credit metrics of this team agree with the report.
    const samples = creditSamples((await h.http.get('/metrics')).text);
    expect(sumCredits(samples, { team: t.id, kind: 'settled', model: 'sora-2-pro', provider: 'simulated' })).toBe(320);
    expect(sumCredits(samples, { team: t.id, kind: 'settled' })).toBe(360);
    expect(sumCredits(samples, { team: t.id, kind: 'reserved' }) - sumCredits(samples, { team: t.id, kind: 'released' }) - sumCredits(samples, { team: t.id, kind: 'settled' })).toBe(20); // the open reservation
  });
});
