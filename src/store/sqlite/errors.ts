// SQLite's errors -> the store's vocabulary (../types), so no backend error reaches the domain in SQLite's terms.
import Database from 'better-sqlite3';
import { StoreUnavailable, UniqueViolation } from '../types';

/** SQLite result codes (https://www.sqlite.org/rescode.html) that mean "try again later", not "this is a bug". */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY)/;

/** A SqliteError as UniqueViolation or StoreUnavailable; any other error unchanged. */
export function translateSqliteError(err: unknown): unknown {
  if (!(err instanceof Database.SqliteError)) return err;
  if (err.code === 'SQLITE_CONSTRAINT_UNIQUE' || err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    // The message reads "UNIQUE constraint failed: teams.name".
    return new UniqueViolation(err.message.split(': ')[1] ?? 'unknown');
  }
  if (UNAVAILABLE.test(err.code)) return new StoreUnavailable(err.code);
  return err;
}
