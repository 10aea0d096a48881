// The seam between the store's rules (this folder, written once) and its backends (sqlite/, postgres/): a handful of
// primitives. Rules speak one SQL, with named parameters (`@name`) and the few differences between the backends
// spelled through a Dialect; a backend runs it, in transactions it serializes where they touch the same things.

/** Named parameters of a statement: `@name` in the SQL takes `params.name`. */
export type Params = Record<string, unknown>;

/** Runs parameterized SQL. Numbers come back as JS numbers (64-bit integers included), text as strings. */
export interface Sql {
  /** The first row, or undefined. */
  get<T>(sql: string, params?: Params): Promise<T | undefined>;
  all<T>(sql: string, params?: Params): Promise<T[]>;
  /** Runs a statement that returns no rows; resolves to the number of rows it changed. */
  run(sql: string, params?: Params): Promise<number>;
}

/** The statements of one transaction: they commit together or not at all. */
export interface Tx extends Sql {
  /**
   * Serializes this transaction with every other that locks the same `key`, until it commits or rolls back
   * (PostgreSQL: a transaction-scoped advisory lock; SQLite: nothing, its write transactions already serialize).
   * Used where two transactions would each read "none yet" and both act: the cache key, the idempotency key, a
   * provider's running count.
   */
  lock(key: string): Promise<void>;
  /** Runs `fn` in a savepoint: when it throws, only its writes are rolled back, and the error is rethrown. */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;
}

/** The SQL that differs between the backends. Every other statement of the rules is shared. */
export interface Dialect {
  /** The larger / smaller of two values (SQLite's scalar max/min, PostgreSQL's GREATEST/LEAST). */
  greatest(a: string, b: string): string;
  least(a: string, b: string): string;
  /** An expression evaluated per row: 32 random hex digits (a lease's fencing token). */
  readonly randomToken: string;
  /** A subquery of the strings in the JSON array bound to parameter `param` (e.g. `@ids`). */
  jsonTexts(param: string): string;
  /** A subquery of two text columns from a JSON array of [a, b] pairs bound to `param`. */
  jsonPairs(param: string): string;
  /** Appended to a SELECT whose rows the transaction will change: locks them (PostgreSQL) or nothing (SQLite). */
  readonly forUpdate: string;
  /** Appended to a claim's inner SELECT: skip rows another transaction is claiming (PostgreSQL) or nothing. */
  readonly skipLocked: string;
  /**
   * A statement that, run first in a transaction, holds off every other write to `tables` until it ends, so that
   * what it reads of them stays true while it writes (PostgreSQL: LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE);
   * undefined where a write transaction already does (SQLite).
   */
  excludeWriters(tables: readonly string[]): string | undefined;
  /**
   * Whether a new row is cheaper read back by a second statement than returned by its INSERT (SQLite, whose RETURNING
   * costs more than the insert itself); absent: false (PostgreSQL, where a second statement is a round trip).
   */
  readonly readBackInserts?: boolean;
}

/** A backend: reads outside transactions, transactions (retried by the backend when it must), and its dialect. */
export interface Backend {
  readonly dialect: Dialect;
  /** Statements outside any transaction (each one atomic on its own). */
  readonly read: Sql;
  /**
   * Runs `fn` in one transaction that serializes with every other writing the same rows. Errors are translated to
   * the store's vocabulary (UniqueViolation, StoreUnavailable); `fn` may run more than once (PostgreSQL retries a
   * serialization failure or deadlock), so it must have no effect outside the transaction but its result.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
