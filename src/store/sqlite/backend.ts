// The rules' primitives (../rules/sql.ts) over one better-sqlite3 connection. The rules are async, so a transaction
// spans awaits during which other calls would run: every transaction, every write, and every read issued while a
// transaction is open, waits its turn in one queue. The queue is shared by every connection of this process to the same file, because a
// connection that waited synchronously for the write lock held by another across an await would block the thread
// that must finish it (until busy_timeout). A write transaction begins IMMEDIATE (it takes the write lock at once),
// so other processes on the file serialize with it as well; Tx.lock has nothing to add.
//
// Group commit: the transactions waiting in the queue run in one physical transaction (BEGIN IMMEDIATE ... COMMIT),
// each in a savepoint of its own, so that the WAL pages they share are written once (see group-commit.ts).
//
// Read snapshots: the reads outside transactions in one turn of the event loop share one read transaction (BEGIN ...
// COMMIT at the end of the turn, on setImmediate). Each statement on its own would begin and end a read transaction,
// taking and dropping a lock on the WAL index (two fcntl calls) each time: a status poll makes three reads, and those
// six system calls cost as much as the reads. Before any write of this process to the file (a transaction, or a
// statement that is not read-only) every connection's snapshot ends, so a read always sees what this process wrote
// before it. What another process commits is seen from the next turn on (as if it had committed a moment later).
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Backend, Dialect, Params, Sql, Tx } from '../rules/sql';
import { translateSqliteError } from './errors';
import { createQueue, type Connection, type Queue } from './group-commit';

export const sqliteDialect: Dialect = {
  greatest: (a, b) => `max(${a}, ${b})`,
  least: (a, b) => `min(${a}, ${b})`,
  randomToken: 'lower(hex(randomblob(16)))',
  jsonTexts: (param) => `(SELECT value FROM json_each(${param}))`,
  jsonPairs: (param) => `(SELECT value ->> 0, value ->> 1 FROM json_each(${param}))`,
  forUpdate: '',
  skipLocked: '',
  excludeWriters: () => undefined,
  readBackInserts: true,
};

/** A prepared statement; one that returns rows is in raw mode (a row is an array), `decode` makes it an object. */
interface Prepared {
  stmt: Database.Statement;
  decode: (row: unknown[]) => Record<string, unknown>;
}

/**
 * Prepares `sql`. A statement's rows are read as arrays and made objects by an object literal compiled for its
 * columns: the same keys, key order and values as better-sqlite3's own objects (a repeated name keeps its first
 * place and its last value, as there), which it builds property by property from C++ (a SELECT of one 34-column task
 * by id: about 10 µs in objects, 5.5 µs in arrays and a literal). Should
 * the columns change under the statement (SQLite recompiles it after another connection's migration), a row of
 * another width recompiles the literal.
 */
function prepareStatement(db: Database.Database, sql: string): Prepared {
  const stmt = db.prepare(sql);
  if (!stmt.reader) return { stmt, decode: (row) => row as unknown as Record<string, unknown> };
  stmt.raw(true);
  let width = -1;
  let literal: Prepared['decode'] = () => ({});
  const compile = () => {
    const names = stmt.columns().map((c) => c.name);
    width = names.length;
    const fields = names.map((name, i) => `${JSON.stringify(name)}: row[${i}]`).join(', ');
    // `"__proto__": value` in a literal sets the prototype rather than a key: such rows are built key by key.
    literal = names.includes('__proto__')
      ? (row) => Object.fromEntries(names.map((name, i) => [name, row[i]]))
      : (new Function('row', `return { ${fields} };`) as Prepared['decode']);
  };
  return {
    stmt,
    decode: (row) => {
      if (row.length !== width) compile();
      return literal(row);
    },
  };
}

/** What this process's connections to one file share: the queue, and how to end each connection's read snapshot. */
interface FileShare {
  queue: Queue;
  snapshotEnds: Set<() => void>;
}
/** By resolved path. */
const files = new Map<string, FileShare>();

/** The shared Backend, and what the checkpointer needs of the queue. */
export interface SqliteBackend extends Backend {
  /** Runs `fn` once the transactions queued before it have committed; no transaction or write of this process begins
   * until it settles (reads still run). */
  betweenWrites<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * A backend over an open connection to `file` (its resolved path names the queue it shares); `close` runs `onClose`
 * once the queue is empty.
 */
export function createSqliteBackend(db: Database.Database, file: string, onClose: () => Promise<void>): SqliteBackend {
  const key = path.resolve(file);
  let share = files.get(key);
  if (!share) files.set(key, (share = { queue: createQueue(), snapshotEnds: new Set() }));
  const { queue: shared, snapshotEnds } = share;
  const statements = new Map<string, Prepared>();
  const prepare = (sql: string): Prepared => {
    let prepared = statements.get(sql);
    if (!prepared) statements.set(sql, (prepared = prepareStatement(db, sql)));
    return prepared;
  };
  const call = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw translateSqliteError(err);
    }
  };
  // This connection's read snapshot (see the top of the file).
  let snapshot = false;
  const beginRead = db.prepare('BEGIN');
  const commitRead = db.prepare('COMMIT');
  const rollbackRead = db.prepare('ROLLBACK');
  const endSnapshot = () => {
    if (!snapshot) return;
    snapshot = false;
    if (!db.open || !db.inTransaction) return;
    try {
      commitRead.run();
    } catch {
      rollbackRead.run(); // a read transaction has nothing to lose
    }
  };
  snapshotEnds.add(endSnapshot);
  const beforeWrite = () => snapshotEnds.forEach((end) => end());
  /** Before a read outside transactions: joins (or opens) the turn's snapshot. */
  const enterSnapshot = () => {
    if (snapshot) return;
    beginRead.run();
    snapshot = true;
    setImmediate(endSnapshot);
  };

  const direct = {
    get: <T>(sql: string, params?: Params) =>
      call(() => {
        const { stmt, decode } = prepare(sql);
        const row = (params ? stmt.get(params) : stmt.get()) as unknown[] | undefined;
        return (row && decode(row)) as T | undefined;
      }),
    all: <T>(sql: string, params?: Params) =>
      call(() => {
        const { stmt, decode } = prepare(sql);
        return ((params ? stmt.all(params) : stmt.all()) as unknown[][]).map(decode) as T[];
      }),
    run: (sql: string, params?: Params) => call(() => (params ? prepare(sql).stmt.run(params) : prepare(sql).stmt.run()).changes),
  };

  /**
   * `sql` outside transactions, run by `fn`: a read at once in the turn's snapshot (after the open transaction, if
   * any); a write (any statement that is not read-only) always waits its turn in the queue, so that none runs while
   * the checkpointer holds this process's writes back (betweenWrites), and ends the snapshots first.
   */
  const outside = <T>(sql: string, fn: () => T): Promise<T> => {
    let write: boolean;
    try {
      write = !prepare(sql).stmt.readonly;
    } catch (err) {
      return Promise.reject(translateSqliteError(err));
    }
    if (write) return shared.after(() => (beforeWrite(), fn()));
    const read = () => (call(enterSnapshot), fn());
    return shared.open ? shared.after(read) : new Promise<T>((resolve) => resolve(read()));
  };

  const read: Sql = {
    get: (sql, params) => outside(sql, () => direct.get(sql, params)),
    all: (sql, params) => outside(sql, () => direct.all(sql, params)),
    run: (sql, params) => outside(sql, () => direct.run(sql, params)),
  };

  let savepoints = 0;
  const tx: Tx = {
    get: async (sql, params) => direct.get(sql, params),
    all: async (sql, params) => direct.all(sql, params),
    run: async (sql, params) => direct.run(sql, params),
    async lock() {},
    async savepoint(fn) {
      const name = `sp${++savepoints}`;
      db.exec(`SAVEPOINT ${name}`);
      try {
        const result = await fn();
        db.exec(`RELEASE ${name}`);
        return result;
      } catch (err) {
        db.exec(`ROLLBACK TO ${name}`);
        db.exec(`RELEASE ${name}`);
        throw err;
      }
    },
  };

  const prepared = (sql: string) => {
    const stmt = db.prepare(sql);
    return () => call(() => stmt.run());
  };
  const beginImmediate = prepared('BEGIN IMMEDIATE');
  const connection: Connection<Tx> = {
    tx,
    begin: () => {
      beforeWrite();
      beginImmediate();
    },
    commit: prepared('COMMIT'),
    rollback: prepared('ROLLBACK'),
    savepoint: prepared('SAVEPOINT member'),
    release: prepared('RELEASE member'),
    rollbackTo: prepared('ROLLBACK TO member'),
    inTransaction: () => db.inTransaction,
  };

  return {
    dialect: sqliteDialect,
    read,
    transaction: (fn) => shared.transaction(connection, fn),
    betweenWrites: (fn) => shared.after(fn),
    close: () =>
      shared.after(async () => {
        endSnapshot();
        snapshotEnds.delete(endSnapshot);
        await onClose();
      }),
  };
}
