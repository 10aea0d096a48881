// Many submissions at once over real HTTP, against budgets that cover only some: exactly as many are accepted as
// the budget covers, the counters never go over the limit, and once everything has finished the ledger adds up
// task by task and the counters agree with it (recomputeUsage finds nothing to repair).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../src/core/gateway';
import type { Quotas } from '../src/store/types';
import { ADMIN_TOKEN, auth, startTestGateway, waitFor } from './support/gateway';
import { checkTeamLedger } from './support/ledger-check';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
/** A second gateway on the same database, as a replica would be: submissions race across two connections. */
let replica: Gateway;
let replicaUrl: string;

const SORA = { model: 'sora-2', prompt: 'race', aspect_ratio: '16:9', duration: 4 }; // 40 credits
const SLOW = { model: 'slow-model', prompt: 'race slowly' }; // 20 credits, runs for a minute

beforeAll(async () => {
  h = await startTestGateway({
    providers: [
      { id: 'simulated', kind: 'simulated', duration_ms: 250, fps: 4 },
      { id: 'slow', kind: 'simulated', duration_ms: 60_000, fps: 4, models: [{ model: 'slow-model', usd_per_second: { standard: 0.05 } }] },
    ],
  });
  replica = await createGateway(h.config, { env: { VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN }, validateResponses: true });
  replicaUrl = await replica.start();
});
afterAll(async () => {
  await replica?.stop();
  await h?.close();
});

let seq = 0;
async function team(quotas: Partial<Quotas>, ...keyQuotas: Partial<Quotas>[]) {
  const t = await h.gateway.teams.createTeam(`race ${++seq}`, quotas);
  const keys = [];
  for (const q of keyQuotas) keys.push(await h.gateway.teams.addKey(t.id, q));
  return { id: t.id, keys };
}

interface Answer {
  status: number;
  key: string;
  body: { id?: string; error?: { code: string; type: string } };
}

/** Fire all requests at once, alternating between the two gateways. */
async function burst(requests: { key: string; body: object }[]): Promise<Answer[]> {
  return Promise.all(
    requests.map(async ({ key, body }, i) => {
      const res = await fetch(`${i % 2 ? replicaUrl : h.url}/v1/videos/generations`, {
        method: 'POST',
        headers: { ...auth(key), 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, key, body: (await res.json()) as Answer['body'] };
    }),
  );
}

/** Samples the team's and keys' counters while `during` runs; returns the highest values seen. */
async function watchCounters<T>(scopes: { scope: 'team' | 'key'; id: string }[], during: () => Promise<T>) {
  const max = new Map<string, { credits: number; active: number }>(scopes.map((s) => [s.id, { credits: 0, active: 0 }]));
  const sample = async () => {
    for (const s of scopes) {
      const u = await h.gateway.store.quotaUsage(s.scope, s.id, Date.now());
      const m = max.get(s.id)!;
      m.credits = Math.max(m.credits, u.credits_day, u.credits_month);
      m.active = Math.max(m.active, u.active_tasks);
    }
  };
  const timer = setInterval(() => void sample(), 1);
  try {
    const result = await during();
    await sample();
    return { result, max };
  } finally {
    clearInterval(timer);
  }
}

async function waitAllFinished(key: string, ids: string[]) {
  await waitFor(
    async () => {
      const tasks = await Promise.all(ids.map(async (id) => (await h.http.get(`/v1/tasks/${id}`).set(auth(key))).body));
      return tasks.every((t) => ['completed', 'failed', 'cancelled'].includes(t.status)) ? tasks : undefined;
    },
    45_000,
    100,
  );
}

async function expectLedgerAddsUp(teamId: string) {
  const summary = await checkTeamLedger(h.gateway.store, teamId);
  expect(summary.problems).toEqual([]);
  return summary;
}

describe('parallel submissions against a budget', () => {
  it("60 at once against a team budget of 7 tasks: exactly 7 accepted, the rest 402; the ledger adds up", async () => {
    const t = await team({ credits_per_day: 7 * 40 }, {}, {});
    const [k1, k2] = t.keys.map((k) => k.key) as [string, string];
    const { result: answers, max } = await watchCounters([{ scope: 'team', id: t.id }], () =>
      burst(Array.from({ length: 60 }, (_, i) => ({ key: i % 3 ? k1 : k2, body: SORA }))),
    );

    const accepted = answers.filter((a) => a.status === 202);
    const refused = answers.filter((a) => a.status !== 202);
    expect(accepted).toHaveLength(7);
    expect(refused).toHaveLength(53);
    for (const r of refused) {
      expect(r.status).toBe(402);
      expect(r.body.error).toMatchObject({ type: 'insufficient_quota_error', code: 'credits_per_day_exceeded' });
    }
    expect(new Set(accepted.map((a) => a.body.id)).size).toBe(7);
    expect(max.get(t.id)!.credits).toBe(280);
    expect(max.get(t.id)!.active).toBeLessThanOrEqual(7);
    // Nothing but the accepted tasks exists.
    expect((await h.gateway.store.listTasks({ owner_id: t.id, limit: 1000 })).map((x) => x.id).sort()).toEqual(accepted.map((a) => a.body.id).sort());

    await waitAllFinished(k1, accepted.map((a) => a.body.id!));
    const summary = await expectLedgerAddsUp(t.id);
    expect(summary.completed).toHaveLength(7);
    expect(summary.settledTotal).toBe(280);
    const settleRows = summary.ledger.filter((e) => e.kind === 'settle').reduce((n, e) => n + e.credits, 0);
    expect(settleRows).toBe(summary.completed.reduce((n, x) => n + x.credits_settled!, 0));
    expect(await h.gateway.store.recomputeUsage()).toBe(0);

    const usage = (await h.http.get('/v1/usage').set(auth(k2))).body;
    expect(usage.totals).toMatchObject({ credits: 280, tasks: 7 });
    expect(usage.quotas.team.credits_per_day).toEqual({ limit: 280, used: 280, remaining: 0 });
    expect(usage.quotas.team.max_concurrent.used).toBe(0);
  });

  it('a key budget tighter than the team budget holds under the same race', async () => {
    const t = await team({ credits_per_day: 7 * 40 }, { credits_per_day: 3 * 40 }, {});
    const limited = t.keys[0]!;
    const free = t.keys[1]!;
    const { result: answers, max } = await watchCounters(
      [
        { scope: 'team', id: t.id },
        { scope: 'key', id: limited.record.id },
      ],
      () => burst(Array.from({ length: 60 }, (_, i) => ({ key: i % 2 ? limited.key : free.key, body: SORA }))),
    );
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(7);
    expect(accepted.filter((a) => a.key === limited.key).length).toBeLessThanOrEqual(3);
    for (const r of answers.filter((a) => a.status !== 202)) {
      expect(r.status).toBe(402);
      expect(r.body.error!.code).toBe('credits_per_day_exceeded');
    }
    expect(max.get(t.id)!.credits).toBe(280);
    expect(max.get(limited.record.id)!.credits).toBeLessThanOrEqual(120);

    await waitAllFinished(free.key, accepted.map((a) => a.body.id!));
    const summary = await expectLedgerAddsUp(t.id);
    expect(summary.settledTotal).toBe(280);
    expect(await h.gateway.store.recomputeUsage()).toBe(0);
  });

  it('40 at once against max_concurrent 5: exactly 5 accepted, the rest 429; cancelling them all leaves nothing', async () => {
    const t = await team({ max_concurrent: 5 }, {});
    const key = t.keys[0]!.key;
    const { result: answers, max } = await watchCounters([{ scope: 'team', id: t.id }], () =>
      burst(Array.from({ length: 40 }, () => ({ key, body: SLOW }))),
    );
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(5);
    for (const r of answers.filter((a) => a.status !== 202)) {
      expect(r.status).toBe(429);
      expect(r.body.error).toMatchObject({ type: 'rate_limit_error', code: 'max_concurrent_exceeded' });
    }
    expect(max.get(t.id)!.active).toBe(5);

    // Cancel them all while 20 more submissions race for the slots being freed.
    const racing = await Promise.all([
      ...accepted.map((a) => fetch(`${h.url}/v1/tasks/${a.body.id}/cancel`, { method: 'POST', headers: auth(key) }).then((r) => r.status)),
      burst(Array.from({ length: 20 }, () => ({ key, body: SLOW }))),
    ]);
    const cancels = racing.slice(0, accepted.length) as number[];
    const second = racing.at(-1) as Answer[];
    expect(cancels).toEqual(accepted.map(() => 200));
    const secondAccepted = second.filter((a) => a.status === 202);
    expect(secondAccepted.length).toBeLessThanOrEqual(5);
    for (const r of second.filter((a) => a.status !== 202)) expect(r.body.error!.code).toBe('max_concurrent_exceeded');
    expect((await h.gateway.store.quotaUsage('team', t.id, Date.now())).active_tasks).toBe(secondAccepted.length);
    for (const a of secondAccepted) expect((await h.http.post(`/v1/tasks/${a.body.id}/cancel`).set(auth(key))).status).toBe(200);

    const summary = await expectLedgerAddsUp(t.id);
    expect(summary.tasks).toHaveLength(5 + secondAccepted.length);
    expect(summary.tasks.every((x) => x.status === 'cancelled')).toBe(true);
    expect(summary.settledTotal).toBe(0);
    expect(await h.gateway.store.recomputeUsage()).toBe(0);
  });

  it('cancels racing submissions under a credit budget never let the counter pass the limit', async () => {
    const t = await team({ credits_per_day: 100 }, {}); // five slow tasks' worth
    const key = t.keys[0]!.key;
    const first = (await burst(Array.from({ length: 10 }, () => ({ key, body: SLOW })))).filter((a) => a.status === 202);
    expect(first).toHaveLength(5);
    const { result, max } = await watchCounters([{ scope: 'team', id: t.id }], () =>
      Promise.all([
        ...first.map((a) => fetch(`${replicaUrl}/v1/tasks/${a.body.id}/cancel`, { method: 'POST', headers: auth(key) })),
        burst(Array.from({ length: 30 }, () => ({ key, body: SLOW }))),
      ]),
    );
    expect(max.get(t.id)!.credits).toBeLessThanOrEqual(100);
    const second = (result.at(-1) as Answer[]).filter((a) => a.status === 202);
    expect(second.length).toBeLessThanOrEqual(5);
    for (const a of second) await h.http.post(`/v1/tasks/${a.body.id}/cancel`).set(auth(key));

    const summary = await expectLedgerAddsUp(t.id);
    expect(summary.tasks).toHaveLength(5 + second.length);
    expect(await h.gateway.store.recomputeUsage()).toBe(0);
  });
});
