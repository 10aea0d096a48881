import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { nextRoundDelayMs, ROUND_PAGES, startCheckpointer } from '../src/store/sqlite/checkpointer';

let dir: string;
let db: Database.Database;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-checkpointer-'));
  file = path.join(dir, 'vidgate.db');
  db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0'); // only the checkpointer copies the WAL back
  db.exec('CREATE TABLE t (v TEXT)');
});

afterEach(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The WAL header's salts, which change each time the WAL starts over (https://www.sqlite.org/fileformat.html#wal_file_format). */
const salts = () => fs.readFileSync(`${file}-wal`).subarray(16, 24).toString('hex');
const write = () => db.prepare('INSERT INTO t (v) VALUES (?)').run('x'.repeat(10_000));

it('a round with frames in the WAL ends with a second pass between writes, after which the next write starts the WAL over', async () => {
  for (let i = 0; i < 20; i++) write();
  const before = salts();
  const paused: string[] = [];
  let roundDone!: () => void;
  const done = new Promise<void>((resolve) => (roundDone = resolve));
  const checkpointer = startCheckpointer(
    file,
    10,
    async (fn) => {
      // A commit of another connection lands after the first pass (as under a steady stream): the second pass copies it.
      const other = new Database(file);
      other.prepare('INSERT INTO t (v) VALUES (?)').run('late');
      other.close();
      paused.push('pause');
      await fn();
      roundDone();
    },
    (message) => paused.push(`error: ${message}`),
  );
  try {
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    expect(paused).toEqual(['pause']);
    write();
    expect(salts()).not.toBe(before); // every frame was copied back: the write started the WAL over
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 22 });
  } finally {
    await checkpointer.stop();
  }
});

it('a round with an empty WAL holds no write back', async () => {
  let paused = 0;
  const checkpointer = startCheckpointer(file, 5, async (fn) => void (paused++, await fn()), () => undefined);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)'); // nothing left in the WAL
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(paused).toBe(0);
  } finally {
    await checkpointer.stop();
  }
});

it('paces its rounds by how fast the WAL grew: the interval when slow, sooner when fast, never past it', () => {
  expect(nextRoundDelayMs(0, 1000, 1000)).toBe(1000);
  expect(nextRoundDelayMs(500, 1000, 1000)).toBe(1000); // 500 frames a second: ROUND_PAGES in 4 s
  // 20 000 frames a second (4 000 creates a second): ROUND_PAGES in 100 ms.
  expect(nextRoundDelayMs(20_000, 1000, 1000)).toBe(ROUND_PAGES / 20);
  expect(nextRoundDelayMs(2_000, 100, 1000)).toBe(ROUND_PAGES / 20);
  expect(nextRoundDelayMs(2_000, 0, 1000)).toBe(1); // no time at all counts as 1 ms
});
