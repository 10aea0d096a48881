import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../src/store/sqlite';
import { MIGRATIONS } from '../src/store/sqlite/migrations';
import { describeStoreConformance } from './store-conformance';

let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-store-'));
  file = path.join(dir, 'nested', 'vidgate.db');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describeStoreConformance('sqlite', async () => createSqliteStore(file));

describe('sqlite store', () => {
  it('creates the parent directory and opens in WAL mode at the latest schema version', async () => {
    await createSqliteStore(file).close();
    await createSqliteStore(file).close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    db.close();
  });

  it('never hands one task to two of several claimers running in parallel threads', async () => {
    const store = createSqliteStore(file);
    const ids = Array.from({ length: 1000 }, (_, i) => `task-${i}`);
    for (const id of ids) {
      await store.createTask({
        id,
        owner_id: 'owner',
        key_id: 'key',
        model: 'm',
        request_json: '{}',
        callback_url: null,
        credits_reserved: 1,
        created_at_ms: 0,
        cache_key: null,
        cache_status: 'disabled',
      });
    }
    await store.close();

    const claimed = (await Promise.all([1, 2, 3, 4].map(() => claimInWorker(file, ids.length)))).flat();
    expect(claimed).toHaveLength(ids.length);
    expect(new Set(claimed)).toEqual(new Set(ids));
  });

  it('upgrades a database of the first schema in place: old tasks keep their videos and are no cache entries', async () => {
    fs.mkdirSync(path.dirname(file));
    const db = new Database(file);
    db.exec(MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, credits_settled,
         quota_day, quota_month, attempt, asset_key, created_at_ms, updated_at_ms, completed_at_ms, next_run_at_ms)
       VALUES ('old', 'o', 'k', 'completed', 100, 'm', '{}', 5, 5, '2026-11-24', '2026-11', 1, 'old', 1, 2, 3, 1)`,
    ).run();
    db.close();
    const store = createSqliteStore(file);
    expect(await store.getTask('old')).toMatchObject({ status: 'completed', cache_key: null, cache_status: 'disabled', source_id: null, asset_stored_at_ms: 3 });
    expect((await store.listAssetsStoredBefore(10, 10)).map((t) => t.id)).toEqual(['old']);
    await store.close();
  });

  it('upgrades in place to counted running attempts: the count starts from the attempts running, then follows every change', async () => {
    fs.mkdirSync(path.dirname(file));
    const db = new Database(file);
    const before = MIGRATIONS.length - 1;
    for (const step of MIGRATIONS.slice(0, before)) db.exec(step);
    db.pragma(`user_version = ${before}`);
    const task = (id: string) =>
      `('${id}', 't', 'k', 'processing', 0, 'm', '{}', 40, '2026-11-24', '2026-11', 1, 1, 1, 1)`;
    db.exec(`
      INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, quota_day, quota_month,
        attempt, created_at_ms, updated_at_ms, next_run_at_ms)
      VALUES ${['t1', 't2', 't3', 't4'].map(task).join(', ')};
      INSERT INTO task_attempts (task_id, n, provider_id, micro_usd, credits, started_at_ms, outcome)
      VALUES ('t1', 1, 'a', 1, 40, 1, 'running'), ('t2', 1, 'a', 1, 40, 1, 'running'), ('t3', 1, 'b', 1, 40, 1, 'running'),
        ('t4', 1, 'b', 1, 40, 1, 'failed');
    `);
    db.close();
    const store = createSqliteStore(file);
    expect(await store.countActiveByProvider()).toEqual(new Map([['a', 2], ['b', 1]]));
    // Every way an attempt can change, written as SQL so that the triggers alone are tested. `raw` stands for another
    // process: the store sees its commits from the next turn of the event loop (see src/store/sqlite/backend.ts).
    const raw = new Database(file);
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
    raw.exec(`
      UPDATE task_attempts SET outcome = 'completed' WHERE task_id = 't1';
      UPDATE task_attempts SET provider_id = 'c' WHERE task_id = 't3';
      UPDATE task_attempts SET outcome = 'running' WHERE task_id = 't4';
      INSERT INTO task_attempts (task_id, n, provider_id, micro_usd, credits, started_at_ms, outcome) VALUES ('t1', 2, 'c', 1, 40, 2, 'running');
      UPDATE task_attempts SET started_at_ms = 3 WHERE task_id = 't2';
    `);
    await nextTurn();
    expect(await store.countActiveByProvider()).toEqual(new Map([['a', 1], ['b', 1], ['c', 2]]));
    raw.exec(`DELETE FROM task_attempts WHERE outcome = 'running'`);
    await nextTurn();
    expect(await store.countActiveByProvider()).toEqual(new Map());
    raw.close();
    await store.close();
  });

  it('upgrades money and rate limits in place: attempt prices to whole micro-USD, requests per minute to reads and submissions', async () => {
    fs.mkdirSync(path.dirname(file));
    const db = new Database(file);
    for (const step of MIGRATIONS.slice(0, 2)) db.exec(step);
    db.pragma('user_version = 2');
    db.exec(`
      INSERT INTO teams (id, name, created_at_ms, requests_per_minute) VALUES ('t', 'team', 1, 600), ('u', 'unlimited', 1, NULL);
      INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at_ms, requests_per_minute) VALUES ('k', 't', 'key', 'h', 'vg_', 1, 7);
      INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, quota_day, quota_month,
        attempt, created_at_ms, updated_at_ms, next_run_at_ms)
      VALUES ('task', 't', 'k', 'completed', 100, 'm', '{}', 120, '2026-11-24', '2026-11', 2, 1, 2, 1);
      INSERT INTO task_attempts (task_id, n, provider_id, usd, credits, started_at_ms, outcome)
      VALUES ('task', 1, 'a', ${0.1 * 12}, 120, 1, 'retried'), ('task', 2, 'b', ${0.07 * 4}, 28, 2, 'completed');
      INSERT INTO usage_counters (scope, win, used) VALUES ('team:t', 'minute:2026-11-24T10:00', 3), ('team:t', 'day:2026-11-24', 120);
    `);
    db.close();
    const store = createSqliteStore(file);
    expect((await store.listAttempts(['task'])).map((a) => a.micro_usd)).toEqual([1_200_000, 280_000]);
    expect(await store.getTeam('t')).toMatchObject({ reads_per_minute: 600, submits_per_minute: 600 });
    expect(await store.getTeam('u')).toMatchObject({ reads_per_minute: null, submits_per_minute: null });
    expect(await store.getApiKey('k')).toMatchObject({ reads_per_minute: 7, submits_per_minute: 7 });
    expect(await store.getTeam('t')).not.toHaveProperty('requests_per_minute');
    expect(await store.quotaUsage('team', 't', Date.parse('2026-11-24T10:00:30Z'))).toMatchObject({ credits_day: 120, reads_minute: 0, submits_minute: 0 });
    await store.close();
  });

  describe('read snapshots: the reads of one event-loop turn share one read transaction', () => {
    const NO_LIMITS = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };
    const newTeam = (id: string) => ({ id, name: 'before', created_at_ms: 1, ...NO_LIMITS });
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

    it('another process\'s commit is seen from the next turn on; within a turn the reads agree with each other', async () => {
      const store = createSqliteStore(file);
      await store.createTeam(newTeam('t1'));
      const other = new Database(file); // stands for another process (a connection this process's store does not know)
      try {
        expect((await store.getTeam('t1'))!.name).toBe('before'); // opens this turn's snapshot
        other.prepare("UPDATE teams SET name = 'after' WHERE id = 't1'").run();
        expect((await store.getTeam('t1'))!.name).toBe('before'); // same turn: the same snapshot
        await nextTurn();
        expect((await store.getTeam('t1'))!.name).toBe('after');
      } finally {
        other.close();
        await store.close();
      }
    });

    it("this process's writes end every snapshot first: a read right after a write sees it, on any of its connections", async () => {
      const a = createSqliteStore(file);
      const b = createSqliteStore(file);
      try {
        await a.createTeam(newTeam('t1'));
        await nextTurn();
        expect((await a.getTeam('t1'))!.name).toBe('before'); // opens a's snapshot
        expect((await b.getTeam('t1'))!.name).toBe('before'); // and b's
        await b.updateTeam('t1', { name: 'by b' }); // a statement that writes, outside transactions, on b's connection
        expect((await a.getTeam('t1'))!.name).toBe('by b');
        expect((await b.getTeam('t1'))!.name).toBe('by b');
        expect(await a.listLedger('t1')).toEqual([]); // a's snapshot again
        await b.adjustCredits('t1', 5, 'a transaction on b', 1);
        expect((await a.listLedger('t1')).map((e) => e.credits)).toEqual([5]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('a snapshot never outlives its turn: a writer in another process is not held up, and the WAL checkpoints whole', async () => {
      const store = createSqliteStore(file);
      await store.createTeam(newTeam('t1'));
      const other = new Database(file);
      try {
        for (let i = 0; i < 20; i++) await store.getTeam('t1');
        await nextTurn();
        other.prepare("UPDATE teams SET name = 'after' WHERE id = 't1'").run();
        // A reader inside the WAL would leave frames behind (busy = 1): no snapshot is open between turns.
        expect(other.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
      } finally {
        other.close();
        await store.close();
      }
    });
  });

  it('refuses a database migrated by a newer build', () => {
    fs.mkdirSync(path.dirname(file));
    const db = new Database(file);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => createSqliteStore(file)).toThrow(/newer/);
  });
});

const STORE_MODULE = new URL('../src/store/sqlite/index.ts', import.meta.url).href;

// A worker thread with its own connection, claiming dispatch work in `rounds` batches of three.
const CLAIM = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { tsImport } = await import('tsx/esm/api');
  const { createSqliteStore } = await tsImport(workerData.module, workerData.module);
  const store = createSqliteStore(workerData.file);
  const ids = [];
  for (let round = 0; round < workerData.rounds; round++) {
    ids.push(...(await store.claimDue('dispatch', 3, 60000, 1)).map((t) => t.id));
  }
  await store.close();
  parentPort.postMessage(ids);
})();
`;

function claimInWorker(dbFile: string, rounds: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(CLAIM, { eval: true, workerData: { file: dbFile, module: STORE_MODULE, rounds } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}
