// What vidgate's SQLite store says, read straight from the file (read-only, beside a running server): the truth
// the metrics are compared with in the observability end-to-end test.
import Database from 'better-sqlite3';

/** The store's figures the metrics contract (docs/metrics.md) promises to reflect. */
export interface StoreFacts {
  /** Credits of the ledger's `settle` rows, per team id. */
  settled_credits: Record<string, number>;
  /** The same, per provider id (rows without one under ''). */
  settled_credits_by_provider: Record<string, number>;
  /** The same, per model. */
  settled_credits_by_model: Record<string, number>;
  /** Tasks per `cache_status` (hit, miss, coalesced, bypassed, disabled). */
  cache_statuses: Record<string, number>;
  /** Unfinished tasks per status (`pending`, `processing`). */
  open_tasks: Record<string, number>;
  /** `credits_reserved` of the unfinished tasks, per team id. */
  reserved_credits: Record<string, number>;
  /** Unfinished jobs at each provider: processing tasks that own their upstream job (no `source_id`). */
  jobs_in_flight: Record<string, number>;
  /** Tasks per status, all of them. */
  statuses: Record<string, number>;
}

const grouped = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

/** Reads the facts from the SQLite file at `file` in one read transaction. */
export function readStoreFacts(file: string): StoreFacts {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const all = (sql: string) => grouped(db.prepare(sql).all() as { k: string; n: number }[]);
    return db.transaction(() => ({
      settled_credits: all(`SELECT team_id AS k, SUM(credits) AS n FROM ledger WHERE kind = 'settle' GROUP BY team_id`),
      settled_credits_by_provider: all(`SELECT COALESCE(provider_id, '') AS k, SUM(credits) AS n FROM ledger WHERE kind = 'settle' GROUP BY 1`),
      settled_credits_by_model: all(`SELECT COALESCE(model, '') AS k, SUM(credits) AS n FROM ledger WHERE kind = 'settle' GROUP BY 1`),
      cache_statuses: all(`SELECT cache_status AS k, COUNT(*) AS n FROM tasks GROUP BY cache_status`),
      open_tasks: all(`SELECT status AS k, COUNT(*) AS n FROM tasks WHERE status IN ('pending', 'processing') GROUP BY status`),
      reserved_credits: all(`SELECT owner_id AS k, SUM(credits_reserved) AS n FROM tasks WHERE status IN ('pending', 'processing') GROUP BY owner_id`),
      jobs_in_flight: all(`SELECT provider_id AS k, COUNT(*) AS n FROM tasks WHERE status = 'processing' AND source_id IS NULL GROUP BY provider_id`),
      statuses: all(`SELECT status AS k, COUNT(*) AS n FROM tasks GROUP BY status`),
    }))();
  } finally {
    db.close();
  }
}
