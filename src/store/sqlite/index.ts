// The embedded backend: one SQLite file (WAL), its schema (migrations.ts), and the shared rules (../rules) over it.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Store } from '../types';
import { claimSql as claimSqlIn, createStore } from '../rules/store';
import { FALLBACK_AUTOCHECKPOINT_PAGES, startCheckpointer } from './checkpointer';
import { migrate } from './migrations';
import { createSqliteBackend, sqliteDialect } from './backend';

/** How often the checkpointing thread copies the WAL back into the database file. */
const CHECKPOINT_INTERVAL_MS = 1000;

/** The claim statement in SQLite's dialect (bench/claim-plans.ts shows its query plans). */
export const claimSql = (filter: string) => claimSqlIn(sqliteDialect, filter);

/**
 * Opens (creating it and its directory when missing) and migrates the SQLite file. Throws when the file's schema is
 * newer than this build.
 */
export function createSqliteStore(file: string): Store {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // In WAL mode, NORMAL syncs at checkpoints, not at every commit: a commit survives a crash of the process (SIGKILL)
  // but may be lost on a power cut or an OS crash (https://www.sqlite.org/pragma.html#pragma_synchronous).
  db.pragma('synchronous = NORMAL');
  // Checkpoints (the fsyncs) run in a thread of their own; this connection checkpoints only past a far bound.
  db.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT_PAGES}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  // A group commit's members each run under a savepoint, whose sub-journal is a temporary file by default (a file
  // created, written and deleted per batch): in memory instead (https://www.sqlite.org/tempfiles.html).
  db.pragma('temp_store = MEMORY');
  try {
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }

  const backend = createSqliteBackend(db, file, async () => {
    await checkpointer.stop();
    db.close();
  });
  const checkpointer = startCheckpointer(file, CHECKPOINT_INTERVAL_MS, backend.betweenWrites, (message) => process.emitWarning(`WAL checkpoint failed: ${message}`));
  return createStore(backend);
}
