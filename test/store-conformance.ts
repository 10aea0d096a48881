import { afterEach, describe, expect, it } from 'vitest';
import type {
  ApiKeyRecord,
  ClaimedTask,
  ListTasksQuery,
  NewTask,
  Quotas,
  Refused,
  Store,
  TaskRecord,
  TeamRecord,
  TransitionReport,
  WorkPhase,
} from '../src/store/types';
import { IdempotencyConflictError, QuotaExceededError, UniqueViolation } from '../src/store/types';

const T0 = 1_700_000_000_000;
const LEASE_MS = 30_000;
const ERROR = { code: 'upstream_error', message: 'provider said no' };

let seq = 0;
function newTask(overrides: Partial<NewTask> = {}): NewTask {
  seq += 1;
  return {
    id: `task-${String(seq).padStart(4, '0')}`,
    owner_id: 'owner-a',
    key_id: 'key-a',
    model: 'sim-video',
    request_json: '{"prompt":"a cat"}',
    callback_url: null,
    door: 'native',
    credits_reserved: 8,
    created_at_ms: T0,
    cache_key: null,
    cache_status: 'disabled',
    ...overrides,
  };
}

/** The report of a transition that happened (throws when it was refused). */
function reported(report: TransitionReport | Refused): TransitionReport {
  if ('refused' in report) throw new Error(`transition refused: ${report.refused}`);
  return report;
}

/** The followers a transition finished with its task (which comes first in the report), or false when refused. */
function followersIn(report: TransitionReport | Refused): TaskRecord[] | false {
  return 'refused' in report ? false : report.finished.slice(1).map((f) => f.task);
}

const NO_QUOTAS: Quotas = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };

function team(id = 'team-1', quotas: Partial<Quotas> = {}): TeamRecord {
  return { id, name: `name of ${id}`, created_at_ms: T0, ...NO_QUOTAS, ...quotas };
}

function apiKey(n: number, teamId = 'team-1'): ApiKeyRecord {
  return {
    id: `key-${n}`,
    team_id: teamId,
    name: `key ${n}`,
    key_hash: `hash-${n}`,
    prefix: `vg_${n}`,
    created_at_ms: T0 + n,
    expires_at_ms: null,
    revoked_at_ms: null,
    allowed_models: null,
    ...NO_QUOTAS,
  };
}

/**
 * The behaviour every `Store` backend must have. `makeStore` opens a new connection to a database
 * that is empty at the start of each test and shared by every connection opened during that test.
 */
export function describeStoreConformance(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store conformance: ${name}`, () => {
    const opened = new Set<Store>();

    async function open(): Promise<Store> {
      const store = await makeStore();
      opened.add(store);
      return store;
    }

    async function close(store: Store): Promise<void> {
      opened.delete(store);
      await store.close();
    }

    afterEach(async () => {
      await Promise.all([...opened].map(close));
    });

    async function claimOnly(store: Store, phase: WorkPhase, nowMs: number): Promise<ClaimedTask> {
      const claimed = await store.claimDue(phase, 10, LEASE_MS, nowMs);
      expect(claimed).toHaveLength(1);
      return claimed[0]!;
    }

    /** Creates a task and takes it to `processing`, then claims it for polling. */
    async function processingTask(store: Store, task = newTask()): Promise<ClaimedTask> {
      await store.createTask(task);
      const { lease_token } = await claimOnly(store, 'dispatch', T0);
      expect(await store.startAttempt(task.id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('started');
      expect(await store.markSubmitted(task.id, lease_token, 'up-1', T0 + 2)).toBe('done');
      return claimOnly(store, 'poll', T0 + 3);
    }

    describe('attempts', () => {
      it('records each attempt with its provider, upstream id, price, times and outcome', async () => {
        const store = await open();
        const first = await processingTask(store);
        expect(await store.countActiveByProvider()).toEqual(new Map([['sim', 1]]));
        expect(await store.requeue(first.id, first.lease_token, ERROR, T0 + 10, T0 + 10)).toBe('done');
        expect(await store.countActiveByProvider()).toEqual(new Map());
        const again = await claimOnly(store, 'dispatch', T0 + 10);
        expect(await store.startAttempt(first.id, again.lease_token, 'other', { micro_usd: 500_000, credits: 8 }, T0 + 11)).toBe('started');
        expect(await store.countActiveByProvider()).toEqual(new Map([['other', 1]]));
        expect(await store.markSubmitted(first.id, again.lease_token, 'up-2', T0 + 12)).toBe('done');
        const poll = await claimOnly(store, 'poll', T0 + 13);
        expect(followersIn(await store.markCompleted(first.id, poll.lease_token, 'asset', T0 + 14))).toEqual([]);
        expect(await store.listAttempts([first.id])).toEqual([
          { task_id: first.id, n: 1, provider_id: 'sim', upstream_id: 'up-1', micro_usd: 400_000, credits: 8, started_at_ms: T0 + 1, ended_at_ms: T0 + 10, outcome: 'retried', error_code: ERROR.code, error_message: ERROR.message },
          { task_id: first.id, n: 2, provider_id: 'other', upstream_id: 'up-2', micro_usd: 500_000, credits: 8, started_at_ms: T0 + 11, ended_at_ms: T0 + 14, outcome: 'completed', error_code: null, error_message: null },
        ]);
        expect(await store.countActiveByProvider()).toEqual(new Map());
      });

      it('refuses an attempt on a provider at its max_concurrent, and ends an attempt left running', async () => {
        const store = await open();
        await processingTask(store, newTask({ id: 'task-busy' }));
        await store.createTask(newTask({ id: 'task-next' }));
        const next = await claimOnly(store, 'dispatch', T0 + 5);
        expect(await store.startAttempt(next.id, next.lease_token, 'sim', { micro_usd: 400_000, credits: 8, max_concurrent: 1 }, T0 + 6)).toBe('provider_full');
        expect((await store.getTask(next.id))?.attempt).toBe(0);
        expect(await store.startAttempt(next.id, next.lease_token, 'sim', { micro_usd: 400_000, credits: 8, max_concurrent: 2 }, T0 + 7)).toBe('started');
        // A second start without an ending in between (its provider vanished): the first is closed.
        expect(await store.startAttempt(next.id, next.lease_token, 'other', { micro_usd: 500_000, credits: 8 }, T0 + 8)).toBe('started');
        expect((await store.listAttempts([next.id])).map((a) => [a.provider_id, a.outcome])).toEqual([
          ['sim', 'retried'],
          ['other', 'running'],
        ]);
        expect(await store.countActiveByProvider()).toEqual(new Map([['sim', 1], ['other', 1]]));
      });

      it('ends the running attempt on failure and on cancel, and lists several tasks at once', async () => {
        const store = await open();
        const failed = await processingTask(store, newTask({ id: 'task-f' }));
        expect(followersIn(await store.markFailed(failed.id, failed.lease_token, ERROR, T0 + 20))).toEqual([]);
        const cancelled = await processingTask(store, newTask({ id: 'task-c' }));
        expect(await store.cancel(cancelled.id, cancelled.owner_id, T0 + 21)).toBeDefined();
        const attempts = await store.listAttempts(['task-f', 'task-c', 'task-unknown']);
        expect(attempts.map((a) => [a.task_id, a.outcome, a.ended_at_ms])).toEqual([
          ['task-c', 'cancelled', T0 + 21],
          ['task-f', 'failed', T0 + 20],
        ]);
        expect(await store.listAttempts([])).toEqual([]);
      });
    });

    describe('api keys', () => {
      it('inserts, finds by hash and counts', async () => {
        const store = await open();
        expect(await store.countApiKeys()).toBe(0);
        await store.createTeam(team());
        await store.insertApiKey(apiKey(1));
        await store.insertApiKey(apiKey(2));
        expect(await store.findApiKeyByHash('hash-2')).toStrictEqual(apiKey(2));
        expect(await store.findApiKeyByHash('hash-3')).toBeUndefined();
        expect(await store.countApiKeys()).toBe(2);
      });

      it('refuses a duplicate hash', async () => {
        const store = await open();
        await store.createTeam(team());
        await store.insertApiKey(apiKey(1));
        await expect(store.insertApiKey({ ...apiKey(2), key_hash: 'hash-1' })).rejects.toThrow(new UniqueViolation('api_keys.key_hash'));
        expect(await store.countApiKeys()).toBe(1);
      });

      it("refuses a second team of one name in the store's vocabulary, whatever the backend", async () => {
        const store = await open();
        await store.createTeam(team('team-1'));
        const twin = store.createTeam({ ...team('team-2'), name: 'name of team-1' });
        await expect(twin).rejects.toBeInstanceOf(UniqueViolation);
        await expect(twin).rejects.toMatchObject({ constraint: 'teams.name' });
        const renamed = store.createTeam(team('team-3')).then(() => store.updateTeam('team-3', { name: 'name of team-1' }));
        await expect(renamed).rejects.toMatchObject({ constraint: 'teams.name' });
      });
    });

    describe('createTask and getTask', () => {
      it('creates a pending task due at once', async () => {
        const store = await open();
        const task = newTask({ callback_url: 'https://example.com/hook', created_at_ms: T0 + 5 });
        const expected: TaskRecord = {
          ...task,
          status: 'pending',
          progress: 0,
          credits_settled: null,
          attempt: 0,
          provider_id: null,
          upstream_id: null,
          error_code: null,
          error_message: null,
          asset_key: null,
          asset_expired: false,
          updated_at_ms: T0 + 5,
          submitted_at_ms: null,
          completed_at_ms: null,
          next_run_at_ms: T0 + 5,
          source_id: null,
          asset_stored_at_ms: null,
          deleted_at_ms: null,
          door: 'native',
        };
        expect((await store.createTask(task)).task).toStrictEqual(expected);
        expect(await store.getTask(task.id)).toStrictEqual(expected);
      });

      it('returns undefined for an unknown task and refuses a duplicate id', async () => {
        const store = await open();
        const task = newTask();
        await store.createTask(task);
        await expect(store.createTask(task)).rejects.toThrow();
        expect(await store.getTask('nope')).toBeUndefined();
      });
    });

    describe('claimDue', () => {
      it('leases only due tasks of the phase, oldest due first, up to the limit', async () => {
        const store = await open();
        const late = (await store.createTask(newTask({ created_at_ms: T0 + 2 }))).task;
        const early = (await store.createTask(newTask({ created_at_ms: T0 }))).task;
        const middle = (await store.createTask(newTask({ created_at_ms: T0 + 1 }))).task;
        const future = (await store.createTask(newTask({ created_at_ms: T0 + 100 }))).task;

        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + 10)).toEqual([]);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 - 1)).toEqual([]);

        const first = await store.claimDue('dispatch', 2, LEASE_MS, T0 + 10);
        expect(first.map((t) => t.id)).toEqual([early.id, middle.id]);
        const second = await store.claimDue('dispatch', 2, LEASE_MS, T0 + 10);
        expect(second.map((t) => t.id)).toEqual([late.id]);
        expect(await store.claimDue('dispatch', 2, LEASE_MS, T0 + 10)).toEqual([]);
        // Due exactly at its next_run_at_ms.
        expect((await store.claimDue('dispatch', 2, LEASE_MS, T0 + 100)).map((t) => t.id)).toEqual([future.id]);
      });

      it('returns the task plus a distinct lease token for each task', async () => {
        const store = await open();
        const a = (await store.createTask(newTask())).task;
        await store.createTask(newTask());
        const claimed = await store.claimDue('dispatch', 10, LEASE_MS, T0);
        expect(claimed).toHaveLength(2);
        expect(claimed[0]).toStrictEqual({ ...a, lease_token: claimed[0]!.lease_token });
        expect(claimed[0]!.lease_token).toEqual(expect.any(String));
        expect(claimed[0]!.lease_token).not.toBe(claimed[1]!.lease_token);
      });

      it('claims processing tasks in the poll phase only', async () => {
        const store = await open();
        const { id, lease_token } = await processingTask(store);
        expect(await store.releaseLease(id, lease_token, T0 + 10, T0 + 4)).toBe('done');
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 10)).toEqual([]);
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 10)).map((t) => t.id)).toEqual([id]);
      });

      it('skips leased tasks until the lease expires; the new claimer fences the old one', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const old = await claimOnly(store, 'dispatch', T0);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + LEASE_MS)).toEqual([]);

        const fresh = await claimOnly(store, 'dispatch', T0 + LEASE_MS + 1);
        expect(fresh.lease_token).not.toBe(old.lease_token);
        expect(await store.renewLeases([{ id, lease_token: old.lease_token }], T0 + LEASE_MS * 5)).toBe(0);
        expect(await store.startAttempt(id, old.lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + LEASE_MS + 2)).toBe('lease_lost');
        expect(await store.markSubmitted(id, old.lease_token, 'up-old', T0 + LEASE_MS + 2)).not.toBe('done');
        expect(await store.requeue(id, old.lease_token, ERROR, T0, T0 + LEASE_MS + 2)).not.toBe('done');
        expect(await store.markFailed(id, old.lease_token, ERROR, T0 + LEASE_MS + 2)).toHaveProperty('refused');
        expect(await store.releaseLease(id, old.lease_token, T0, T0 + LEASE_MS + 2)).not.toBe('done');
        expect((await store.getTask(id))?.attempt).toBe(0);

        expect(await store.startAttempt(id, fresh.lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + LEASE_MS + 3)).toBe('started');
        expect(await store.markSubmitted(id, fresh.lease_token, 'up-new', T0 + LEASE_MS + 4)).toBe('done');
        expect((await store.getTask(id))?.upstream_id).toBe('up-new');
      });

      it('never hands one task to two claimers sharing the database', async () => {
        const [a, b] = [await open(), await open()];
        const ids = new Set<string>();
        for (let i = 0; i < 30; i++) ids.add(((await a.createTask(newTask())).task).id);

        const claimedIds: string[] = [];
        for (let round = 0; round < ids.size; round++) {
          const batches = await Promise.all([a, b].map((store) => store.claimDue('dispatch', 4, LEASE_MS, T0)));
          claimedIds.push(...batches.flat().map((t) => t.id));
        }
        expect(claimedIds).toHaveLength(ids.size);
        expect(new Set(claimedIds)).toEqual(ids);
      });
    });

    describe('leases', () => {
      it('renewLeases extends the lease for the token holder only', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.renewLeases([{ id, lease_token: 'wrong' }], T0 + LEASE_MS * 3)).toBe(0);
        expect(await store.renewLeases([{ id, lease_token }], T0 + LEASE_MS * 3)).toBe(1);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + LEASE_MS * 2)).toEqual([]);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + LEASE_MS * 3 + 1)).toHaveLength(1);
      });

      it('renewLeases renews many leases in one call, skipping the lost ones', async () => {
        const store = await open();
        for (let i = 0; i < 5; i++) await store.createTask(newTask());
        const claimed = await store.claimDue('dispatch', 5, LEASE_MS, T0);
        expect(claimed).toHaveLength(5);
        const [lost, ...held] = claimed;
        // The first lease expires and another worker claims the task: its old token renews nothing.
        expect(await store.renewLeases(held, T0 + LEASE_MS * 3)).toBe(4);
        const taken = await store.claimDue('dispatch', 10, LEASE_MS, T0 + LEASE_MS + 1);
        expect(taken.map((t) => t.id)).toEqual([lost!.id]);
        expect(await store.renewLeases(claimed, T0 + LEASE_MS * 4)).toBe(4);
        expect(await store.renewLeases([], T0 + LEASE_MS * 4)).toBe(0);
        // The four renewed leases hold until T0 + 4 leases; the new claimer's only until T0 + 2 leases + 1.
        expect((await store.claimDue('dispatch', 10, LEASE_MS * 2, T0 + LEASE_MS * 3)).map((t) => t.id)).toEqual([lost!.id]);
        expect((await store.claimDue('dispatch', 10, LEASE_MS, T0 + LEASE_MS * 4 + 1)).map((t) => t.id).sort()).toEqual(held.map((t) => t.id).sort());
      });

      it('pollJobNow brings the running job of a provider forward to now, never back, and finds nothing else', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('started');
        expect(await store.markSubmitted(id, lease_token, 'up-1', T0 + 2)).toBe('done');
        const polled = await claimOnly(store, 'poll', T0 + 3);
        expect(await store.recordProgress(id, polled.lease_token, 10, T0 + 600_000, T0 + 4)).toBe('done');
        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + 5)).toEqual([]);

        expect(await store.pollJobNow('other', 'up-1', T0 + 5)).toBeUndefined();
        expect(await store.pollJobNow('sim', 'up-2', T0 + 5)).toBeUndefined();
        expect(await store.pollJobNow('sim', 'up-1', T0 + 5)).toBe(id);
        expect((await store.getTask(id))?.next_run_at_ms).toBe(T0 + 5);
        // A later word does not put a due poll back.
        expect(await store.pollJobNow('sim', 'up-1', T0 + 50)).toBe(id);
        expect((await store.getTask(id))?.next_run_at_ms).toBe(T0 + 5);
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 6)).map((t) => t.id)).toEqual([id]);
      });

      it('claimDue with a provider scope takes the running jobs of that provider, or of none of the listed', async () => {
        const store = await open();
        const ids: Record<string, string> = {};
        for (const provider of ['sim', 'other', 'gone']) {
          const { id } = (await store.createTask(newTask())).task;
          const { lease_token } = await claimOnly(store, 'dispatch', T0);
          expect(await store.startAttempt(id, lease_token, provider, { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('started');
          expect(await store.markSubmitted(id, lease_token, `up-${provider}`, T0 + 2)).toBe('done');
          ids[provider] = id;
        }
        // A pending task is never a provider's running job.
        await store.createTask(newTask());
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 3, { only: 'sim' })).map((t) => t.id)).toEqual([ids.sim]);
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 3, { except: ['sim', 'other'] })).map((t) => t.id)).toEqual([ids.gone]);
        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + 3, { only: 'sim' })).toEqual([]);
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 3)).map((t) => t.id)).toEqual([ids.other]);
      });

      it('releaseLease makes the task claimable again at the given time and voids the token', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.releaseLease(id, 'wrong', T0 + 50, T0 + 1)).not.toBe('done');
        expect(await store.releaseLease(id, lease_token, T0 + 50, T0 + 1)).toBe('done');
        expect(await store.getTask(id)).toMatchObject({
          status: 'pending',
          next_run_at_ms: T0 + 50,
          updated_at_ms: T0 + 1,
        });
        expect(await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 2)).toBe('lease_lost');
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 49)).toEqual([]);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 50)).toHaveLength(1);
      });
    });

    describe('transitions', () => {
      it('startAttempt counts attempts on a pending task and resets the upstream id', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.startAttempt(id, 'wrong', 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('lease_lost');
        expect(await store.startAttempt('nobody', lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('not_found');
        expect(await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1)).toBe('started');
        expect(await store.startAttempt(id, lease_token, 'other', { micro_usd: 500_000, credits: 8 }, T0 + 2)).toBe('started');
        expect(await store.getTask(id)).toMatchObject({
          status: 'pending',
          attempt: 2,
          provider_id: 'other',
          upstream_id: null,
          updated_at_ms: T0 + 2,
        });
      });

      it('startAttempt and markSubmitted refuse a processing task', async () => {
        const store = await open();
        const { id, lease_token } = await processingTask(store);
        expect(await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 10)).toBe('wrong_state');
        expect(await store.markSubmitted(id, lease_token, 'up-2', T0 + 10)).not.toBe('done');
        expect(await store.getTask(id)).toMatchObject({ status: 'processing', attempt: 1, upstream_id: 'up-1' });
      });

      it('markSubmitted moves pending to processing, due for polling at once, and releases the lease', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 1);
        expect(await store.markSubmitted(id, 'wrong', 'up-1', T0 + 2)).not.toBe('done');
        expect(await store.markSubmitted(id, lease_token, 'up-1', T0 + 2)).toBe('done');
        expect(await store.getTask(id)).toMatchObject({
          status: 'processing',
          progress: 0,
          provider_id: 'sim',
          upstream_id: 'up-1',
          submitted_at_ms: T0 + 2,
          updated_at_ms: T0 + 2,
          next_run_at_ms: T0 + 2,
        });
        expect(await store.recordProgress(id, lease_token, 10, T0 + 3, T0 + 3)).not.toBe('done');
        expect((await store.claimDue('poll', 10, LEASE_MS, T0 + 2)).map((t) => t.id)).toEqual([id]);
      });

      it('recordProgress keeps progress monotonic and releases the lease until the next poll', async () => {
        const store = await open();
        const { id, lease_token } = await processingTask(store);
        expect(await store.recordProgress(id, 'wrong', 40, T0 + 100, T0 + 10)).not.toBe('done');
        expect(await store.recordProgress(id, lease_token, 40, T0 + 100, T0 + 10)).toBe('done');
        expect(await store.getTask(id)).toMatchObject({
          progress: 40,
          next_run_at_ms: T0 + 100,
          updated_at_ms: T0 + 10,
        });
        expect(await store.recordProgress(id, lease_token, 50, T0 + 100, T0 + 11)).not.toBe('done');

        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + 99)).toEqual([]);
        const next = await claimOnly(store, 'poll', T0 + 100);
        expect(await store.recordProgress(id, next.lease_token, 30, T0 + 200, T0 + 101)).toBe('done');
        expect((await store.getTask(id))?.progress).toBe(40);
      });

      it('recordProgress and markCompleted refuse a pending task', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.recordProgress(id, lease_token, 10, T0 + 5, T0 + 1)).not.toBe('done');
        expect(await store.markCompleted(id, lease_token, 'assets/x.mp4', T0 + 1)).toHaveProperty('refused');
        expect(await store.getTask(id)).toMatchObject({ status: 'pending', progress: 0, asset_key: null });
      });

      it('markCompleted finishes a processing task and clears the last error', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const first = await claimOnly(store, 'dispatch', T0);
        expect(await store.requeue(id, first.lease_token, ERROR, T0 + 1, T0 + 1)).toBe('done');
        const { lease_token } = await claimOnly(store, 'dispatch', T0 + 1);
        await store.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 2);
        await store.markSubmitted(id, lease_token, 'up-1', T0 + 3);
        const poll = await claimOnly(store, 'poll', T0 + 4);

        expect(await store.markCompleted(id, 'wrong', 'assets/x.mp4', T0 + 5)).toHaveProperty('refused');
        expect(followersIn(await store.markCompleted(id, poll.lease_token, 'assets/x.mp4', T0 + 5))).toEqual([]);
        expect(await store.getTask(id)).toMatchObject({
          status: 'completed',
          progress: 100,
          asset_key: 'assets/x.mp4',
          asset_expired: false,
          error_code: null,
          error_message: null,
          completed_at_ms: T0 + 5,
          updated_at_ms: T0 + 5,
        });
        expect(await store.markCompleted(id, poll.lease_token, 'assets/y.mp4', T0 + 6)).toHaveProperty('refused');
        expect(await store.markFailed(id, poll.lease_token, ERROR, T0 + 6)).toHaveProperty('refused');
        expect(await store.requeue(id, poll.lease_token, ERROR, T0 + 6, T0 + 6)).not.toBe('done');
        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + LEASE_MS * 10)).toEqual([]);
      });

      it('markFailed fails a pending or a processing task', async () => {
        const store = await open();
        const { id: pendingId } = (await store.createTask(newTask())).task;
        const pending = await claimOnly(store, 'dispatch', T0);
        expect(await store.markFailed(pendingId, 'wrong', ERROR, T0 + 1)).toHaveProperty('refused');
        expect(followersIn(await store.markFailed(pendingId, pending.lease_token, ERROR, T0 + 1))).toEqual([]);
        expect(await store.getTask(pendingId)).toMatchObject({
          status: 'failed',
          error_code: ERROR.code,
          error_message: ERROR.message,
          completed_at_ms: T0 + 1,
          updated_at_ms: T0 + 1,
        });

        const processing = await processingTask(store);
        expect(followersIn(await store.markFailed(processing.id, processing.lease_token, ERROR, T0 + 9))).toEqual([]);
        expect(await store.getTask(processing.id)).toMatchObject({ status: 'failed', completed_at_ms: T0 + 9 });
        expect(await store.markFailed(processing.id, processing.lease_token, ERROR, T0 + 10)).toHaveProperty('refused');
        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + LEASE_MS * 10)).toEqual([]);
      });

      it('requeue sends a processing task back to pending for a new attempt', async () => {
        const store = await open();
        const { id, lease_token } = await processingTask(store);
        await store.recordProgress(id, lease_token, 60, T0 + 10, T0 + 10);
        const poll = await claimOnly(store, 'poll', T0 + 10);
        expect(await store.requeue(id, 'wrong', ERROR, T0 + 500, T0 + 11)).not.toBe('done');
        expect(await store.requeue(id, poll.lease_token, ERROR, T0 + 500, T0 + 11)).toBe('done');
        expect(await store.getTask(id)).toMatchObject({
          status: 'pending',
          progress: 0,
          attempt: 1,
          provider_id: null,
          upstream_id: null,
          error_code: ERROR.code,
          error_message: ERROR.message,
          next_run_at_ms: T0 + 500,
          updated_at_ms: T0 + 11,
        });
        expect(await store.requeue(id, poll.lease_token, ERROR, T0 + 500, T0 + 12)).not.toBe('done');
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 499)).toEqual([]);
        const again = await claimOnly(store, 'dispatch', T0 + 500);
        expect(await store.startAttempt(id, again.lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 501)).toBe('started');
        expect((await store.getTask(id))?.attempt).toBe(2);
      });

      it('requeue also applies to a pending task', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.requeue(id, lease_token, ERROR, T0 + 5, T0 + 1)).toBe('done');
        expect(await store.getTask(id)).toMatchObject({
          status: 'pending',
          error_code: ERROR.code,
          next_run_at_ms: T0 + 5,
        });
      });
    });

    describe('cancel', () => {
      it('cancels a leased processing task, returns it as it was, and fences the worker', async () => {
        const store = await open();
        const { id, lease_token } = await processingTask(store);
        const before = await store.getTask(id);
        const returned = await store.cancel(id, 'owner-a', T0 + 20);
        expect(returned).toStrictEqual({ task: before, abandon_job: true, heir: null, report: expect.anything() });
        expect(returned?.report).toMatchObject({
          created: [],
          finished: [{ task: { id, status: 'cancelled' }, provider_id: 'sim' }],
          credits: [{ kind: 'released', team_id: 'owner-a', model: 'sim-video', provider_id: 'sim', cache_hit: false, credits: 8 }],
          events: [],
        });
        expect(returned?.task).toMatchObject({ status: 'processing', provider_id: 'sim', upstream_id: 'up-1' });
        expect(await store.getTask(id)).toMatchObject({
          status: 'cancelled',
          completed_at_ms: T0 + 20,
          updated_at_ms: T0 + 20,
        });

        expect(await store.recordProgress(id, lease_token, 50, T0 + 30, T0 + 21)).not.toBe('done');
        expect(await store.markCompleted(id, lease_token, 'assets/x.mp4', T0 + 21)).toHaveProperty('refused');
        expect(await store.markFailed(id, lease_token, ERROR, T0 + 21)).toHaveProperty('refused');
        expect(await store.renewLeases([{ id, lease_token }], T0 + LEASE_MS * 5)).toBe(0);
        expect(await store.claimDue('poll', 10, LEASE_MS, T0 + LEASE_MS * 10)).toEqual([]);
      });

      it('cancels a pending task', async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        expect(await store.cancel(id, 'owner-a', T0 + 1)).toMatchObject({ task: { id, status: 'pending' } });
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 1)).toEqual([]);
      });

      it("refuses other owners' and finished tasks", async () => {
        const store = await open();
        const { id } = (await store.createTask(newTask())).task;
        expect(await store.cancel(id, 'owner-b', T0 + 1)).toBeUndefined();
        expect((await store.getTask(id))?.status).toBe('pending');
        expect(await store.cancel('nope', 'owner-a', T0 + 1)).toBeUndefined();

        expect(await store.cancel(id, 'owner-a', T0 + 2)).toBeDefined();
        expect(await store.cancel(id, 'owner-a', T0 + 3)).toBeUndefined();
        expect((await store.getTask(id))?.completed_at_ms).toBe(T0 + 2);

        const done = await processingTask(store);
        await store.markCompleted(done.id, done.lease_token, 'assets/x.mp4', T0 + 10);
        expect(await store.cancel(done.id, 'owner-a', T0 + 11)).toBeUndefined();
        expect((await store.getTask(done.id))?.status).toBe('completed');
      });
    });

    describe('listTasks', () => {
      it('pages newest first, breaking created_at ties by id, without gaps or repeats', async () => {
        const store = await open();
        const times = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 2, T0 + 3];
        const created: TaskRecord[] = [];
        for (const created_at_ms of times) created.push((await store.createTask(newTask({ created_at_ms }))).task);
        const expected = created
          .slice()
          .sort((x, y) => y.created_at_ms - x.created_at_ms || (x.id < y.id ? 1 : -1))
          .map((t) => t.id);

        const seen: string[] = [];
        let before: { created_at_ms: number; id: string } | undefined;
        for (let pages = 0; pages <= times.length; pages++) {
          const page = await store.listTasks({ owner_id: 'owner-a', limit: 2, before });
          expect(page.length).toBeLessThanOrEqual(2);
          if (page.length === 0) break;
          seen.push(...page.map((t) => t.id));
          const last = page.at(-1)!;
          before = { created_at_ms: last.created_at_ms, id: last.id };
        }
        expect(seen).toEqual(expected);
        expect((await store.listTasks({ owner_id: 'owner-a', limit: 100 }))[0]).toStrictEqual(
          created.find((t) => t.id === expected[0]),
        );
      });

      it('lists oldest first with order asc, paging past a position', async () => {
        const store = await open();
        for (const [i, id] of ['a0', 'a1', 'a2'].entries()) (await store.createTask(newTask({ id, created_at_ms: T0 + i }))).task;
        const ids = async (query: ListTasksQuery) => (await store.listTasks(query)).map((t) => t.id);
        expect(await ids({ owner_id: 'owner-a', limit: 10, order: 'asc' })).toEqual(['a0', 'a1', 'a2']);
        expect(await ids({ owner_id: 'owner-a', limit: 10, order: 'asc', before: { created_at_ms: T0, id: 'a0' } })).toEqual(['a1', 'a2']);
      });

      it('deletes only a finished task of its owner, once; lists skip it unless asked', async () => {
        const store = await open();
        const done = await processingTask(store, newTask({ id: 'done' }));
        expect(followersIn(await store.markCompleted(done.id, done.lease_token, 'asset-done', T0 + 5))).toEqual([]);
        await store.createTask(newTask({ id: 'running', created_at_ms: T0 + 6 }));
        expect(await store.deleteTask('running', 'owner-a', T0 + 7)).toBeUndefined();
        expect(await store.deleteTask('done', 'owner-b', T0 + 7)).toBeUndefined();
        const deleted = await store.deleteTask('done', 'owner-a', T0 + 7);
        expect(deleted).toMatchObject({ task: { id: 'done', deleted_at_ms: T0 + 7 }, asset_orphaned: true });
        expect(await store.deleteTask('done', 'owner-a', T0 + 8)).toBeUndefined();
        expect((await store.listTasks({ owner_id: 'owner-a', limit: 10 })).map((t) => t.id)).toEqual(['running']);
        expect((await store.listTasks({ owner_id: 'owner-a', limit: 10, include_deleted: true })).map((t) => t.id).sort()).toEqual(['done', 'running']);
        expect((await store.getTask('done'))!.deleted_at_ms).toBe(T0 + 7);
      });

      it('honours an idempotency key: the same hash returns the original, another hash throws, a stale key makes a new task', async () => {
        const store = await open();
        const idem = (hash: string, since = T0 - 1) => ({ key: 'k1', request_hash: hash, since_ms: since });
        const first = (await store.createTask(newTask({ id: 'i1', idempotency: idem('h1') }))).task;
        expect((await store.createTask(newTask({ id: 'i2', idempotency: idem('h1') }))).task).toStrictEqual(first);
        await expect(store.createTask(newTask({ id: 'i3', idempotency: idem('h2') }))).rejects.toBeInstanceOf(IdempotencyConflictError);
        expect((await store.createTask(newTask({ owner_id: 'owner-b', id: 'i4', idempotency: idem('h1') }))).task).toMatchObject({ id: 'i4' });
        expect((await store.createTask(newTask({ id: 'i5', created_at_ms: T0 + 10, idempotency: idem('h2', T0 + 5) }))).task).toMatchObject({ id: 'i5' });
        expect((await store.listTasks({ owner_id: 'owner-a', limit: 10 })).map((t) => t.id).sort()).toEqual(['i1', 'i5']);
        // Once its task is deleted, a retry under the key creates nothing (it would be charged again).
        await store.cancel('i5', 'owner-a', T0 + 11);
        await store.deleteTask('i5', 'owner-a', T0 + 12);
        const replay = store.createTask(newTask({ id: 'i6', created_at_ms: T0 + 13, idempotency: idem('h2', T0 + 5) }));
        await expect(replay).rejects.toMatchObject({ name: 'IdempotencyConflictError', task_id: 'i5', reason: 'original_deleted' });
        expect(await store.getTask('i6')).toBeUndefined();
      });

      it('filters by status and isolates owners', async () => {
        const store = await open();
        const mine = ['mine-0', 'mine-1', 'mine-2', 'mine-3'] as const;
        const [m0, m1, m2, m3] = mine;
        for (const [i, id] of mine.entries()) (await store.createTask(newTask({ id, created_at_ms: T0 + i }))).task;
        await store.createTask(newTask({ owner_id: 'owner-b', created_at_ms: T0 + 10 }));
        await store.cancel(m1, 'owner-a', T0 + 20);
        await store.cancel(m3, 'owner-a', T0 + 20);

        const ids = async (query: ListTasksQuery) => (await store.listTasks(query)).map((t) => t.id);
        expect(await ids({ owner_id: 'owner-a', limit: 10 })).toEqual([m3, m2, m1, m0]);
        expect(await ids({ owner_id: 'owner-a', status: 'cancelled', limit: 10 })).toEqual([m3, m1]);
        expect(await ids({ owner_id: 'owner-a', status: 'pending', limit: 1 })).toEqual([m2]);
        const before = { created_at_ms: T0 + 2, id: m2 };
        expect(await ids({ owner_id: 'owner-a', status: 'pending', limit: 10, before })).toEqual([m0]);
        expect(await ids({ owner_id: 'owner-a', status: 'failed', limit: 10 })).toEqual([]);
        expect(await ids({ owner_id: 'owner-c', limit: 10 })).toEqual([]);
        expect((await store.listTasks({ owner_id: 'owner-b', limit: 10 })).map((t) => t.owner_id)).toEqual(['owner-b']);
      });
    });

    describe('retention', () => {
      it('lists completed, unexpired assets stored before a time', async () => {
        const store = await open();
        const completeAt = async (nowMs: number) => {
          const task = await processingTask(store);
          expect(followersIn(await store.markCompleted(task.id, task.lease_token, `assets/${task.id}.mp4`, nowMs))).toEqual([]);
          return task.id;
        };
        const old1 = await completeAt(T0 + 100);
        const old2 = await completeAt(T0 + 200);
        const recent = await completeAt(T0 + 1000);
        const failed = await processingTask(store);
        await store.markFailed(failed.id, failed.lease_token, ERROR, T0 + 50);
        await store.createTask(newTask());

        const ids = async (beforeMs: number, limit: number) =>
          (await store.listAssetsStoredBefore(beforeMs, limit)).map((t) => t.id).sort();
        expect(await ids(T0 + 500, 10)).toEqual([old1, old2].sort());
        expect(await ids(T0 + 200, 10)).toEqual([old1]);
        expect(await ids(T0 + 500, 1)).toHaveLength(1);
        expect(await ids(T0 + 2000, 10)).toEqual([old1, old2, recent].sort());

        await store.markAssetExpired(`assets/${old1}.mp4`);
        expect(await store.getTask(old1)).toMatchObject({ status: 'completed', asset_expired: true });
        expect(await ids(T0 + 500, 10)).toEqual([old2]);
      });
    });

    describe('cache: hits and followers', () => {
      const KEY = 'k'.repeat(64);
      const lookup = (since = T0, hint?: string) => ({ fresh_since_ms: since, hit_credits: 0, ...(hint && { source_hint: hint }) });
      const cached = (overrides: Partial<NewTask> = {}) => newTask({ cache_key: KEY, cache_status: 'miss', ...overrides });

      /** A leader with this key, completed at `at` with the video `video-<id>`. */
      async function completedSource(store: Store, at: number, overrides: Partial<NewTask> = {}): Promise<string> {
        const task = await processingTask(store, cached(overrides));
        expect(followersIn(await store.markCompleted(task.id, task.lease_token, `video-${task.id}`, at))).toEqual([]);
        return task.id;
      }

      it('serves a fresh stored result as a completed hit that shares the video and charges hit_credits', async () => {
        const store = await open();
        const source = await completedSource(store, T0 + 100);
        const hit = (await store.createTask(cached({ owner_id: 'owner-a', created_at_ms: T0 + 200 }), { ...lookup(T0 + 50), hit_credits: 3 })).task;
        expect(hit).toMatchObject({
          status: 'completed', progress: 100, cache_status: 'hit', source_id: source, asset_key: `video-${source}`,
          asset_stored_at_ms: T0 + 100, completed_at_ms: T0 + 200, credits_reserved: 3, credits_settled: 3, attempt: 0,
        });
        expect((await store.listLedger('owner-a')).filter((e) => e.task_id === hit.id).map((e) => [e.kind, e.credits])).toEqual([
          ['reserve', 3], ['release', -3], ['settle', 3],
        ]);
        expect((await store.quotaUsage('team', 'owner-a', T0 + 200)).active_tasks).toBe(0);
        expect(await store.claimDue('dispatch', 10, LEASE_MS, T0 + 300)).toEqual([]);
      });

      it('does not serve a result older than the TTL, expired, of another key, or a hit', async () => {
        const store = await open();
        const source = await completedSource(store, T0 + 100);
        const stale = (await store.createTask(cached({ created_at_ms: T0 + 200 }), lookup(T0 + 101))).task;
        expect(stale).toMatchObject({ status: 'pending', cache_status: 'miss', source_id: null });
        await store.cancel(stale.id, 'owner-a', T0 + 201);

        const other = (await store.createTask(cached({ cache_key: 'x'.repeat(64) }), lookup())).task;
        expect(other.cache_status).toBe('miss');
        await store.cancel(other.id, 'owner-a', T0 + 201);

        const hit = (await store.createTask(cached(), lookup())).task;
        expect(hit.cache_status).toBe('hit');
        await store.markAssetExpired(`video-${source}`);
        expect(await store.getTask(hit.id)).toMatchObject({ asset_expired: true }); // the hit's video went with the original's
        expect(await store.listAssetsStoredBefore(T0 + 10_000, 10)).toEqual([]);
        expect(((await store.createTask(cached(), lookup())).task).cache_status).toBe('miss'); // not the expired one, not the hit
      });

      it('cacheOutlook tells, changing nothing, what createTask would serve: a running leader, then a fresh result', async () => {
        const store = await open();
        expect(await store.cacheOutlook(KEY, T0)).toBeNull();
        const leader = await processingTask(store, cached());
        expect(await store.cacheOutlook(KEY, T0)).toBe('coalesced');
        expect(await store.markCompleted(leader.id, leader.lease_token, `video-${leader.id}`, T0 + 100)).not.toHaveProperty('refused');
        expect(await store.cacheOutlook(KEY, T0 + 100)).toBe('hit');
        expect(await store.cacheOutlook(KEY, T0 + 101)).toBeNull(); // older than the TTL allows
        expect(await store.cacheOutlook('x'.repeat(64), T0)).toBeNull();
        await store.markAssetExpired(`video-${leader.id}`);
        expect(await store.cacheOutlook(KEY, T0)).toBeNull();
        expect((await store.listTasks({ owner_id: 'owner-a', limit: 10 })).map((t) => t.id)).toEqual([leader.id]);
      });

      it('checks a remembered source and falls back to the index when it no longer serves', async () => {
        const store = await open();
        const older = await completedSource(store, T0 + 100);
        const newer = await completedSource(store, T0 + 200);
        expect(((await store.createTask(cached(), lookup(T0, older))).task).source_id).toBe(older);
        await store.markAssetExpired(`video-${older}`);
        expect(((await store.createTask(cached(), lookup(T0, older))).task).source_id).toBe(newer);
        expect(((await store.createTask(cached(), lookup(T0, 'no-such-task'))).task).source_id).toBe(newer);
      });

      it('makes identical requests follow a running leader, never claimed, carried along to completion', async () => {
        const store = await open();
        const leader = (await store.createTask(cached())).task;
        const f1 = (await store.createTask(cached({ owner_id: 'owner-b', created_at_ms: T0 + 1 }), lookup())).task;
        expect(f1).toMatchObject({ status: 'pending', cache_status: 'coalesced', source_id: leader.id, credits_reserved: 0 });
        const bypass = (await store.createTask(cached({ cache_status: 'bypassed' }))).task; // no lookup: a leader of its own
        expect(bypass).toMatchObject({ cache_status: 'bypassed', source_id: null });
        await store.cancel(bypass.id, 'owner-a', T0 + 1);

        const claimed = await claimOnly(store, 'dispatch', T0 + 2);
        expect(claimed.id).toBe(leader.id);
        await store.startAttempt(leader.id, claimed.lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 3);
        await store.markSubmitted(leader.id, claimed.lease_token, 'up-1', T0 + 4);
        expect(await store.getTask(f1.id)).toMatchObject({ status: 'processing', progress: 0 });
        const f2 = (await store.createTask(cached({ created_at_ms: T0 + 5 }), lookup())).task;
        expect(f2).toMatchObject({ status: 'processing', source_id: leader.id });

        const poll = await claimOnly(store, 'poll', T0 + 6);
        expect(poll.id).toBe(leader.id);
        await store.recordProgress(leader.id, poll.lease_token, 40, T0 + 7, T0 + 7);
        expect((await store.getTask(f2.id))?.progress).toBe(40);
        const again = await claimOnly(store, 'poll', T0 + 8);
        const finished = await store.markCompleted(leader.id, again.lease_token, `video-${leader.id}`, T0 + 9);
        expect(followersIn(finished) && (followersIn(finished) as TaskRecord[]).map((f) => f.id).sort()).toEqual([f1.id, f2.id].sort());
        for (const id of [f1.id, f2.id]) {
          expect(await store.getTask(id)).toMatchObject({
            status: 'completed', asset_key: `video-${leader.id}`, asset_stored_at_ms: T0 + 9, credits_settled: 0, provider_id: 'sim',
          });
        }
        expect(await store.listAttempts([f1.id, f2.id])).toEqual([]);
        expect((await store.quotaUsage('team', 'owner-b', T0 + 9)).active_tasks).toBe(0);
        expect((await store.listLedger('owner-b')).map((e) => [e.kind, e.credits])).toEqual([['reserve', 0], ['release', 0], ['settle', 0]]);
      });

      it('takes followers back to pending on a requeue, and fails them with the leader', async () => {
        const store = await open();
        const leader = await processingTask(store, cached());
        const follower = (await store.createTask(cached(), lookup())).task;
        await store.requeue(leader.id, leader.lease_token, ERROR, T0 + 10, T0 + 10);
        expect(await store.getTask(follower.id)).toMatchObject({ status: 'pending', progress: 0 });
        const again = await claimOnly(store, 'dispatch', T0 + 10);
        expect(again.id).toBe(leader.id);
        const failed = await store.markFailed(leader.id, again.lease_token, ERROR, T0 + 11);
        expect(followersIn(failed) && (followersIn(failed) as TaskRecord[]).map((f) => f.id)).toEqual([follower.id]);
        expect(await store.getTask(follower.id)).toMatchObject({ status: 'failed', error_code: ERROR.code, error_message: ERROR.message });
        expect((await store.quotaUsage('team', 'owner-a', T0 + 11)).active_tasks).toBe(0);
      });

      it("hands a cancelled leader's submitted job to the oldest follower, which adopts it at its price", async () => {
        const store = await open();
        const leader = await processingTask(store, cached());
        const heir = (await store.createTask(cached({ owner_id: 'owner-b', created_at_ms: T0 + 5 }), lookup())).task;
        const second = (await store.createTask(cached({ created_at_ms: T0 + 6 }), lookup())).task;
        await store.recordProgress(leader.id, leader.lease_token, 30, T0 + 7, T0 + 7);

        const cancelled = await store.cancel(leader.id, 'owner-a', T0 + 8);
        expect(cancelled).toMatchObject({ abandon_job: false, heir: { task: { id: heir.id, status: 'processing' }, reserved_more: 8 } });
        expect(await store.getTask(heir.id)).toMatchObject({
          status: 'processing', source_id: null, cache_status: 'miss', attempt: 1, provider_id: 'sim', upstream_id: 'up-1',
          submitted_at_ms: T0 + 2, progress: 30, credits_reserved: 8,
        });
        expect((await store.getTask(second.id))?.source_id).toBe(heir.id);
        expect(await store.listAttempts([heir.id])).toMatchObject([{ n: 1, provider_id: 'sim', upstream_id: 'up-1', outcome: 'running', credits: 8 }]);
        expect(await store.countActiveByProvider()).toEqual(new Map([['sim', 1]]));
        expect((await store.listLedger('owner-b')).map((e) => [e.kind, e.credits])).toEqual([['reserve', 0], ['reserve', 8]]);

        // The old worker is fenced; the heir is polled and completes for the remaining follower too.
        expect(await store.markCompleted(leader.id, leader.lease_token, 'stale', T0 + 9)).toHaveProperty('refused');
        const poll = await claimOnly(store, 'poll', T0 + 9);
        expect(poll.id).toBe(heir.id);
        const done = await store.markCompleted(heir.id, poll.lease_token, `video-${heir.id}`, T0 + 10);
        expect(followersIn(done) && (followersIn(done) as TaskRecord[]).map((f) => f.id)).toEqual([second.id]);
        expect(await store.getTask(heir.id)).toMatchObject({ status: 'completed', credits_settled: 8 });
      });

      it('queues the heir to generate anew when there is no job yet', async () => {
        const store = await open();
        const pending = (await store.createTask(cached())).task;
        const heir = (await store.createTask(cached({ created_at_ms: T0 + 1 }), lookup())).task;
        expect((await store.cancel(pending.id, 'owner-a', T0 + 2))?.abandon_job).toBe(true);
        expect(await store.getTask(heir.id)).toMatchObject({ status: 'pending', source_id: null, cache_status: 'miss' });
        expect((await claimOnly(store, 'dispatch', T0 + 2)).id).toBe(heir.id);
      });

      it('queues the heir to generate anew when its quota cannot cover the price of the job', async () => {
        const poor = await open();
        await poor.createTeam(team('poor', { credits_per_day: 5 }));
        const leader = await processingTask(poor, cached());
        const follower = (await poor.createTask(cached({ owner_id: 'poor', created_at_ms: T0 + 4 }), lookup())).task;
        expect((await poor.cancel(leader.id, 'owner-a', T0 + 5))?.abandon_job).toBe(true);
        expect(await poor.getTask(follower.id)).toMatchObject({ status: 'pending', source_id: null, upstream_id: null, credits_reserved: 0 });
        expect(await poor.listAttempts([follower.id])).toEqual([]);
        expect((await poor.listLedger('poor')).map((e) => e.kind)).toEqual(['reserve']);
      });

      it('passes the job to the oldest follower that can pay for it; the others follow that one', async () => {
        const store = await open();
        await store.createTeam(team('poor', { credits_per_day: 5 }));
        const leader = await processingTask(store, cached());
        const poor = (await store.createTask(cached({ owner_id: 'poor', created_at_ms: T0 + 4 }), lookup())).task;
        const rich = (await store.createTask(cached({ created_at_ms: T0 + 5 }), lookup())).task;
        const cancelled = await store.cancel(leader.id, 'owner-a', T0 + 6);
        expect(cancelled).toMatchObject({ abandon_job: false, heir: { task: { id: rich.id, upstream_id: 'up-1' } } });
        // The report has the leader's release and the heir's reservation grown to the job's price.
        expect(cancelled?.report.credits).toEqual([
          { kind: 'released', team_id: 'owner-a', model: 'sim-video', provider_id: 'sim', cache_hit: false, credits: 8 },
          { kind: 'reserved', team_id: 'owner-a', model: 'sim-video', provider_id: 'sim', cache_hit: false, credits: 8 },
        ]);
        expect(await store.getTask(poor.id)).toMatchObject({ status: 'processing', source_id: rich.id, credits_reserved: 0 });
        expect((await store.listLedger('poor')).map((e) => e.kind)).toEqual(['reserve']);
      });

      it('hands the generation over, failing no follower, when the leader fails on its own account', async () => {
        const store = await open();
        const leader = (await store.createTask(cached())).task;
        const follower = (await store.createTask(cached({ owner_id: 'owner-b', created_at_ms: T0 + 1 }), lookup())).task;
        const claimed = await claimOnly(store, 'dispatch', T0 + 2);
        const quotaError = { code: 'insufficient_quota', message: "over the team's credits_per_day (90 of 100 used)" };
        expect(followersIn(await store.markFailed(leader.id, claimed.lease_token, quotaError, T0 + 3, { hand_over: true }))).toEqual([]);
        expect(await store.getTask(follower.id)).toMatchObject({ status: 'pending', source_id: null, error_code: null, error_message: null });
        expect((await claimOnly(store, 'dispatch', T0 + 3)).id).toBe(follower.id);
      });

      it("cancels a follower alone: the leader's job goes on", async () => {
        const store = await open();
        const leader = await processingTask(store, cached());
        const follower = (await store.createTask(cached(), lookup())).task;
        expect(await store.cancel(follower.id, 'owner-a', T0 + 5)).toMatchObject({ abandon_job: false, task: { id: follower.id } });
        expect((await store.getTask(leader.id))?.status).toBe('processing');
        expect(followersIn(await store.markCompleted(leader.id, leader.lease_token, 'video', T0 + 6))).toEqual([]);
      });
    });

    describe('outbox: events written by the transitions that finish tasks', () => {
      const HOOK = 'https://hooks.example.com/h';
      const KEY = 'o'.repeat(64);
      const lookup = { fresh_since_ms: T0, hit_credits: 0 };
      const cached = (overrides: Partial<NewTask> = {}) => newTask({ cache_key: KEY, cache_status: 'miss', callback_url: HOOK, ...overrides });
      const eventOf = (task: TaskRecord, status: string) =>
        expect.objectContaining({ team_id: task.owner_id, task_id: task.id, task_status: status, door: task.door, url: HOOK, state: 'pending', failures: 0 });

      it('writes one event per finished task with a callback URL, in the report and in the store', async () => {
        const store = await open();
        const leader = await processingTask(store, cached());
        const follower = (await store.createTask(cached({ created_at_ms: T0 + 4, door: 'openai' }), lookup)).task;
        const silent = (await store.createTask(cached({ created_at_ms: T0 + 4, callback_url: null }), lookup)).task;
        const report = await store.markCompleted(leader.id, leader.lease_token, 'video', T0 + 10);
        if ('refused' in report) throw new Error('not completed');
        expect(report.finished[0]).toMatchObject({ task: { id: leader.id, status: 'completed' }, provider_id: 'sim' });
        expect(report.finished.slice(1).map((f) => [f.task.id, f.task.status, f.provider_id]).sort()).toEqual([
          [follower.id, 'completed', 'sim'],
          [silent.id, 'completed', 'sim'],
        ].sort());
        expect(report.events.map((e) => e.task_id).sort()).toEqual([leader.id, follower.id].sort());
        expect(report.credits).toEqual([
          { kind: 'settled', team_id: 'owner-a', model: 'sim-video', provider_id: 'sim', cache_hit: false, credits: 8 },
        ]);
        const [leaderEvent] = await store.listTaskEvents(leader.id);
        expect(leaderEvent).toEqual(eventOf({ ...leader, door: 'native' }, 'completed'));
        expect(leaderEvent!.id).toMatch(/^evt_[0-9a-f]{24}$/);
        expect(await store.listTaskEvents(follower.id)).toEqual([eventOf({ ...follower, door: 'openai' }, 'completed')]);
        expect(await store.listTaskEvents(silent.id)).toEqual([]);
        expect(await store.outboxCounts()).toEqual({ pending: 2, dead: 0 });
      });

      it('writes events for a failure and its followers, a cancel, and a hit at its creation', async () => {
        const store = await open();
        const leader = await processingTask(store, cached());
        const follower = (await store.createTask(cached({ created_at_ms: T0 + 4 }), lookup)).task;
        const failed = await store.markFailed(leader.id, leader.lease_token, ERROR, T0 + 10);
        expect(reported(failed).events.map((e) => [e.task_id, e.task_status]).sort()).toEqual([[follower.id, 'failed'], [leader.id, 'failed']].sort());
        // The follower reserved nothing (hit_credits 0): no movement of 0 credits is reported.
        expect(reported(failed).credits.map((m) => [m.kind, m.credits])).toEqual([['released', 8]]);

        const source = await processingTask(store, cached({ cache_key: 's'.repeat(64) }));
        await store.markCompleted(source.id, source.lease_token, 'video-s', T0 + 20);
        const hit = await store.createTask(cached({ cache_key: 's'.repeat(64), created_at_ms: T0 + 30 }), { ...lookup, hit_credits: 2 });
        expect(hit.task).toMatchObject({ status: 'completed', cache_status: 'hit' });
        expect(hit.report.events).toEqual([eventOf(hit.task, 'completed')]);
        expect(hit.report.created.map((t) => t.id)).toEqual([hit.task.id]);
        expect(hit.report.credits.map((m) => [m.kind, m.credits, m.cache_hit])).toEqual([['reserved', 2, false], ['settled', 2, true]]);

        const running = (await store.createTask(cached({ cache_key: null, cache_status: 'disabled', created_at_ms: T0 + 40 }))).task;
        const cancelled = await store.cancel(running.id, 'owner-a', T0 + 41);
        expect(cancelled?.report.events).toEqual([eventOf(running, 'cancelled')]);
        expect(await store.listTaskEvents(running.id)).toEqual(cancelled?.report.events);
      });

      it("hands over without failing the followers: only the leader's own failure has an event", async () => {
        const store = await open();
        const leader = (await store.createTask(cached())).task;
        const follower = (await store.createTask(cached({ created_at_ms: T0 + 1 }), lookup)).task;
        const claimed = await claimOnly(store, 'dispatch', T0 + 2);
        const report = await store.markFailed(leader.id, claimed.lease_token, ERROR, T0 + 3, { hand_over: true });
        expect(reported(report).events.map((e) => e.task_id)).toEqual([leader.id]);
        expect(await store.listTaskEvents(follower.id)).toEqual([]);
      });

      it('writes nothing when the transition does not happen', async () => {
        const store = await open();
        const task = await processingTask(store, cached());
        expect(await store.markCompleted(task.id, 'wrong', 'video', T0 + 5)).toHaveProperty('refused');
        expect(await store.cancel(task.id, 'owner-b', T0 + 5)).toBeUndefined();
        expect(await store.listTaskEvents(task.id)).toEqual([]);
        expect(await store.outboxCounts()).toEqual({ pending: 0, dead: 0 });
      });

      it('leases due events, records each attempt under the lease, retries, dead-letters and redelivers', async () => {
        const store = await open();
        const task = await processingTask(store, cached());
        await store.markCompleted(task.id, task.lease_token, 'video', T0 + 10);
        const [event] = await store.listTaskEvents(task.id);
        expect(await store.claimDueEvents(10, LEASE_MS, T0 + 9)).toEqual([]);
        const [claimed, ...more] = await store.claimDueEvents(10, LEASE_MS, T0 + 10);
        expect(more).toEqual([]);
        expect(claimed).toMatchObject({ id: event!.id, lease_token: expect.any(String) });
        expect(await store.claimDueEvents(10, LEASE_MS, T0 + 11)).toEqual([]); // leased
        expect(await store.renewEventLease(claimed!.id, claimed!.lease_token, T0 + 100_000)).toBe(true);

        const fail = { started_at_ms: T0 + 11, status_code: 500, latency_ms: 7, error: 'the receiver answered 500' };
        expect(await store.recordDelivery(claimed!.id, 'wrong', fail, { state: 'pending', next_run_at_ms: T0 + 1000 })).toBe(false);
        expect(await store.recordDelivery(claimed!.id, claimed!.lease_token, fail, { state: 'pending', next_run_at_ms: T0 + 1000 })).toBe(true);
        expect(await store.recordDelivery(claimed!.id, claimed!.lease_token, fail, { state: 'delivered' })).toBe(false); // lease ended
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'pending', failures: 1, next_run_at_ms: T0 + 1000 });
        expect(await store.claimDueEvents(10, LEASE_MS, T0 + 999)).toEqual([]);

        const second = (await store.claimDueEvents(10, LEASE_MS, T0 + 1000))[0]!;
        const timeout = { started_at_ms: T0 + 1000, status_code: null, latency_ms: 50, error: 'timed out' };
        expect(await store.recordDelivery(second.id, second.lease_token, timeout, { state: 'dead' })).toBe(true);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ id: event!.id, state: 'dead', failures: 2 });
        expect(await store.claimDueEvents(10, LEASE_MS, T0 + 1_000_000)).toEqual([]);
        expect((await store.listDeadEvents('owner-a', 10)).map((e) => e.id)).toEqual([event!.id]);
        expect(await store.listDeadEvents('owner-b', 10)).toEqual([]);
        expect(await store.outboxCounts()).toEqual({ pending: 0, dead: 1 });

        const again = await store.redeliverTaskEvents(task.id, T0 + 2000);
        expect(again).toEqual([expect.objectContaining({ id: event!.id, state: 'pending', failures: 0, next_run_at_ms: T0 + 2000 })]);
        const third = (await store.claimDueEvents(10, LEASE_MS, T0 + 2000))[0]!;
        const ok = { started_at_ms: T0 + 2000, status_code: 204, latency_ms: 3, error: null };
        expect(await store.recordDelivery(third.id, third.lease_token, ok, { state: 'delivered' })).toBe(true);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'delivered', delivered_at_ms: T0 + 2003 });
        expect(await store.listDeliveryAttempts([event!.id])).toEqual([
          { event_id: event!.id, n: 1, ...fail },
          { event_id: event!.id, n: 2, ...timeout },
          { event_id: event!.id, n: 3, ...ok },
        ]);
        expect(await store.outboxCounts()).toEqual({ pending: 0, dead: 0 });
        expect(await store.redeliverTaskEvents('nope', T0)).toEqual([]);
      });

      it('a redelivery of an event being sent keeps its lease: the attempt is recorded, then it is sent once more', async () => {
        const store = await open();
        const task = await processingTask(store, cached());
        await store.markCompleted(task.id, task.lease_token, 'video', T0 + 10);
        const [claimed] = await store.claimDueEvents(10, LEASE_MS, T0 + 10);
        // Several redeliveries while the attempt is in flight: none takes the lease, none makes it claimable.
        for (const at of [T0 + 20, T0 + 21, T0 + 22]) {
          expect(await store.redeliverTaskEvents(task.id, at)).toEqual([expect.objectContaining({ id: claimed!.id, state: 'pending', failures: 0 })]);
        }
        expect(await store.claimDueEvents(10, LEASE_MS, T0 + 30)).toEqual([]);
        expect(await store.renewEventLease(claimed!.id, claimed!.lease_token, T0 + 100_000)).toBe(true);
        const ok = { started_at_ms: T0 + 10, status_code: 200, latency_ms: 25, error: null };
        expect(await store.recordDelivery(claimed!.id, claimed!.lease_token, ok, { state: 'delivered' })).toBe(true);
        // Asked for after the attempt began: due again from the last ask, not delivered, failures afresh.
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'pending', failures: 0, next_run_at_ms: T0 + 22, delivered_at_ms: null });
        const again = (await store.claimDueEvents(10, LEASE_MS, T0 + 40))[0]!;
        expect(again.id).toBe(claimed!.id);
        const ok2 = { ...ok, started_at_ms: T0 + 40 };
        expect(await store.recordDelivery(again.id, again.lease_token, ok2, { state: 'delivered' })).toBe(true);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'delivered', delivered_at_ms: T0 + 65 });
        expect((await store.listDeliveryAttempts([claimed!.id])).map((a) => a.started_at_ms)).toEqual([T0 + 10, T0 + 40]);

        // A failing attempt during which a redelivery is asked: due again at once, its failures not counted.
        await store.redeliverTaskEvents(task.id, T0 + 100);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'pending', delivered_at_ms: null }); // a delivered one: cleared
        const third = (await store.claimDueEvents(10, LEASE_MS, T0 + 100))[0]!;
        await store.redeliverTaskEvents(task.id, T0 + 101);
        const fail = { started_at_ms: T0 + 100, status_code: 500, latency_ms: 1, error: 'the receiver answered 500' };
        expect(await store.recordDelivery(third.id, third.lease_token, fail, { state: 'dead' })).toBe(true);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'pending', failures: 0, next_run_at_ms: T0 + 101 });

        // A lease that lapsed: the next claim is the redelivery asked for, and its outcome stands.
        const fourth = (await store.claimDueEvents(10, LEASE_MS, T0 + 101))[0]!;
        await store.redeliverTaskEvents(task.id, T0 + 102);
        const retaken = (await store.claimDueEvents(10, LEASE_MS, T0 + 101 + LEASE_MS + 1))[0]!;
        expect(retaken.lease_token).not.toBe(fourth.lease_token);
        expect(await store.recordDelivery(retaken.id, retaken.lease_token, ok, { state: 'delivered' })).toBe(true);
        expect((await store.listTaskEvents(task.id))[0]).toMatchObject({ state: 'delivered' });
      });

      it('gives one event to one of two deliverers claiming at once', async () => {
        const a = await open();
        const b = await open();
        const task = await processingTask(a, cached());
        await a.markCompleted(task.id, task.lease_token, 'video', T0 + 10);
        const [x, y] = await Promise.all([a.claimDueEvents(10, LEASE_MS, T0 + 10), b.claimDueEvents(10, LEASE_MS, T0 + 10)]);
        expect(x.length + y.length).toBe(1);
        // A lease that lapsed is claimed again, with a new token that fences the old one out.
        const first = [...x, ...y][0]!;
        const retaken = await b.claimDueEvents(10, LEASE_MS, T0 + 10 + LEASE_MS + 1);
        expect(retaken.map((e) => e.id)).toEqual([first.id]);
        expect(retaken[0]!.lease_token).not.toBe(first.lease_token);
        const ok = { started_at_ms: T0 + 11, status_code: 200, latency_ms: 1, error: null };
        expect(await a.recordDelivery(first.id, first.lease_token, ok, { state: 'delivered' })).toBe(false);
      });

      it('keeps signing secrets: the current one, and the one kept for a grace, never more than two', async () => {
        const store = await open();
        await store.putWebhookSecret({ id: 's1', team_id: 'team-1', secret_encrypted: 'enc-1', created_at_ms: T0 });
        expect((await store.signingSecrets('team-1', T0 + 1)).map((s) => s.id)).toEqual(['s1']);
        await store.putWebhookSecret({ id: 's2', team_id: 'team-1', secret_encrypted: 'enc-2', created_at_ms: T0 + 10 }, { id: 's1', expires_at_ms: T0 + 100 });
        expect(await store.signingSecrets('team-1', T0 + 50)).toEqual([
          { id: 's2', team_id: 'team-1', secret_encrypted: 'enc-2', created_at_ms: T0 + 10, expires_at_ms: null },
          { id: 's1', team_id: 'team-1', secret_encrypted: 'enc-1', created_at_ms: T0, expires_at_ms: T0 + 100 },
        ]);
        // A second rotation within the grace: s2 kept, s1 stops at once (current + previous only).
        await store.putWebhookSecret({ id: 's3', team_id: 'team-1', secret_encrypted: 'enc-3', created_at_ms: T0 + 60 }, { id: 's2', expires_at_ms: T0 + 500 });
        expect((await store.signingSecrets('team-1', T0 + 60)).map((s) => [s.id, s.expires_at_ms])).toEqual([['s3', null], ['s2', T0 + 500]]);
        expect((await store.signingSecrets('team-1', T0 + 500)).map((s) => s.id)).toEqual(['s3']);
        expect(await store.signingSecrets('team-2', T0)).toEqual([]);
        // A rotation keeping none stops the others at once.
        await store.putWebhookSecret({ id: 's4', team_id: 'team-1', secret_encrypted: 'enc-4', created_at_ms: T0 + 600 });
        expect((await store.signingSecrets('team-1', T0 + 600)).map((s) => s.id)).toEqual(['s4']);
      });
    });

    describe('metricsSnapshot', () => {
      it('reads open tasks, jobs in flight, and each team with its reservations and budgets in the current windows', async () => {
        const store = await open();
        await store.createTeam(team('team-1', { credits_per_day: 100 }));
        await store.createTeam(team('team-2'));
        const owned = (overrides: Partial<NewTask> = {}) => newTask({ owner_id: 'team-1', ...overrides });
        const done = await processingTask(store, owned());
        expect(await store.markCompleted(done.id, done.lease_token, 'video', T0 + 5)).not.toHaveProperty('refused');
        await processingTask(store, owned({ credits_reserved: 5 }));
        await store.createTask(owned({ credits_reserved: 3 }));

        const snapshot = await store.metricsSnapshot(T0 + 100);
        const byStatus = Object.fromEntries(snapshot.open_tasks.map((r) => [r.status, r.tasks]));
        expect(byStatus).toEqual({ pending: 1, processing: 1 });
        expect(snapshot.jobs_in_flight).toEqual([{ provider_id: 'sim', jobs: 1 }]);
        const teams = [...snapshot.teams].sort((a, b) => a.id.localeCompare(b.id));
        // Settled 8 (the completed task) + reserved 8 (grown to the attempt's price) + reserved 3.
        expect(teams).toEqual([
          { id: 'team-1', name: 'name of team-1', reserved_credits: 11, credits_per_day: 100, credits_per_month: null, credits_day_used: 19, credits_month_used: 19 },
          { id: 'team-2', name: 'name of team-2', reserved_credits: 0, credits_per_day: null, credits_per_month: null, credits_day_used: 0, credits_month_used: 0 },
        ]);
        // In a later day and month, nothing is used yet; the reservations stay.
        const later = (await store.metricsSnapshot(T0 + 40 * 24 * 3600 * 1000)).teams.find((t) => t.id === 'team-1');
        expect(later).toMatchObject({ reserved_credits: 11, credits_day_used: 0, credits_month_used: 0 });
      });
    });

    describe('teams and keys: reads and updates', () => {
      it('gets, finds by name, lists and updates teams', async () => {
        const store = await open();
        await store.createTeam(team('team-2'));
        await store.createTeam({ ...team('team-1'), created_at_ms: T0 + 1 });
        expect(await store.getTeam('team-1')).toStrictEqual({ ...team('team-1'), created_at_ms: T0 + 1 });
        expect(await store.getTeam('team-9')).toBeUndefined();
        expect((await store.findTeamByName('name of team-2'))?.id).toBe('team-2');
        expect(await store.findTeamByName('nobody')).toBeUndefined();
        expect((await store.listTeams()).map((t) => t.id)).toEqual(['team-2', 'team-1']);
        expect(await store.updateTeam('team-2', { credits_per_day: 100, name: 'renamed' })).toMatchObject({ credits_per_day: 100, name: 'renamed' });
        expect(await store.updateTeam('team-9', { credits_per_day: 1 })).toBeUndefined();
      });

      it('gets, lists and updates keys, and finds a caller (key and team) by hash', async () => {
        const store = await open();
        await store.createTeam(team('team-1', { credits_per_month: 500 }));
        await store.insertApiKey(apiKey(2));
        await store.insertApiKey(apiKey(1));
        expect(await store.getApiKey('key-1')).toStrictEqual(apiKey(1));
        expect(await store.getApiKey('key-9')).toBeUndefined();
        expect((await store.listApiKeys('team-1')).map((k) => k.id)).toEqual(['key-1', 'key-2']);
        expect(await store.listApiKeys('team-9')).toEqual([]);
        const updated = await store.updateApiKey('key-1', { allowed_models: ['sora-2'], revoked_at_ms: T0 + 5, max_concurrent: 3 });
        expect(updated).toStrictEqual({ ...apiKey(1), allowed_models: ['sora-2'], revoked_at_ms: T0 + 5, max_concurrent: 3 });
        expect(await store.findCaller('hash-1')).toStrictEqual({ key: updated, team: team('team-1', { credits_per_month: 500 }) });
        expect(await store.findCaller('hash-9')).toBeUndefined();
      });
    });

    describe('quotas and ledger', () => {
      it('refuses a creation past a credit quota with QuotaExceededError, creating and charging nothing', async () => {
        const store = await open();
        await store.createTeam(team('owner-a', { credits_per_day: 10 }));
        await store.createTask(newTask({ id: 'first' }));
        const refused = store.createTask(newTask({ id: 'second' }));
        await expect(refused).rejects.toBeInstanceOf(QuotaExceededError);
        await expect(refused).rejects.toMatchObject({ scope: 'team', quota: 'credits_per_day', limit: 10, used: 8 });
        expect(await store.getTask('second')).toBeUndefined();
        expect((await store.listLedger('owner-a')).map((r) => [r.task_id, r.kind, r.credits])).toEqual([['first', 'reserve', 8]]);
        expect(await store.quotaUsage('team', 'owner-a', T0)).toMatchObject({ credits_day: 8, credits_month: 8, active_tasks: 1 });
      });

      it("refuses a creation past a key's max_concurrent, and frees the slot when a task finishes", async () => {
        const store = await open();
        await store.createTeam(team('owner-a'));
        await store.insertApiKey({ ...apiKey(1, 'owner-a'), id: 'key-a', max_concurrent: 1 });
        await store.createTask(newTask({ id: 'first' }));
        await expect(store.createTask(newTask({ id: 'second' }))).rejects.toMatchObject({ scope: 'key', quota: 'max_concurrent', limit: 1, used: 1 });
        expect((await store.cancel('first', 'owner-a', T0 + 1))?.task.id).toBe('first');
        expect((await store.createTask(newTask({ id: 'third' }))).task.id).toBe('third');
      });

      it('counts requests per minute per key and team in memory, refusing past the tightest limit', async () => {
        const store = await open();
        const t = team('team-1', { reads_per_minute: 3 });
        const k = { ...apiKey(1), reads_per_minute: 2 };
        const admit = (at: number) => store.admitRequest(k, t, 'read', at);
        expect(await admit(T0)).toEqual({ allowed: true, quota: 'reads_per_minute', limit: 2, remaining: 1 });
        expect(await admit(T0 + 1)).toMatchObject({ allowed: true, remaining: 0 });
        expect(await admit(T0 + 2)).toMatchObject({ allowed: false, remaining: 0 });
        expect(await store.admitRequest(k, t, 'submit', T0 + 3)).toEqual({ allowed: true, quota: 'submits_per_minute', limit: null, remaining: null });
        expect((await store.quotaUsage('key', 'key-1', T0 + 4)).reads_minute).toBe(2);
        expect((await store.quotaUsage('team', 'team-1', T0 + 4)).submits_minute).toBe(1);
        expect(await admit(T0 + 60_000)).toMatchObject({ allowed: true });
      });

      it("adjusts a team's spend today, reports settled usage by day, lists open tasks, and recomputes counters that agree", async () => {
        const store = await open();
        await store.createTeam(team('owner-a'));
        const done = await processingTask(store, newTask({ id: 'done' }));
        await store.markCompleted('done', done.lease_token, 'asset', T0 + 10);
        await store.createTask(newTask({ id: 'open', created_at_ms: T0 + 20 }));
        const entry = await store.adjustCredits('owner-a', -3, 'refund', T0 + 30);
        expect(entry).toMatchObject({ team_id: 'owner-a', key_id: null, task_id: null, kind: 'adjust', credits: -3, note: 'refund', created_at_ms: T0 + 30 });
        expect((await store.listLedger('owner-a')).at(-1)).toStrictEqual(entry);
        const day = new Date(T0).toISOString().slice(0, 10);
        expect(await store.usageByDay('owner-a', day, day)).toEqual([{ day, model: 'sim-video', provider_id: 'sim', tasks: 1, credits: 8 }]);
        expect(await store.usageByDay('owner-a', '2000-01-01', '2000-01-02')).toEqual([]);
        expect((await store.listOpenTasks('owner-a')).map((t) => t.id)).toEqual(['open']);
        expect(await store.quotaUsage('team', 'owner-a', T0 + 30)).toMatchObject({ credits_day: 8 + 8 - 3, active_tasks: 1 });
        expect(await store.recomputeUsage()).toBe(0);
      });
    });

    // Several connections (two stores, each with its own connections) acting at once on the same rows: the rules
    // must hold whatever the backend's isolation, not only because a backend happens to serialize every write.
    describe('races', () => {
      const LOOKUP = { fresh_since_ms: 0, hit_credits: 2 };

      it('concurrent identical creations make one leader; the others follow it', async () => {
        const [a, b] = [await open(), await open()];
        const made = await Promise.all(
          Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).createTask(newTask({ cache_key: 'same', cache_status: 'miss' }), LOOKUP)),
        );
        const leaders = made.filter((m) => m.task.source_id === null);
        expect(leaders).toHaveLength(1);
        expect(made.filter((m) => m.task.cache_status === 'coalesced' && m.task.source_id === leaders[0]!.task.id)).toHaveLength(11);
        expect(await a.recomputeUsage()).toBe(0);
      });

      it("concurrent attempts on one provider never pass its max_concurrent", async () => {
        const [a, b] = [await open(), await open()];
        for (let i = 0; i < 8; i++) await a.createTask(newTask());
        const claimed = await a.claimDue('dispatch', 10, LEASE_MS, T0);
        expect(claimed).toHaveLength(8);
        const outcomes = await Promise.all(
          claimed.map((t, i) => (i % 2 ? a : b).startAttempt(t.id, t.lease_token, 'sim', { micro_usd: 400_000, credits: 8, max_concurrent: 3 }, T0 + 1)),
        );
        expect(outcomes.filter((o) => o === 'started')).toHaveLength(3);
        expect(outcomes.filter((o) => o === 'provider_full')).toHaveLength(5);
        expect(await b.countActiveByProvider()).toEqual(new Map([['sim', 3]]));
      });

      it("a leader and its oldest follower cancelled at once: the next follower adopts the job, the rest follow it", async () => {
        const [a, b] = [await open(), await open()];
        const leader = await processingTask(a, newTask({ id: 'leader', cache_key: 'same', cache_status: 'miss' }));
        for (const id of ['f1', 'f2', 'f3']) await a.createTask(newTask({ id, cache_key: 'same', cache_status: 'miss' }), LOOKUP);
        const [gone, alsoGone] = await Promise.all([a.cancel('leader', 'owner-a', T0 + 10), b.cancel('f1', 'owner-a', T0 + 10)]);
        expect(gone?.task.id).toBe('leader');
        expect(alsoGone?.task.id).toBe('f1');
        const [l, f1, f2, f3] = await Promise.all(['leader', 'f1', 'f2', 'f3'].map((id) => a.getTask(id)));
        expect([l?.status, f1?.status]).toEqual(['cancelled', 'cancelled']);
        expect(f2).toMatchObject({ status: 'processing', source_id: null, upstream_id: leader.upstream_id, provider_id: 'sim' });
        expect(f3).toMatchObject({ status: 'processing', source_id: 'f2' });
        expect(await a.countActiveByProvider()).toEqual(new Map([['sim', 1]]));
        expect(await a.recomputeUsage()).toBe(0);
      });

      it('a recount while others reserve and settle corrects nothing, and leaves nothing to correct', async () => {
        const [a, b] = [await open(), await open()];
        const work = Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).createTask(newTask({ credits_reserved: 8 })));
        const recounts = [a.recomputeUsage(), b.recomputeUsage(), a.recomputeUsage()];
        await Promise.all(work);
        expect(await Promise.all(recounts)).toEqual([0, 0, 0]);
        expect(await b.recomputeUsage()).toBe(0);
      });

      it('concurrent reservations never pass a credit quota', async () => {
        const [a, b] = [await open(), await open()];
        await a.createTeam(team('owner-a', { credits_per_day: 40 }));
        const made = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).createTask(newTask())));
        expect(made.filter((m) => m.status === 'fulfilled')).toHaveLength(5);
        for (const m of made) if (m.status === 'rejected') expect(m.reason).toBeInstanceOf(QuotaExceededError);
        expect((await a.quotaUsage('team', 'owner-a', T0)).credits_day).toBe(40);
        expect(await a.recomputeUsage()).toBe(0);
      });

      it('concurrent retries under one idempotency key make one task', async () => {
        const [a, b] = [await open(), await open()];
        const idempotency = { key: 'retry', request_hash: 'h', since_ms: 0 };
        const made = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).createTask(newTask({ id: `try-${i}`, idempotency }))));
        expect(new Set(made.map((m) => m.task.id)).size).toBe(1);
        expect(made.filter((m) => m.report.created.length === 1)).toHaveLength(1);
        expect((await a.quotaUsage('team', 'owner-a', T0)).active_tasks).toBe(1);
      });

      it("concurrent first secrets of a team: one is made, and it is the one that signs", async () => {
        const [a, b] = [await open(), await open()];
        const made = await Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).putFirstWebhookSecret({ id: `s${i}`, team_id: 'team-1', secret_encrypted: `enc-${i}`, created_at_ms: T0 + i })),
        );
        expect(made.filter(Boolean)).toHaveLength(1);
        const signing = await a.signingSecrets('team-1', T0 + 10);
        expect(signing.map((s) => s.id)).toEqual([`s${made.indexOf(true)}`]);
        expect(await a.putFirstWebhookSecret({ id: 'later', team_id: 'team-1', secret_encrypted: 'enc', created_at_ms: T0 + 20 })).toBe(false);
      });

      it('concurrent creations of one team name: one team, the others UniqueViolation', async () => {
        const [a, b] = [await open(), await open()];
        const made = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).createTeam({ ...team(`team-${i}`), name: 'same' })));
        expect(made.filter((m) => m.status === 'fulfilled')).toHaveLength(1);
        for (const m of made) if (m.status === 'rejected') expect(m.reason).toMatchObject({ constraint: 'teams.name' });
        expect(await a.listTeams()).toHaveLength(1);
      });
    });

    describe('refusals say why', () => {
      it('not_found, lease_lost and wrong_state, for every transition that names a lease', async () => {
        const store = await open();
        await store.createTask(newTask({ id: 'pending' }));
        const { lease_token } = await claimOnly(store, 'dispatch', T0);
        expect(await store.markSubmitted('nobody', lease_token, 'up', T0 + 1)).toBe('not_found');
        expect(await store.markSubmitted('pending', 'another', 'up', T0 + 1)).toBe('lease_lost');
        expect(await store.recordProgress('pending', lease_token, 10, T0 + 1, T0 + 1)).toBe('wrong_state');
        expect(await store.markCompleted('pending', lease_token, 'video', T0 + 1)).toEqual({ refused: 'wrong_state' });
        expect(await store.markCompleted('nobody', lease_token, 'video', T0 + 1)).toEqual({ refused: 'not_found' });
        expect(await store.markFailed('pending', 'another', ERROR, T0 + 1)).toEqual({ refused: 'lease_lost' });
        expect(await store.releaseLease('nobody', lease_token, T0 + 2, T0 + 1)).toBe('not_found');
        expect(await store.releaseLease('pending', lease_token, T0 + 2, T0 + 1)).toBe('done');
        // Released: the token is no longer the task's.
        expect(await store.requeue('pending', lease_token, ERROR, T0 + 3, T0 + 2)).toBe('lease_lost');
      });
    });

    describe('circuit breakers shared by replicas', () => {
      const OPEN = { provider: 'sim', model: 'sim-video', state: 'open' as const, since_ms: T0, until_ms: T0 + 30_000, reason: '5 consecutive failures', opened_by: 'submit' as const, pinned: false };

      it('records a transition only when it is at least as new as the stored one, bumping the version', async () => {
        const store = await open();
        expect(await store.listBreakers()).toEqual([]);
        expect(await store.recordBreaker(OPEN)).toBe(1);
        // An older transition (a replica late to write) loses; a newer one wins.
        expect(await store.recordBreaker({ ...OPEN, state: 'closed', since_ms: T0 - 1, until_ms: null, reason: null })).toBeUndefined();
        expect(await store.recordBreaker({ ...OPEN, until_ms: T0 + 60_000, pinned: true })).toBe(2);
        expect(await store.recordBreaker({ ...OPEN, model: 'other', state: 'closed', until_ms: null, reason: null, opened_by: 'job' })).toBe(1);
        // By provider, then model.
        expect(await store.listBreakers()).toEqual([
          { ...OPEN, model: 'other', state: 'closed', until_ms: null, reason: null, opened_by: 'job', probe_holder: null, probe_until_ms: null, version: 1 },
          { ...OPEN, until_ms: T0 + 60_000, pinned: true, probe_holder: null, probe_until_ms: null, version: 2 },
        ]);
      });

      it('leases the probe to one holder at a time, not before the cool-down ends, until it expires or is given back', async () => {
        const store = await open();
        await store.recordBreaker(OPEN);
        // Still cooling down: nobody probes.
        expect(await store.acquireProbe('sim', 'sim-video', 'task-a', T0 + 90_000, T0 + 29_999)).toBe(false);
        const after = T0 + 30_000;
        expect(await store.acquireProbe('sim', 'sim-video', 'task-a', after + 60_000, after)).toBe(true);
        expect(await store.acquireProbe('sim', 'sim-video', 'task-b', after + 60_001, after + 1)).toBe(false);
        // The holder asking again keeps it.
        expect(await store.acquireProbe('sim', 'sim-video', 'task-a', after + 60_000, after + 2)).toBe(true);
        expect(await store.releaseProbe('sim', 'sim-video', 'task-b')).toBe(false);
        expect(await store.releaseProbe('sim', 'sim-video', 'task-a')).toBe(true);
        expect(await store.acquireProbe('sim', 'sim-video', 'task-b', after + 70_000, after + 10)).toBe(true);
        // task-b dies: its lease expires, and another takes it.
        expect(await store.acquireProbe('sim', 'sim-video', 'task-c', after + 200_000, after + 69_999)).toBe(false);
        expect(await store.acquireProbe('sim', 'sim-video', 'task-c', after + 200_000, after + 70_000)).toBe(true);
        const [row] = await store.listBreakers();
        expect(row).toMatchObject({ probe_holder: 'task-c', probe_until_ms: after + 200_000, version: 1 });
        // The probe's outcome (a recorded transition) ends the lease.
        expect(await store.recordBreaker({ ...OPEN, state: 'closed', since_ms: after + 80_000, until_ms: null, reason: null })).toBe(2);
        expect((await store.listBreakers())[0]).toMatchObject({ state: 'closed', probe_holder: null, probe_until_ms: null });
      });

      it('a pair with no row yet gets one (closed, version 0) with its lease', async () => {
        const store = await open();
        expect(await store.acquireProbe('sim', 'new-model', 'task-a', T0 + 1000, T0)).toBe(true);
        expect(await store.listBreakers()).toEqual([
          { provider: 'sim', model: 'new-model', state: 'closed', since_ms: 0, until_ms: null, reason: null, opened_by: 'job', pinned: false, probe_holder: 'task-a', probe_until_ms: T0 + 1000, version: 0 },
        ]);
        // Any transition is newer than that row.
        expect(await store.recordBreaker({ ...OPEN, model: 'new-model' })).toBe(1);
      });

      it('of many replicas asking at once, exactly one gets the probe', async () => {
        const [a, b] = [await open(), await open()];
        await a.recordBreaker(OPEN);
        const asked = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).acquireProbe('sim', 'sim-video', `task-${i}`, T0 + 100_000, T0 + 30_000)));
        expect(asked.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('persistence', () => {
      it('keeps data, schema and leases across reopening', async () => {
        const first = await open();
        await first.createTeam(team());
        await first.insertApiKey(apiKey(1));
        const { id } = (await first.createTask(newTask())).task;
        const { lease_token } = await claimOnly(first, 'dispatch', T0);
        await close(first);

        const second = await open();
        expect(await second.countApiKeys()).toBe(1);
        expect((await second.getTask(id))?.status).toBe('pending');
        expect(await second.claimDue('dispatch', 10, LEASE_MS, T0 + 1)).toEqual([]);
        expect(await second.startAttempt(id, lease_token, 'sim', { micro_usd: 400_000, credits: 8 }, T0 + 2)).toBe('started');
        (await second.createTask(newTask())).task;
      });
    });
  });
}
