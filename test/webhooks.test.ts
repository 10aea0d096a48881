// Webhooks end to end: a real gateway delivers to a real HTTPS receiver on 127.0.0.1 (its own CA, trusted through
// outbound.ca_file), which verifies every Standard Webhooks signature with the `standardwebhooks` package.
import { describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { KEY_A, auth, startTestGateway, waitFor, type ConfigOverrides } from './support/gateway';
import { startWebhookReceiver, type Answer, type Delivery, type Receiver } from './support/webhook-receiver';

type Task = components['schemas']['Task'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const BODY = { model: 'sora-2', prompt: 'A lighthouse at dusk', aspect_ratio: '16:9', duration: 4 } as const;

interface Rig {
  h: Harness;
  receiver: Receiver;
  /** The callback URL of a path on the receiver. */
  hook(path?: string): string;
}

/** What the ledger holds for the task a delivery announces, at the moment it arrives. */
type Seen = { task_id: string; ledger: string[] };

async function rig(ctx: TestContext, overrides: ConfigOverrides = {}, answer?: (d: Delivery) => Answer): Promise<Rig> {
  let h: Harness | undefined;
  const receiver = await startWebhookReceiver({
    // Each team's secrets in force; a delivery must carry a signature by one of them.
    secrets: async () => {
      const teams = await h!.gateway.store.listTeams();
      const current = await Promise.all(teams.map((t) => h!.gateway.secrets.current(t.id)));
      return current.filter((s): s is string => s !== undefined);
    },
    ...(answer && { answer }),
    onDelivery: async (d): Promise<Seen> => {
      const body = d.body as { id: string; object: string; data?: { id: string } };
      const taskId = body.object === 'event' ? body.data!.id : body.id;
      const task = await h!.gateway.store.getTask(taskId);
      const ledger = (await h!.gateway.store.listLedger(task!.owner_id)).filter((e) => e.task_id === taskId).map((e) => e.kind);
      return { task_id: taskId, ledger };
    },
  });
  h = await startTestGateway({
    outbound: { trusted_origins: [receiver.origin], ca_file: receiver.caFile },
    webhooks: { retry_schedule_ms: [100, 200, 400], poll_interval_ms: 50 },
    ...overrides,
  });
  ctx.onTestFinished(async () => {
    await h!.close();
    await receiver.close();
  });
  return { h, receiver, hook: (path = '/hook') => `${receiver.origin}${path}` };
}

async function submit(r: Rig, body: object = BODY, key = KEY_A): Promise<Task> {
  const res = await r.h.http.post('/v1/videos/generations').set(auth(key)).send(body);
  expect([200, 202], JSON.stringify(res.body)).toContain(res.status);
  return res.body as Task;
}

/** GET /v1/tasks/{id} over the gateway's own listener (the links in a webhook body name it). */
async function query(r: Rig, id: string, key = KEY_A): Promise<Task> {
  const res = await fetch(`${r.h.url}/v1/tasks/${id}`, { headers: auth(key) });
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
}

const deliveriesOf = (r: Rig, taskId: string) => r.receiver.deliveries.filter((d) => (d.seen as Seen).task_id === taskId);

async function delivered(r: Rig, taskId: string, count = 1): Promise<Delivery[]> {
  return waitFor(async () => {
    const ds = deliveriesOf(r, taskId);
    return ds.length >= count ? ds : undefined;
  }, 30_000);
}

describe('webhooks: the documented body, signed, after the settlement', () => {
  it('a completed task: the body of GET /v1/tasks/{id}, sent after its credits were settled', async (ctx) => {
    const r = await rig(ctx);
    const task = await submit(r, { ...BODY, callback_url: r.hook('/done') });
    const [d] = await delivered(r, task.id);
    expect(d!.path).toBe('/done');
    expect(d!.id).toMatch(/^evt_/);
    expect(d!.body).toEqual(await query(r, task.id));
    expect((d!.body as Task).status).toBe('completed');
    expect((d!.seen as Seen).ledger).toEqual(['reserve', 'release', 'settle']);
    // A task without a callback URL sends nothing.
    const silent = await submit(r);
    await waitFor(async () => ((await query(r, silent.id)).status === 'completed' ? true : undefined));
    expect(await r.h.gateway.store.listTaskEvents(silent.id)).toEqual([]);
    expect(r.receiver.badSignatures).toEqual([]);
  });

  it('a cache hit at once, and a follower with its leader, each with its own body', async (ctx) => {
    const r = await rig(ctx, { cache: { enabled: true } });
    const [leader, follower] = await Promise.all([
      submit(r, { ...BODY, callback_url: r.hook('/leader') }),
      submit(r, { ...BODY, callback_url: r.hook('/follower') }),
    ]);
    const caches = [leader.cache, follower.cache].sort();
    expect(caches).toEqual(['coalesced', 'miss']);
    const [dl] = await delivered(r, leader.id);
    const [df] = await delivered(r, follower.id);
    expect(dl!.body).toEqual(await query(r, leader.id));
    expect(df!.body).toEqual(await query(r, follower.id));
    expect(dl!.id).not.toBe(df!.id);
    for (const d of [dl!, df!]) expect((d.seen as Seen).ledger).toEqual(['reserve', 'release', 'settle']);

    const hit = await submit(r, { ...BODY, callback_url: r.hook('/hit') });
    expect(hit.cache).toBe('hit');
    const [dh] = await delivered(r, hit.id);
    expect(dh!.body).toEqual(await query(r, hit.id));
    expect((dh!.seen as Seen).ledger).toEqual(['reserve', 'release', 'settle']);
    expect(r.receiver.badSignatures).toEqual([]);
  });

  it('a cancelled task, after its reservation was released', async (ctx) => {
    const r = await rig(ctx, { providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 60_000, fps: 4 }] });
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    expect((await r.h.http.post(`/v1/tasks/${task.id}/cancel`).set(auth(KEY_A))).status).toBe(200);
    const [d] = await delivered(r, task.id);
    expect(d!.body).toEqual(await query(r, task.id));
    expect((d!.body as Task).status).toBe('cancelled');
    expect((d!.seen as Seen).ledger).toEqual(['reserve', 'release']);
  });

  it('a failed task, after its reservation was released', async (ctx) => {
    const r = await rig(ctx, { providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 200, fps: 4, failure_rate: 1, failure_kind: 'terminal' }] });
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    const [d] = await delivered(r, task.id);
    expect(d!.body).toEqual(await query(r, task.id));
    expect((d!.body as Task).status).toBe('failed');
    expect((d!.seen as Seen).ledger).toEqual(['reserve', 'release']);
  });
});

describe('webhooks: retries, dead letters, slow receivers', () => {
  it('retries a 500 after the schedule, with the same webhook-id, until a 2xx', async (ctx) => {
    let calls = 0;
    const r = await rig(ctx, {}, () => (++calls <= 3 ? 500 : 204));
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    const ds = await delivered(r, task.id, 4);
    expect(new Set(ds.map((d) => d.id)).size).toBe(1);
    const gaps = ds.slice(1).map((d, i) => d.at_ms - ds[i]!.at_ms);
    // The schedule is 100, 200, 400 ms: each wait at least its step, and in that order.
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual([100, 200, 400][i]! - 5));
    expect(gaps[1]! > gaps[0]! && gaps[2]! > gaps[1]!).toBe(true);
    const [event] = await r.h.gateway.store.listTaskEvents(task.id);
    expect(event).toMatchObject({ state: 'delivered', failures: 3 });
    const attempts = await r.h.gateway.store.listDeliveryAttempts([event!.id]);
    expect(attempts.map((a) => [a.status_code, a.error])).toEqual([
      [500, 'the receiver answered 500'],
      [500, 'the receiver answered 500'],
      [500, 'the receiver answered 500'],
      [204, null],
    ]);
    await new Promise((res) => setTimeout(res, 300));
    expect(deliveriesOf(r, task.id)).toHaveLength(4); // nothing after the success
  });

  it('a slow receiver fails by the timeout and holds up no other delivery', async (ctx) => {
    const r = await rig(ctx, { webhooks: { retry_schedule_ms: [60_000], timeout_ms: 5000, poll_interval_ms: 50 } }, (d) => (d.path === '/slow' ? 'hang' : 200));
    const slow = await submit(r, { ...BODY, callback_url: r.hook('/slow') });
    await delivered(r, slow.id);
    const fast = await submit(r, { ...BODY, callback_url: r.hook('/fast') });
    const [df] = await delivered(r, fast.id);
    const [ds] = deliveriesOf(r, slow.id);
    const [slowEvent] = await r.h.gateway.store.listTaskEvents(slow.id);
    const attempts = await waitFor(async () => {
      const a = await r.h.gateway.store.listDeliveryAttempts([slowEvent!.id]);
      return a.length > 0 ? a : undefined;
    });
    expect(attempts[0]).toMatchObject({ status_code: null, error: 'no answer within 5000 ms' });
    expect(attempts[0]!.latency_ms).toBeGreaterThanOrEqual(4900);
    expect((await r.h.gateway.store.listTaskEvents(slow.id))[0]).toMatchObject({ state: 'pending', failures: 1 });
    // The fast one arrived while the slow one was still waiting for its answer.
    expect(df!.at_ms).toBeLessThan(ds!.at_ms + attempts[0]!.latency_ms);
  });
});
