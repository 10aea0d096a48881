// Idempotency-Key on both create routes: a retry with the same key and body is the original task, charged once;
// the same key with another body is refused; concurrent retries make one task and one charge.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTeamLedger } from './support/ledger-check';
import { auth, KEY_A, KEY_B, startTestGateway, waitFor } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
let offsetMs = 0;

beforeAll(async () => {
  h = await startTestGateway({ providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 300, fps: 4 }] }, { now: () => Date.now() + offsetMs });
});
afterAll(() => h.close());

const teamId = async (name: string) => (await h.gateway.store.findTeamByName(name))!.id;
const native = (key: string, body: object, apiKey = KEY_A) =>
  h.http.post('/v1/videos/generations').set(auth(apiKey)).set('Idempotency-Key', key).send({ prompt: 'idempotent', duration: 4, ...body });
const openai = (idem: string, prompt: string, apiKey = KEY_A) =>
  h.http.post('/v1/videos').set(auth(apiKey)).set('Idempotency-Key', idem).field('prompt', prompt).field('seconds', '4');

async function settledLedger(name: string) {
  const id = await teamId(name);
  await waitFor(async () => ((await h.gateway.store.listOpenTasks(id)).length === 0 ? true : undefined), 30_000, 100);
  return checkTeamLedger(h.gateway.store, id);
}

describe('Idempotency-Key', () => {
  it('a retry with the same key and body answers the original task and is not charged again (native door)', async () => {
    const first = await native('retry-1', { prompt: 'retry me' });
    expect(first.status).toBe(202);
    const again = await native('retry-1', { prompt: 'retry me' });
    expect([200, 202]).toContain(again.status);
    expect(again.body.id).toBe(first.body.id);
    const reserves = (await h.gateway.store.listLedger(await teamId('default'))).filter((e) => e.task_id === first.body.id && e.kind === 'reserve');
    expect(reserves).toHaveLength(1);
  });

  it('the same key with another body answers 409 idempotency_key_reused, creating nothing', async () => {
    const first = await openai('reuse-1', 'the first body');
    expect(first.status).toBe(200);
    const before = (await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000 })).length;
    const other = await openai('reuse-1', 'another body');
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ code: 'idempotency_key_reused', type: 'conflict_error', param: 'Idempotency-Key' });
    expect(other.body.error.message).toContain(first.body.id);
    expect((await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000 })).length).toBe(before);
  });

  it('a retry after the original was deleted answers 409 and is not charged again', async () => {
    const first = await openai('deleted-1', 'delete me, then retry');
    expect(first.status).toBe(200);
    expect((await h.http.delete(`/v1/videos/${first.body.id}`).set(auth(KEY_A))).status).toBe(200);
    const tasksBefore = (await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000, include_deleted: true })).length;
    const retry = await openai('deleted-1', 'delete me, then retry');
    expect(retry.status).toBe(409);
    expect(retry.body.error).toMatchObject({ code: 'idempotency_key_reused', param: 'Idempotency-Key' });
    expect(retry.body.error.message).toContain('deleted');
    expect((await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000, include_deleted: true })).length).toBe(tasksBefore);
  });

  it('a blank key is refused (400), not taken as no key, on every create route', async () => {
    const before = (await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000 })).length;
    for (const res of [await native('', { prompt: 'blank key' }), await native('   ', { prompt: 'blank key' }), await openai('', 'blank key')]) {
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_value', type: 'invalid_request_error' });
      expect(res.body.error.param.toLowerCase()).toBe('idempotency-key'); // the spec's check names headers in lower case
    }
    expect((await h.gateway.store.listTasks({ owner_id: await teamId('default'), limit: 1000 })).length).toBe(before);
  });

  it('keys are per team: another team with the same key gets its own task', async () => {
    const a = await openai('shared-key', 'same words');
    const b = await openai('shared-key', 'same words', KEY_B);
    expect(b.status).toBe(200);
    expect(b.body.id).not.toBe(a.body.id);
  });

  it('a key is honoured for 24 hours, then a new task is made', async () => {
    const first = await openai('day-old', 'a day later');
    offsetMs += 24 * 3600 * 1000 + 1000;
    try {
      const later = await openai('day-old', 'a day later');
      expect(later.status).toBe(200);
      expect(later.body.id).not.toBe(first.body.id);
    } finally {
      offsetMs = 0;
    }
  });

  it('concurrent retries with one key make one task and one charge, on either door', async () => {
    const natives = await Promise.all(Array.from({ length: 8 }, () => native('burst-native', { prompt: 'burst' }, KEY_B)));
    const videos = await Promise.all(Array.from({ length: 8 }, () => openai('burst-openai', 'burst over the OpenAI door', KEY_B)));
    for (const res of [...natives, ...videos]) expect([200, 202]).toContain(res.status);
    expect(new Set(natives.map((r) => r.body.id)).size).toBe(1);
    expect(new Set(videos.map((r) => r.body.id)).size).toBe(1);

    const ledger = await settledLedger('team-b');
    expect(ledger.problems).toEqual([]);
    const tasksOf = (id: string) => ledger.tasks.filter((t) => t.id === id);
    expect(tasksOf(natives[0]!.body.id)).toHaveLength(1);
    const reserveRows = ledger.ledger.filter((e) => e.kind === 'reserve' && (e.task_id === natives[0]!.body.id || e.task_id === videos[0]!.body.id));
    expect(reserveRows).toHaveLength(2);
    // One task per key, plus the one of the per-team test.
    expect(ledger.tasks).toHaveLength(3);
  });
});
