// Group commit in the SQLite backend (src/store/sqlite/group-commit.ts), on a real file: transactions waiting together
// share one physical transaction, each in its own savepoint. One that throws is undone alone and its caller gets its
// error; no caller hears of success before the COMMIT (a second connection, outside the queue, sees the rows by then);
// a COMMIT that fails fails every transaction of the batch.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteBackend, type SqliteBackend } from '../src/store/sqlite/backend';
import { MAX_BATCH } from '../src/store/sqlite/group-commit';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A backend over a new file with a table `t (n)` and a table `child` whose key to `t` is checked at COMMIT. */
function open(): { backend: SqliteBackend; file: string; other: Database.Database } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-gc-'));
  const file = path.join(dir, 'gc.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.exec(`CREATE TABLE t (n INTEGER PRIMARY KEY);
    CREATE TABLE child (n INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED)`);
  const other = new Database(file, { readonly: true });
  const backend = createSqliteBackend(db, file, async () => {
    db.close();
  });
  closers.push(async () => {
    await backend.close();
    other.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { backend, file, other };
}

const committed = (other: Database.Database) => other.prepare('SELECT n FROM t ORDER BY n').pluck().all();

describe('SQLite group commit', () => {
  it('undoes a failing transaction alone: the others of its batch commit, and its caller gets its own error', async () => {
    const { backend, other } = open();
    const insert = (n: number, fail = false) =>
      backend.transaction(async (tx) => {
        await tx.run('INSERT INTO t (n) VALUES (@n)', { n });
        if (fail) throw new Error(`transaction ${n} failed`);
        return n;
      });
    // Queued together: one batch.
    const outcomes = await Promise.allSettled([insert(1), insert(2, true), insert(3), insert(4, true), insert(5)]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([
      1,
      'transaction 2 failed',
      3,
      'transaction 4 failed',
      5,
    ]);
    expect(committed(other)).toEqual([1, 3, 5]);
  });

  it('undoes the first transaction of a batch alone, too', async () => {
    const { backend, other } = open();
    const outcomes = await Promise.allSettled([
      backend.transaction(async (tx) => {
        await tx.run('INSERT INTO t (n) VALUES (1)');
        throw new Error('first failed');
      }),
      backend.transaction(async (tx) => tx.run('INSERT INTO t (n) VALUES (2)')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled']);
    expect(committed(other)).toEqual([2]);
  });

  it('resolves no transaction before the COMMIT of its batch, and every one once it is committed', async () => {
    const { backend, other } = open();
    const settled: number[] = [];
    const seenByOther: number[][] = [];
    const insert = (n: number) =>
      backend
        .transaction(async (tx) => {
          await tx.run('INSERT INTO t (n) VALUES (@n)', { n });
          // Another connection sees nothing of this batch yet, and no caller has heard back.
          seenByOther.push(committed(other) as number[]);
          expect(settled).toEqual([]);
          return n;
        })
        .then((n) => {
          // Once a caller hears back, its row is committed (visible outside the queue).
          expect(committed(other)).toContain(n);
          settled.push(n);
        });
    await Promise.all([insert(1), insert(2), insert(3)]);
    expect(seenByOther).toEqual([[], [], []]);
    expect(settled).toEqual([1, 2, 3]);
  });

  it('fails every transaction of a batch whose COMMIT fails, and commits none of them', async () => {
    const { backend, other } = open();
    const ok = (n: number) => backend.transaction(async (tx) => tx.run('INSERT INTO t (n) VALUES (@n)', { n }));
    // A child without its parent passes its statement and fails the COMMIT (a deferred foreign key).
    const orphan = backend.transaction(async (tx) => tx.run('INSERT INTO child (n) VALUES (99)'));
    const outcomes = await Promise.allSettled([ok(1), orphan, ok(2)]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const o of outcomes) expect(String((o as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
    expect(committed(other)).toEqual([]);
    // The queue goes on: the next transaction has a physical transaction of its own.
    await ok(3);
    expect(committed(other)).toEqual([3]);
  });

  it('bounds a batch at MAX_BATCH transactions: more waiting commit in several', async () => {
    const { backend, other } = open();
    const visibleAtStart: number[] = [];
    const n = MAX_BATCH * 2 + 1;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        backend.transaction(async (tx) => {
          visibleAtStart.push((committed(other) as number[]).length);
          await tx.run('INSERT INTO t (n) VALUES (@n)', { n: i });
        }),
      ),
    );
    // Each transaction sees outside the queue what the batches before its own committed: with at most MAX_BATCH
    // in a batch, at least the transactions up to MAX_BATCH - 1 places before it (a batch may also end early, on
    // its time bound).
    expect(visibleAtStart[0]).toBe(0);
    visibleAtStart.forEach((visible, i) => expect(visible).toBeGreaterThanOrEqual(i - MAX_BATCH + 1));
    expect(committed(other)).toHaveLength(n);
  });

  it('never starves the event loop: a timer fires while writers queue their next transaction as soon as they hear back', async () => {
    const { backend, other } = open();
    let fired = false;
    setTimeout(() => (fired = true), 1);
    let n = 0;
    // Ten writers, each until the timer has fired (or a bound far past it, should it never fire).
    const writer = async () => {
      while (!fired && n < 20_000) {
        const v = ++n;
        await backend.transaction((tx) => tx.run('INSERT INTO t (n) VALUES (@v)', { v }));
      }
    };
    await Promise.all(Array.from({ length: 10 }, writer));
    expect(fired).toBe(true);
    expect(n).toBeLessThan(20_000);
    expect(committed(other)).toHaveLength(n);
  });

  it('holds every write back while betweenWrites runs, those outside transactions too (UPDATE ... RETURNING included); reads go on', async () => {
    const { backend, other } = open();
    await backend.transaction((tx) => tx.run('INSERT INTO t (n) VALUES (1)'));
    let resume!: () => void;
    const paused = backend.betweenWrites(() => new Promise<void>((resolve) => (resume = resolve)));
    await new Promise((r) => setImmediate(r)); // the pause has begun
    const done: string[] = [];
    const writes = [
      backend.read.run('INSERT INTO t (n) VALUES (2)').then(() => done.push('run')),
      backend.read.get('UPDATE t SET n = 3 WHERE n = 2 RETURNING n').then(() => done.push('returning')),
      backend.transaction((tx) => tx.run('INSERT INTO t (n) VALUES (4)')).then(() => done.push('transaction')),
    ];
    expect(await backend.read.all('SELECT n FROM t')).toEqual([{ n: 1 }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toEqual([]);
    expect(committed(other)).toEqual([1]);
    resume();
    await Promise.all([paused, ...writes]);
    expect(done).toEqual(['run', 'returning', 'transaction']);
    expect(committed(other)).toEqual([1, 3, 4]);
  });
});
