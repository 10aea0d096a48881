// Webhooks end to end: a real gateway delivers to a real HTTPS receiver on 127.0.0.1 (its own CA, trusted through
// outbound.ca_file), which verifies every Standard Webhooks signature with the `standardwebhooks` package.
import { describe, expect, it, type TestContext } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { Webhook } from 'standardwebhooks';
import { createGateway, type GatewayOptions } from '../src/core/gateway';
import { captureLogger } from './support/log-capture';
import { createWebhookSecrets } from '../src/core/webhook-secrets';
import { ADMIN_TOKEN, KEY_A, KEY_B, auth, startTestGateway, waitFor, type ConfigOverrides } from './support/gateway';
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

async function rig(ctx: TestContext, overrides: ConfigOverrides = {}, answer?: (d: Delivery) => Answer, options: GatewayOptions = {}): Promise<Rig> {
  let h: Harness | undefined;
  const receiver = await startWebhookReceiver({
    // Each team's secrets in force; a delivery must carry a signature by one of them.
    secrets: async () => {
      const teams = await h!.gateway.store.listTeams();
      const current = await Promise.all(teams.map((t) => h!.gateway.secrets.current(t.id)));
      return current.flatMap((s) => (s === undefined ? [] : [s.secret]));
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
  }, options);
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

  it("a follower's own cancel, and a cancelled leader whose heir then completes: one event each", async (ctx) => {
    const r = await rig(ctx, { cache: { enabled: true }, providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 2500, fps: 4 }] });
    const leader = await submit(r, { ...BODY, callback_url: r.hook('/leader') });
    const heir = await submit(r, { ...BODY, callback_url: r.hook('/heir') });
    const quitter = await submit(r, { ...BODY, callback_url: r.hook('/quitter') });
    expect([heir.cache, quitter.cache]).toEqual(['coalesced', 'coalesced']);
    expect((await r.h.http.post(`/v1/tasks/${quitter.id}/cancel`).set(auth(KEY_A))).status).toBe(200);
    const [dq] = await delivered(r, quitter.id);
    expect(dq!.body).toEqual(await query(r, quitter.id));
    expect((dq!.body as Task).status).toBe('cancelled');
    expect((dq!.seen as Seen).ledger).toEqual(['reserve', 'release']);

    expect((await r.h.http.post(`/v1/tasks/${leader.id}/cancel`).set(auth(KEY_A))).status).toBe(200);
    const [dl] = await delivered(r, leader.id);
    expect((dl!.body as Task).status).toBe('cancelled');
    const [dh] = await delivered(r, heir.id);
    expect((dh!.body as Task).status).toBe('completed');
    expect(dh!.body).toEqual(await query(r, heir.id));
    expect((dh!.seen as Seen).ledger).toContain('settle');
    for (const id of [leader.id, heir.id, quitter.id]) expect(await r.h.gateway.store.listTaskEvents(id)).toHaveLength(1);
    expect(r.receiver.badSignatures).toEqual([]);
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
    const [event] = await waitFor(async () => {
      const events = await r.h.gateway.store.listTaskEvents(task.id);
      return events[0]?.state === 'delivered' ? events : undefined;
    });
    expect(event).toMatchObject({ state: 'delivered', failures: 3 });
    const attempts = await r.h.gateway.store.listDeliveryAttempts([event!.id]);
    // The schedule is 100, 200, 400 ms, each counted from the start of the failed attempt: each wait at least its
    // step, and in that order (the receiver sees the same gaps less the differences in connection set-up).
    const gaps = attempts.slice(1).map((a, i) => a.started_at_ms - attempts[i]!.started_at_ms);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual([100, 200, 400][i]!));
    expect(gaps[1]! > gaps[0]! && gaps[2]! > gaps[1]!).toBe(true);
    expect(attempts.map((a) => [a.status_code, a.error])).toEqual([
      [500, 'the receiver answered 500'],
      [500, 'the receiver answered 500'],
      [500, 'the receiver answered 500'],
      [204, null],
    ]);
    await new Promise((res) => setTimeout(res, 300));
    expect(deliveriesOf(r, task.id)).toHaveLength(4); // nothing after the success
  });

  it('retries arrive on schedule: woken when due, not at the next tick, the wait counted from the attempt\'s start', async (ctx) => {
    let calls = 0;
    // A tick once a minute: only the wake at the due time brings the retries within the test's time.
    const r = await rig(ctx, { webhooks: { retry_schedule_ms: [1500, 200], timeout_ms: 1500, poll_interval_ms: 60_000 } }, () => (++calls === 1 ? 'hang' : calls === 2 ? 500 : 204));
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    await delivered(r, task.id, 3);
    const [event] = await waitFor(async () => {
      const events = await r.h.gateway.store.listTaskEvents(task.id);
      return events[0]?.state === 'delivered' ? events : undefined;
    });
    expect(event).toMatchObject({ failures: 2 });
    const starts = (await r.h.gateway.store.listDeliveryAttempts([event!.id])).map((a) => a.started_at_ms);
    const [hangToRetry, failToRetry] = starts.slice(1).map((at, i) => at - starts[i]!);
    // The first attempt hangs for its 1500 ms timeout; its retry is due 1500 ms after it started, not after it ended (3000).
    expect(hangToRetry).toBeGreaterThanOrEqual(1500);
    expect(hangToRetry).toBeLessThan(2900);
    expect(failToRetry).toBeGreaterThanOrEqual(200);
    expect(failToRetry).toBeLessThan(60_000);
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

describe('webhooks: visible, redeliverable, per door, rotated', () => {
  it('dead-letters after the last retry; the task lists every attempt, the admin the dead letter, and a redelivery succeeds', async (ctx) => {
    let fail = true;
    const r = await rig(ctx, {}, () => (fail ? 503 : 200));
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    expect((await query(r, task.id)).callback_url).toBe(r.hook());
    const list = async (key = KEY_A) => r.h.http.get(`/v1/tasks/${task.id}/deliveries`).set(auth(key));
    const dead = await waitFor(async () => {
      const res = await list();
      return res.body.data?.[0]?.state === 'dead' ? res.body : undefined;
    });
    const event = dead.data[0];
    expect(event).toMatchObject({ object: 'webhook.event', task_id: task.id, type: 'completed', url: r.hook(), next_attempt_at: null, delivered_at: null });
    expect(event.attempts.map((a: { n: number; status_code: number; error: string }) => [a.n, a.status_code, a.error])).toEqual(
      [1, 2, 3, 4].map((n) => [n, 503, 'the receiver answered 503']),
    );
    expect(deliveriesOf(r, task.id).map((d) => d.id)).toEqual(Array(4).fill(event.id));
    // Another team sees nothing of it.
    expect((await list(KEY_B)).status).toBe(404);
    expect((await r.h.http.post(`/v1/tasks/${task.id}/deliveries/redeliver`).set(auth(KEY_B))).body.error.code).toBe('task_not_found');

    const team = (await r.h.gateway.store.findTeamByName('default'))!.id;
    const letters = await r.h.http.get(`/admin/teams/${team}/dead-letters`).set(auth(ADMIN_TOKEN));
    expect(letters.status).toBe(200);
    expect(letters.body.data.map((e: { id: string }) => e.id)).toEqual([event.id]);
    expect((await r.h.http.get(`/admin/teams/${r.h.teamB.id}/dead-letters`).set(auth(ADMIN_TOKEN))).body.data).toEqual([]);
    expect((await r.h.gateway.metrics.registry.getSingleMetricAsString('vidgate_webhook_outbox_events'))).toMatch(/state="dead"} 1/);

    fail = false;
    const again = await r.h.http.post(`/v1/tasks/${task.id}/deliveries/redeliver`).set(auth(KEY_A));
    expect(again.status).toBe(202);
    expect(again.body.data[0]).toMatchObject({ id: event.id, state: 'pending' });
    const ds = await delivered(r, task.id, 5);
    expect(ds[4]!.id).toBe(event.id);
    const done = await waitFor(async () => {
      const res = await list();
      return res.body.data[0].state === 'delivered' ? res.body.data[0] : undefined;
    });
    expect(done.attempts.at(-1)).toMatchObject({ n: 5, status_code: 200, error: null });
    expect((await r.h.http.get(`/admin/teams/${team}/dead-letters`).set(auth(ADMIN_TOKEN))).body.data).toEqual([]);
    const metrics = await r.h.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/vidgate_webhook_deliveries_total{outcome="dead_lettered"} 1/);
    expect(metrics).toMatch(/vidgate_webhook_deliveries_total{outcome="delivered"} 1/);
    expect(r.receiver.badSignatures).toEqual([]);
  });

  it('parallel redeliveries while an attempt is in flight: every POST the receiver got is listed as an attempt', async (ctx) => {
    let n = 0;
    // The second delivery hangs until the timeout, so that the redeliveries come while it is being sent.
    const r = await rig(ctx, { webhooks: { retry_schedule_ms: [100], timeout_ms: 1500, poll_interval_ms: 50 } }, () => (++n === 2 ? 'hang' : 200));
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    await delivered(r, task.id, 1);
    const redeliver = () => r.h.http.post(`/v1/tasks/${task.id}/deliveries/redeliver`).set(auth(KEY_A));
    expect((await redeliver()).status).toBe(202);
    await delivered(r, task.id, 2); // in flight
    const answers = await Promise.all(Array.from({ length: 10 }, redeliver));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    const done = await waitFor(async () => {
      const res = await r.h.http.get(`/v1/tasks/${task.id}/deliveries`).set(auth(KEY_A));
      const event = res.body.data[0];
      return event.state === 'delivered' && event.attempts.length === deliveriesOf(r, task.id).length ? event : undefined;
    }, 30_000);
    // The hanging attempt recorded as a timeout, then sent once more (not ten times, and never twice at once).
    expect(done.attempts.map((a: { status_code: number | null }) => a.status_code)).toEqual([200, null, 200]);
    expect(done.delivered_at).not.toBeNull();
    await new Promise((res) => setTimeout(res, 300));
    expect(deliveriesOf(r, task.id)).toHaveLength(3);
    expect(new Set(deliveriesOf(r, task.id).map((d) => d.id)).size).toBe(1);
  });

  it('a redelivery of a task without a callback answers 409 in the documented shape', async (ctx) => {
    const r = await rig(ctx);
    const task = await submit(r);
    const res = await r.h.http.post(`/v1/tasks/${task.id}/deliveries/redeliver`).set(auth(KEY_A));
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: { type: 'conflict_error', code: 'no_webhook_events', message: expect.stringContaining('no callback_url'), param: null } });
    expect((await r.h.http.get('/v1/tasks/task_nope/deliveries').set(auth(KEY_A))).status).toBe(404);
    // A redelivery takes no body: an unknown field is refused, on both doors.
    for (const url of [`/v1/tasks/${task.id}/deliveries/redeliver`, `/v1/videos/${task.id}/deliveries/redeliver`]) {
      const bad = await r.h.http.post(url).set(auth(KEY_A)).send({ force: true });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ type: 'invalid_request_error', message: expect.stringContaining('force') });
      expect((await r.h.http.post(url).set(auth(KEY_A)).send({})).status).toBe(409);
    }
  });

  it("a task of the OpenAI door sends OpenAI's event, and lists its deliveries under /v1/videos/{id}", async (ctx) => {
    const r = await rig(ctx);
    const res = await r.h.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'a paper boat', model: 'sora-2', seconds: '4', size: '1280x720', callback_url: r.hook('/openai') });
    expect(res.status).toBe(200);
    const [d] = await delivered(r, res.body.id);
    expect(d!.body).toEqual({ id: d!.id, object: 'event', type: 'video.completed', created_at: expect.any(Number), data: { id: res.body.id } });
    expect((d!.seen as Seen).ledger).toEqual(['reserve', 'release', 'settle']);
    const listed = await waitFor(async () => {
      const l = await r.h.http.get(`/v1/videos/${res.body.id}/deliveries`).set(auth(KEY_A));
      return l.body.data?.[0]?.state === 'delivered' ? l.body : undefined;
    });
    expect(listed.data[0].id).toBe(d!.id);
    expect((await r.h.http.get(`/v1/videos/${res.body.id}/deliveries`).set(auth(KEY_B))).status).toBe(404);
    const refused = await r.h.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'x', callback_url: 'https://127.0.0.1/hook' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'invalid_url', param: 'callback_url' });
  });

  it('a rotation signs with both secrets during the grace, then with the new one alone', async (ctx) => {
    const r = await rig(ctx);
    const team = (await r.h.gateway.store.findTeamByName('default'))!.id;
    const secretUrl = `/admin/teams/${team}/webhook-secret`;
    expect((await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN))).body.error.code).toBe('webhook_secret_not_found');
    const first = await r.h.http.post(secretUrl).set(auth(ADMIN_TOKEN)).send({});
    expect(first.status).toBe(201);
    expect(first.body.secret).toMatch(/^whsec_/);
    expect((await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN))).body.secret).toBe(first.body.secret);
    const second = await r.h.http.post(secretUrl).set(auth(ADMIN_TOKEN)).send({ grace_s: 3600 });
    expect(second.body.previous_expires_at - second.body.created).toBe(3600);
    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    const [d] = await delivered(r, task.id);
    expect(d!.signatures).toBe(2);
    for (const secret of [first.body.secret, second.body.secret]) expect(() => new Webhook(secret).verify(d!.raw, d!.headers)).not.toThrow();
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(d!.raw, d!.headers)).toThrow();
    expect(first.body.previous_expires_at).toBeNull(); // nothing before it
    expect((await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN))).body.previous_expires_at).toBe(second.body.previous_expires_at);

    // A second rotation within the grace: the current and the previous sign, the first stops (never three).
    const again = await r.h.http.post(secretUrl).set(auth(ADMIN_TOKEN)).send({ grace_s: 60 });
    expect(again.body.previous_expires_at - again.body.created).toBe(60);
    const at = new Date();
    const header = await r.h.gateway.secrets.sign(team, 'msg_x', at, '{}');
    const signed = { 'webhook-id': 'msg_x', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': header };
    expect(header.split(' ')).toHaveLength(2);
    for (const secret of [again.body.secret, second.body.secret]) expect(() => new Webhook(secret).verify('{}', signed)).not.toThrow();
    expect(() => new Webhook(first.body.secret).verify('{}', signed)).toThrow();

    await r.h.http.post(secretUrl).set(auth(ADMIN_TOKEN)).send({ grace_s: 0 });
    const third = (await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN))).body.secret as string;
    expect(third).not.toBe(again.body.secret);
    const later = await submit(r, { ...BODY, prompt: 'another', callback_url: r.hook() });
    const [dl] = await delivered(r, later.id);
    expect(dl!.signatures).toBe(1);
    expect(() => new Webhook(third).verify(dl!.raw, dl!.headers)).not.toThrow();
    expect(() => new Webhook(again.body.secret).verify(dl!.raw, dl!.headers)).toThrow();
    // The secrets are stored encrypted: the database file does not hold them.
    const { readFileSync } = await import('node:fs');
    const db = readFileSync(r.h.config.store.sqlite_path);
    expect(db.includes(Buffer.from(third.slice(6)))).toBe(false);
    expect(r.receiver.badSignatures).toEqual([]);
  });
});

describe('webhooks: a secrets key lost or replaced', () => {
  const KEY_HEX = 'a1'.repeat(32);
  const otherKey = (byte: number) => Buffer.alloc(32, byte);

  it('is named at start; deliveries fail recorded and dead-letter; the admin read answers 409; a rotation mends it', async (ctx) => {
    const r = await rig(ctx, {}, undefined, { env: { VIDGATE_WEBHOOK_SECRETS_KEY: KEY_HEX } });
    const team = (await r.h.gateway.store.findTeamByName('default'))!.id;
    // The team's secret as another key made it (the key file lost, or the variable changed since).
    await createWebhookSecrets(r.h.gateway.store, otherKey(2), Date.now).rotate(team, 0);

    const captured = captureLogger();
    const restarted = await createGateway(r.h.config, { log: captured.log, env: { VIDGATE_WEBHOOK_SECRETS_KEY: KEY_HEX } });
    await restarted.stop();
    const warning = captured.entries().find((l) => l.msg.includes('cannot be decrypted'));
    expect(warning).toMatchObject({ level: 'error', teams: [team], key_source: 'VIDGATE_WEBHOOK_SECRETS_KEY', fix: expect.stringContaining('webhook-secret') });

    const secretUrl = `/admin/teams/${team}/webhook-secret`;
    const read = await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN));
    expect(read.status).toBe(409);
    expect(read.body).toEqual({ error: { type: 'conflict_error', code: 'webhook_secret_unreadable', message: expect.stringContaining('rotate'), param: null } });

    const task = await submit(r, { ...BODY, callback_url: r.hook() });
    const dead = await waitFor(async () => {
      const res = await r.h.http.get(`/v1/tasks/${task.id}/deliveries`).set(auth(KEY_A));
      return res.body.data?.[0]?.state === 'dead' ? res.body.data[0] : undefined;
    });
    expect(dead.attempts.map((a: { status_code: number | null; error: string }) => [a.status_code, a.error])).toEqual(
      Array(4).fill([null, expect.stringMatching(/^not sent: no signing secret .* rotate the team's webhook secret$/)]),
    );
    expect(deliveriesOf(r, task.id)).toEqual([]); // never sent unsigned

    // A rotation with the default grace: a new current secret, the unreadable one dropped (not kept in grace).
    const rotated = await r.h.http.post(secretUrl).set(auth(ADMIN_TOKEN)).send({});
    expect(rotated.status).toBe(201);
    expect(rotated.body.previous_expires_at).toBeNull();
    expect((await r.h.http.get(secretUrl).set(auth(ADMIN_TOKEN))).body).toMatchObject({ secret: rotated.body.secret, previous_expires_at: null });
    expect((await r.h.http.post(`/v1/tasks/${task.id}/deliveries/redeliver`).set(auth(KEY_A))).status).toBe(202);
    const [d] = await delivered(r, task.id);
    expect(d!.signatures).toBe(1);
    expect(() => new Webhook(rotated.body.secret).verify(d!.raw, d!.headers)).not.toThrow();
    expect(r.receiver.badSignatures).toEqual([]);
  });

  it('an unreadable previous secret in its grace never blocks the current one', async (ctx) => {
    const r = await rig(ctx, {}, undefined, { env: { VIDGATE_WEBHOOK_SECRETS_KEY: KEY_HEX } });
    const { store, secrets } = r.h.gateway;
    const team = (await store.findTeamByName('default'))!.id;
    const readable = await secrets.rotate(team, 0);
    const [record] = await store.signingSecrets(team, Date.now());
    const unreadable = await createWebhookSecrets(store, otherKey(3), Date.now).rotate(team, 0);
    const [other] = await store.signingSecrets(team, unreadable.created_at_ms);
    // The readable secret current again, the unreadable one kept in a grace beside it.
    await store.putWebhookSecret({ ...record!, id: 'whs_again', created_at_ms: Date.now() + 1 }, { id: other!.id, expires_at_ms: Date.now() + 3_600_000 });
    expect(await store.signingSecrets(team, Date.now() + 2)).toHaveLength(2);
    await new Promise((res) => setTimeout(res, 5));
    const header = await secrets.sign(team, 'msg_1', new Date(), '{}');
    expect(header.split(' ')).toHaveLength(1);
    expect(() => new Webhook(readable.secret).verify('{}', { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': header })).not.toThrow();
  });
});

describe('webhooks: the address is checked again at delivery', () => {
  it('a name public at submission that resolves to 127.0.0.1 at delivery is refused, recorded, and never connected to', async (ctx) => {
    // The injected resolver stands for DNS: a public address first, then a rebinding to loopback.
    let address = '93.184.215.14';
    const r = await rig(ctx, { webhooks: { retry_schedule_ms: [], poll_interval_ms: 50 } }, undefined, {
      resolve: async (host) => (host === 'hooks.rebind.example.com' ? [{ address, family: 4 }] : Promise.reject(new Error(`ENOTFOUND ${host}`))),
    });
    await r.h.gateway.deliverer.stop(5000); // nothing is sent while the name still resolves to the public address
    const port = new URL(r.receiver.origin).port;
    const task = await submit(r, { ...BODY, callback_url: `https://hooks.rebind.example.com:${port}/hook` });
    address = '127.0.0.1';
    const before = r.receiver.connections();
    r.h.gateway.deliverer.start();
    const [event] = await waitFor(async () => {
      const events = await r.h.gateway.store.listTaskEvents(task.id);
      return events[0]?.state === 'dead' ? events : undefined;
    });
    const attempts = await r.h.gateway.store.listDeliveryAttempts([event!.id]);
    expect(attempts).toEqual([expect.objectContaining({ n: 1, status_code: null, error: 'refused: the URL resolves only to private or reserved addresses' })]);
    expect(r.receiver.connections()).toBe(before);
    expect(r.receiver.deliveries).toEqual([]);
  });
});
