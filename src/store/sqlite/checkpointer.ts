// WAL checkpoints off the event loop. With `synchronous = NORMAL` a commit only appends to the WAL (no fsync); the
// fsyncs happen when the WAL is copied back into the database file (a checkpoint). SQLite runs that inside whichever
// commit crosses `wal_autocheckpoint` pages, so one request in every few dozen creates waited for two fsyncs. Here a
// worker thread with a connection of its own runs PASSIVE checkpoints (they never block readers or writers) every
// `intervalMs`, and the request connection's own automatic checkpoint is kept only as a far bound on the WAL's size,
// should the worker fall behind or die. (See https://www.sqlite.org/wal.html#ckpt and better-sqlite3's
// docs/performance.md, "Checkpoint starvation".)
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** WAL pages after which a commit on the request connection checkpoints anyway (4 KiB pages: about 80 MB). */
export const FALLBACK_AUTOCHECKPOINT_PAGES = 20_000;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage(String(err && err.message)); }
}, workerData.intervalMs);
`;

/**
 * Starts the checkpointing thread for the SQLite file `file` (already in WAL mode). Returns `stop`, which ends the
 * thread (better-sqlite3 closes a thread's connections when the thread ends; a checkpoint cut short is harmless).
 * `onError` hears a checkpoint that failed (the next one tries again).
 */
export function startCheckpointer(file: string, intervalMs: number, onError: (message: string) => void): { stop: () => Promise<void> } {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, driver } });
  worker.on('message', onError);
  worker.on('error', (err) => onError(err.message));
  worker.unref(); // never what keeps the process alive (after the listeners: a 'message' listener refs it again)
  return {
    async stop() {
      await worker.terminate();
    },
  };
}
