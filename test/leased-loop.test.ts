// The leased loop drains a backlog at the pace of its work, not of its ticks, without ever working more than
// its concurrency at once; renews the leases of all the items it works in one call; and logs a failed step with the
// fields that name its item.
import { expect, it } from 'vitest';
import { createLeasedLoop, type Leased } from '../src/core/leased-loop';
import { createLogger } from '../src/core/logger';
import { captureLogger } from './support/log-capture';

it('claims again as room frees while claims come back full (backlogged meanwhile), within its concurrency, with one renewal call for all', async () => {
  const due = Array.from({ length: 100 }, (_, i): Leased => ({ id: `t${i}`, lease_token: `l${i}` }));
  const claims: number[] = [];
  const renewals: number[] = [];
  let working = 0;
  let most = 0;
  const worked: string[] = [];
  const behind: boolean[] = [];
  const loop = createLeasedLoop<Leased>({
    name: 'test',
    claim: async (limit) => {
      claims.push(limit);
      return due.splice(0, limit);
    },
    renew: async (items) => void renewals.push(items.length),
    step: async (item) => {
      behind.push(loop.backlogged());
      most = Math.max(most, ++working);
      await new Promise((r) => setTimeout(r, 20));
      working--;
      worked.push(item.id);
    },
    concurrency: 8,
    // One tick only within the test: everything after the first claim is a refill.
    interval_ms: 3600_000,
    lease_ms: 300, // a heartbeat every 100 ms
    now: () => 0,
    log: createLogger('silent'),
  });
  loop.start();
  const deadline = Date.now() + 20_000;
  while (worked.length < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 150));
  await loop.stop(1000);
  expect(worked).toHaveLength(100);
  // Behind while claims came back full; caught up once one came back short.
  expect(behind[0]).toBe(true);
  expect(loop.backlogged()).toBe(false);
  expect(new Set(worked).size).toBe(100);
  expect(most).toBeLessThanOrEqual(8);
  // A claim is made once a quarter of the room is free, not for every finished item.
  expect(claims.every((limit) => limit >= 2)).toBe(true);
  expect(claims.length).toBeLessThanOrEqual(100 / 2 + 2);
  // Each heartbeat renewed every item being worked in one call.
  expect(renewals.length).toBeGreaterThan(0);
  expect(renewals.every((n) => n >= 1 && n <= 8)).toBe(true);
});

it('logs a failed step at error with the fields that name its item (a task id, say), and goes on', async () => {
  const captured = captureLogger('info');
  const due: Leased[] = [{ id: 'task_1', lease_token: 'l1' }];
  const loop = createLeasedLoop<Leased>({
    name: 'dispatcher',
    claim: async (limit) => due.splice(0, limit),
    renew: async () => undefined,
    step: async () => {
      throw new Error('the store is gone');
    },
    concurrency: 1,
    interval_ms: 3600_000,
    lease_ms: 300,
    now: () => 0,
    log: captured.log,
    logFields: (item) => ({ task_id: item.id }),
  });
  loop.start();
  const deadline = Date.now() + 20_000;
  while (captured.lines.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await loop.stop(1000);
  expect(captured.entries()).toEqual([
    expect.objectContaining({ level: 'error', msg: 'worker step failed', loop: 'dispatcher', task_id: 'task_1', error: 'the store is gone' }),
  ]);
});

it('claims past an item whose step freed its slot, renews its lease until the step ends, and waits for it on stop', async () => {
  const due = Array.from({ length: 3 }, (_, i): Leased => ({ id: `t${i}`, lease_token: `l${i}` }));
  const renewed: string[][] = [];
  let finishFirst!: () => void;
  const firstDone = new Promise<void>((r) => (finishFirst = r));
  const started: string[] = [];
  const loop = createLeasedLoop<Leased>({
    name: 'test',
    claim: async (limit) => due.splice(0, limit),
    renew: async (items) => void renewed.push(items.map((i) => i.id)),
    step: async (item, freeSlot) => {
      started.push(item.id);
      if (item.id !== 't0') return;
      freeSlot();
      freeSlot(); // a second call changes nothing
      await firstDone;
    },
    concurrency: 1,
    interval_ms: 20,
    lease_ms: 60, // a heartbeat every 20 ms
    now: () => 0,
    log: createLogger('silent'),
  });
  loop.start();
  const deadline = Date.now() + 20_000;
  while (started.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // t0 still runs, out of the one slot: the others were claimed and worked one at a time meanwhile.
  expect(started).toEqual(['t0', 't1', 't2']);
  await new Promise((r) => setTimeout(r, 100));
  expect(renewed.at(-1)).toEqual(['t0']);
  let stopped = false;
  const stopping = loop.stop(10_000).then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 50));
  expect(stopped).toBe(false);
  finishFirst();
  await stopping;
});
