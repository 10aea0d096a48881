// What a task shows of its credits and prices: reserved, then settled and released once it finishes, for every way a
// task ends (completed, failed, cancelled; generated, hit, following, adopting a cancelled leader's job), always
// equal to the sums of its ledger rows; and prices with no floating-point noise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { auth, startTestGateway, waitFor } from './support/gateway';

type Task = components['schemas']['Task'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const HIT_CREDITS = 5;
let h: Harness;
let key: string;
let teamId: string;

beforeAll(async () => {
  h = await startTestGateway({
    cache: { enabled: true, hit_credits: HIT_CREDITS },
    providers: [
      // sora-2 at $0.10/s: 4 s is 40 credits, and $0.1 x 12 s is 1.2000000000000002 in floating point.
      { id: 'simulated', kind: 'simulated', duration_ms: 1200, fps: 4 },
      { id: 'slow', kind: 'simulated', duration_ms: 60_000, fps: 4, models: [{ model: 'slow-model', usd_per_second: { standard: 0.05 } }] },
      // $0.07/s x 4 s is 0.28000000000000003 in floating point; 28 credits.
      { id: 'doomed', kind: 'simulated', duration_ms: 200, fps: 4, failure_rate: 1, failure_kind: 'terminal', models: [{ model: 'doomed-model', usd_per_second: { standard: 0.07 } }] },
    ],
  });
  const team = await h.gateway.teams.createTeam('usage shown', { credits_per_day: 100_000 });
  teamId = team.id;
  key = (await h.gateway.teams.addKey(team.id, {})).key;
});
afterAll(async () => {
  await h?.close();
});

const submit = async (body: object) => {
  const res = await h.http.post('/v1/videos/generations').set(auth(key)).send(body);
  expect([200, 202], JSON.stringify(res.body)).toContain(res.status);
  return res.body as Task;
};
const get = async (id: string) => (await h.http.get(`/v1/tasks/${id}`).set(auth(key))).body as Task;
const cancel = async (id: string) => expect((await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(key))).status).toBe(200);
const finished = (id: string) =>
  waitFor(async () => {
    const t = await get(id);
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, 20_000);
const processing = (id: string) => waitFor(async () => ((await get(id)).status === 'processing' ? true : undefined));

const usage = (reserved: number, settled: number | null, released: number | null) => ({
  billing_rule: 'per_second',
  credits_reserved: reserved,
  credits_settled: settled,
  credits_released: released,
});

describe('a task shows what was settled and what was released', () => {
  it('for every way a task ends, as its ledger rows say', async () => {
    const sora = (prompt: string, duration = 4) => ({ model: 'sora-2', aspect_ratio: '16:9', duration, prompt });

    // Generated and completed; then a hit; then a leader with a follower, both completing.
    const made = await submit(sora('made', 12));
    expect(made.usage).toEqual(usage(120, null, null)); // open: nothing settled or released yet
    const made2 = await finished(made.id);
    expect(made2.status).toBe('completed');
    expect(made2.usage).toEqual(usage(120, 120, 0));
    expect(made2.attempts.map((a) => a.price_usd)).toEqual([1.2]);
    const hit = await submit(sora('made', 12));
    expect(hit.cache).toBe('hit');
    expect(hit.usage).toEqual(usage(HIT_CREDITS, HIT_CREDITS, 0));
    const leader = await submit(sora('together'));
    const follower = await submit(sora('together'));
    expect(follower.cache).toBe('coalesced');
    expect((await finished(leader.id)).usage).toEqual(usage(40, 40, 0));
    expect((await finished(follower.id)).usage).toEqual(usage(HIT_CREDITS, HIT_CREDITS, 0));

    // Cancelled: a task of its own, and a follower (its leader goes on).
    const slow = await submit({ model: 'slow-model', prompt: 'cancelled' });
    const slowFollower = await submit({ model: 'slow-model', prompt: 'cancelled' });
    await cancel(slowFollower.id);
    expect((await get(slowFollower.id)).usage).toEqual(usage(HIT_CREDITS, 0, HIT_CREDITS));
    await cancel(slow.id);
    expect((await get(slow.id)).usage).toEqual(usage(20, 0, 20));

    // A cancelled leader's follower adopts its job, reserves its price, and settles it.
    const cancelledLeader = await submit(sora('adopted'));
    const heir = await submit(sora('adopted'));
    await processing(cancelledLeader.id);
    await cancel(cancelledLeader.id);
    expect((await get(cancelledLeader.id)).usage).toEqual(usage(40, 0, 40));
    const adopted = await finished(heir.id);
    expect([adopted.status, adopted.cache]).toEqual(['completed', 'miss']);
    expect(adopted.usage).toEqual(usage(40, 40, 0));

    // Failed, with a follower failing with it: nothing settled, everything released.
    const doomed = await submit({ model: 'doomed-model', prompt: 'fails' });
    const doomedFollower = await submit({ model: 'doomed-model', prompt: 'fails' });
    const failed = await finished(doomed.id);
    expect(failed.status).toBe('failed');
    expect(failed.usage).toEqual(usage(28, 0, 28));
    expect(failed.attempts.map((a) => a.price_usd)).toEqual([0.28]);
    expect((await finished(doomedFollower.id)).usage).toEqual(usage(HIT_CREDITS, 0, HIT_CREDITS));

    // Every task's usage is the sum of its ledger rows, in the list as in the single read.
    const ledger = await h.gateway.store.listLedger(teamId);
    const list = (await h.http.get('/v1/tasks?limit=100').set(auth(key))).body.data as Task[];
    expect(list).toHaveLength(10);
    for (const t of list) {
      const rows = ledger.filter((e) => e.task_id === t.id);
      const sum = (kind: string) => rows.filter((e) => e.kind === kind).reduce((n, e) => n + e.credits, 0);
      const settled = sum('settle');
      expect(t.usage, t.id).toEqual(usage(sum('reserve'), settled, -sum('release') - settled));
      expect(t.usage.credits_reserved).toBe(t.usage.credits_settled! + t.usage.credits_released!);
    }
  });
});
