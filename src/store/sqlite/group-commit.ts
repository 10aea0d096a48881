// The queue of one SQLite file's transactions in this process, with group commit: the transactions waiting when one
// physical transaction begins, and those that join while it runs, share it (BEGIN IMMEDIATE ... COMMIT), each after
// the first in a savepoint of its own. A transaction that throws is rolled back to its savepoint (the first: the
// whole physical transaction, which holds nothing else yet) and its caller gets its error; the others go on. Every
// caller hears its outcome only after the COMMIT: nothing is acknowledged before it is in the WAL, and when the
// COMMIT fails every caller whose transaction succeeded gets that error. A batch is bounded
// (MAX_BATCH transactions, MAX_BATCH_MS of work) so that a caller's wait stays short.
//
// What it saves: a commit writes every page the transaction changed to the WAL, and most creates change the same
// pages (the last leaf of each index of `tasks`, of the ledger, the quota counters): n transactions in one commit
// write them once.

/** Transactions at most in one physical transaction. */
export const MAX_BATCH = 64;
/** No transaction joins a batch that has been open this long (ms). */
export const MAX_BATCH_MS = 5;

/** The statements of one connection the queue runs; each throws the store's errors (already translated). */
export interface Connection<T> {
  /** What a transaction's function is given. */
  tx: T;
  begin(): void;
  commit(): void;
  rollback(): void;
  /** SAVEPOINT, RELEASE and ROLLBACK TO of one fixed name (members do not nest). */
  savepoint(): void;
  release(): void;
  rollbackTo(): void;
  /** Whether the connection still has the physical transaction open (some errors roll it back whole). */
  inTransaction(): boolean;
}

/** The turn-taking of one file's connections in this process. */
export interface Queue {
  /** Whether a physical transaction is open (a statement outside transactions must wait for it: `after`). */
  readonly open: boolean;
  /** Runs `fn` after everything queued before it, outside any transaction. */
  after<T>(fn: () => Promise<T> | T): Promise<T>;
  /** Runs `fn` as one transaction of `conn` (in a savepoint of a shared physical transaction); resolves after COMMIT. */
  transaction<C, T>(conn: Connection<C>, fn: (tx: C) => Promise<T>): Promise<T>;
}

interface Settle {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}
type AfterJob = Settle & { kind: 'after'; fn: () => unknown };
type TxJob = Settle & { kind: 'tx'; conn: Connection<unknown>; fn: (tx: unknown) => Promise<unknown> };
type Outcome = { job: TxJob; ok: boolean; value: unknown };

/** A new, empty queue. */
export function createQueue(): Queue {
  const jobs: (AfterJob | TxJob)[] = [];
  let running = false;
  let open = false;

  const push = <T>(job: Omit<AfterJob, keyof Settle> | Omit<TxJob, keyof Settle>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      jobs.push({ ...job, resolve, reject } as AfterJob | TxJob);
      if (!running) {
        running = true;
        // Not before the event loop's current turn ends: the requests read in this turn queue their transactions
        // first and share the batch (a microtask would start it with the first alone, as each read is followed by
        // the microtasks it queued).
        setImmediate(drain);
      }
    });

  async function drain(): Promise<void> {
    for (let job = jobs.shift(); job; job = jobs.shift()) {
      if (job.kind === 'tx') {
        await batch(job);
        // The next batch in a later turn: callers that queue their next transaction as soon as they hear back would
        // otherwise keep this loop in microtasks and starve the event loop (requests, timers, I/O).
        if (jobs.length > 0) return void setImmediate(drain);
      } else {
        try {
          job.resolve(await job.fn());
        } catch (err) {
          job.reject(err);
        }
      }
    }
    running = false;
  }

  /** One physical transaction: `first`, then the transactions of the same connection next in the queue. */
  async function batch(first: TxJob): Promise<void> {
    const conn = first.conn;
    try {
      conn.begin();
    } catch (err) {
      first.reject(err);
      return;
    }
    open = true;
    const started_ms = performance.now();
    const outcomes: Outcome[] = [];
    let lost: { error: unknown } | undefined; // what ended the physical transaction before its COMMIT
    for (let job: TxJob | undefined = first; job; job = next()) {
      // The first needs no savepoint: when it fails, the whole transaction (its own writes) is rolled back.
      const alone = job === first;
      try {
        if (!alone) conn.savepoint();
        const value = await job.fn(conn.tx);
        if (!alone) conn.release();
        outcomes.push({ job, ok: true, value });
      } catch (err) {
        outcomes.push({ job, ok: false, value: err });
        if (alone || !conn.inTransaction()) lost = { error: err };
        else {
          try {
            conn.rollbackTo();
            conn.release();
          } catch (undoError) {
            lost = { error: undoError };
          }
        }
        if (lost) break;
      }
    }
    if (!lost) {
      try {
        conn.commit();
      } catch (err) {
        lost = { error: err };
      }
    }
    if (lost && conn.inTransaction()) {
      try {
        conn.rollback();
      } catch {
        // The connection rolls back on its own when it closes; the callers already have the error that matters.
      }
    }
    open = false;
    for (const { job, ok, value } of outcomes) {
      if (!ok) job.reject(value);
      else if (lost) job.reject(lost.error);
      else job.resolve(value);
    }

    function next(): TxJob | undefined {
      const head = jobs[0];
      if (head?.kind !== 'tx' || head.conn !== conn || outcomes.length >= MAX_BATCH || performance.now() - started_ms >= MAX_BATCH_MS) return undefined;
      return jobs.shift() as TxJob;
    }
  }

  return {
    get open() {
      return open;
    },
    after: (fn) => push({ kind: 'after', fn }),
    transaction: (conn, fn) => push({ kind: 'tx', conn: conn as Connection<unknown>, fn: fn as (tx: unknown) => Promise<unknown> }),
  };
}
