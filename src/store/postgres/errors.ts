// PostgreSQL's errors -> the store's vocabulary (../types), so that no backend error reaches the domain in its terms.
import { DatabaseError } from 'pg';
import { StoreUnavailable, UniqueViolation } from '../types';

/** A conflict between concurrent transactions: the transaction may be run again (serialization failure, deadlock). */
export class TransactionConflict extends Error {
  constructor(readonly sqlstate: string) {
    super(`transaction conflict (${sqlstate}); it may be run again`);
    this.name = 'TransactionConflict';
  }
}

/**
 * SQLSTATEs that mean "try again later": classes 08 (connection exceptions), 53 (resources), 57 (operator
 * intervention), and 55000 as PostgreSQL raises it for "database is not currently accepting connections".
 */
const UNAVAILABLE = /^(08|53|57|55000$)/;
/** Node's socket errors when the server cannot be reached. */
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

/**
 * A pg error as UniqueViolation (`table.column`, as SQLite names it), TransactionConflict (40001 serialization
 * failure, 40P01 deadlock) or StoreUnavailable; any other error unchanged.
 */
export function translatePgError(err: unknown): unknown {
  if (err instanceof DatabaseError) {
    if (err.code === '23505') {
      // detail reads "Key (name)=(x) already exists."; several columns read "Key (a, b)=(...)".
      const columns = /^Key \(([^)]*)\)/.exec(err.detail ?? '')?.[1] ?? 'unknown';
      return new UniqueViolation(columns.split(', ').map((c) => `${err.table ?? 'unknown'}.${c}`).join(', '));
    }
    if (err.code === '40001' || err.code === '40P01') return new TransactionConflict(err.code);
    if (err.code && UNAVAILABLE.test(err.code)) return new StoreUnavailable(`postgres ${err.code}`);
    return err;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NETWORK.has(code)) return new StoreUnavailable(code);
  return err;
}

/** Whether a transaction that threw this may be run again. */
export const isRetryable = (err: unknown) => err instanceof TransactionConflict;
