// WAL checkpoints off the event loop. With `synchronous = NORMAL` a commit only appends to the WAL (no fsync); the
// fsyncs happen when the WAL is copied back into the database file (a checkpoint). SQLite runs that inside whichever
// commit crosses `wal_autocheckpoint` pages, so one request in every few dozen creates waited for two fsyncs. Here a
// worker thread with a connection of its own runs PASSIVE checkpoints (they never block readers or writers) every
// `intervalMs`, and the request connection's own automatic checkpoint is kept only as a far bound on the WAL's size,
// should the worker fall behind or die. (See https://www.sqlite.org/wal.html#ckpt and better-sqlite3's
// docs/performance.md, "Checkpoint starvation".)
//
// A checkpoint alone does not keep the WAL short: the WAL starts over from its beginning only when a write begins
// after a checkpoint copied every frame, and under a steady stream of commits new frames always arrive while the
// checkpoint runs. The WAL then grew to the far bound (20 000 pages, 80 MB) and the request connection checkpointed
// it inline, fsyncs and all, stalling every request for 50-100 ms. So each round has two passes: the first copies
// whatever is there while writes go on (PASSIVE); when the WAL had frames (a pass cannot tell whether more arrived
// while it ran), the second copies those that did while this process's writes wait (`betweenWrites`, asynchronously:
// the event loop and the reads go on), which is short since few arrived. It is a RESTART checkpoint: it also waits
// for the readers still on the WAL (a read snapshot lasts one turn of the event loop), so that the next write starts
// the WAL over, and the next round's first pass finds only the frames written since this one.
// Rounds come every `intervalMs`, or sooner while the WAL grows fast (nextRoundDelayMs): at 4 000 creates a second it
// gained 20 000 frames a second, reached the far bound within one interval, and the request connection checkpointed
// inline again.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** WAL pages after which a commit on the request connection checkpoints anyway (4 KiB pages: about 80 MB). */
export const FALLBACK_AUTOCHECKPOINT_PAGES = 20_000;
/** WAL pages a round should find, at the pace the WAL grew before it (nextRoundDelayMs). */
export const ROUND_PAGES = 2_000;
/** A second pass that takes longer than this no longer holds this process's writes back (it goes on regardless). */
const MAX_WRITE_PAUSE_MS = 2000;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
parentPort.on('message', (mode) => {
  try { parentPort.postMessage(db.pragma('wal_checkpoint(' + mode + ')')[0]); }
  catch (err) { parentPort.postMessage({ error: String(err && err.message) }); }
});
`;

/** What `PRAGMA wal_checkpoint` reports: frames in the WAL (`log`) and frames copied into the database. */
interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * How long to wait for the next round, in ms: `intervalMs`, or less when the WAL grew fast enough (`framesFound` by
 * a round's first pass, `elapsedMs` after the round before began) to gain more than ROUND_PAGES before then.
 */
export function nextRoundDelayMs(framesFound: number, elapsedMs: number, intervalMs: number): number {
  const frames_per_ms = framesFound / Math.max(1, elapsedMs);
  return frames_per_ms > 0 ? Math.min(intervalMs, Math.floor(ROUND_PAGES / frames_per_ms)) : intervalMs;
}

/**
 * Starts the checkpointing of the SQLite file `file` (already in WAL mode): a thread of its own, a round every
 * `intervalMs` or sooner (nextRoundDelayMs). `betweenWrites(fn)` runs `fn` while this process writes nothing to the file (the store's queue).
 * Returns `stop`, which ends the rounds and the thread (better-sqlite3 closes a thread's connections when the thread
 * ends; a checkpoint cut short is harmless). `onError` hears a checkpoint that failed (the next round tries again).
 */
export function startCheckpointer(
  file: string,
  intervalMs: number,
  betweenWrites: (fn: () => Promise<unknown>) => Promise<unknown>,
  onError: (message: string) => void,
): { stop: () => Promise<void> } {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, driver } });
  let stopped = false;
  /** The answer awaited from the thread (one pass at a time). */
  let answer: ((result: CheckpointResult | undefined) => void) | undefined;
  const settle = (result: CheckpointResult | undefined) => {
    const resolve = answer;
    answer = undefined;
    resolve?.(result);
  };
  worker.on('message', (m: CheckpointResult | { error: string }) => {
    if ('error' in m) {
      onError(m.error);
      settle(undefined);
    } else settle(m);
  });
  worker.on('error', (err) => {
    onError(err.message);
    settle(undefined);
  });
  worker.on('exit', () => {
    stopped = true; // a thread that died checkpoints no more (the request connection's own bound remains)
    settle(undefined);
  });
  worker.unref(); // never what keeps the process alive (after the listeners: a 'message' listener refs it again)

  /** One checkpoint: PASSIVE, or RESTART (it also waits for the readers of the WAL: the next write starts it over). */
  const pass = (mode: 'PASSIVE' | 'RESTART'): Promise<CheckpointResult | undefined> =>
    stopped
      ? Promise.resolve(undefined)
      : new Promise((resolve) => {
          answer = resolve;
          worker.postMessage(mode);
        });
  /** `pending`, or nothing once it has taken MAX_WRITE_PAUSE_MS. */
  const bounded = (pending: Promise<unknown>) => {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, MAX_WRITE_PAUSE_MS)));
    return Promise.race([pending, bound]).finally(() => clearTimeout(timer));
  };

  let timer: NodeJS.Timeout | undefined;
  let lastRoundAt = performance.now();
  const round = async () => {
    const startedAt = performance.now();
    const first = await pass('PASSIVE');
    if (first && first.log > 0) {
      let second: Promise<unknown> | undefined;
      await betweenWrites(() => bounded((second = pass('RESTART'))));
      await second; // one pass at a time, even one that outlasted the pause
    }
    const delay_ms = nextRoundDelayMs(first?.log ?? 0, startedAt - lastRoundAt, intervalMs);
    lastRoundAt = startedAt;
    if (!stopped) timer = setTimeout(round, delay_ms).unref();
  };
  timer = setTimeout(round, intervalMs).unref();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
