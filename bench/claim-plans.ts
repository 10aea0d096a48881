// bench/claim-plans: the query plans and costs of the loops' claims on a store with many finished tasks (issue 16):
// each claim must seek an index over unfinished tasks, not scan the finished ones. Writes --finished completed and
// --running processing tasks into a fresh store, then prints EXPLAIN QUERY PLAN of each claim (the store's own SQL,
// `claimSql`) and its time per call with nothing due.
//
//   node --import tsx bench/claim-plans.ts [--finished 100000] [--running 10000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { claimSql, createSqliteStore } from '../src/store/sqlite';

const { values } = parseArgs({ options: { finished: { type: 'string' }, running: { type: 'string' } } });
const finished = Number(values.finished ?? 100_000);
const running = Number(values.running ?? 10_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-plans-'));
try {
  const file = path.join(dir, 'vidgate.db');
  await createSqliteStore(file).close();
  const db = new Database(file);
  const insert = db.prepare(
    `INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, quota_day, quota_month, attempt,
       provider_id, upstream_id, created_at_ms, updated_at_ms, next_run_at_ms, cache_status)
     VALUES (?, 'team', 'key', ?, 0, 'sora-2', '{}', 40, '2026-11-30', '2026-11', 1, 'long', ?, ?, ?, ?, 'disabled')`,
  );
  db.transaction(() => {
    for (let i = 0; i < finished; i++) insert.run(`done-${i}`, 'completed', `old-${i}`, i, i, i);
    // Running jobs, all due in the future: a claim finds nothing, after looking.
    for (let i = 0; i < running; i++) insert.run(`run-${i}`, 'processing', `job-${i}`, i, i, 1e15);
  })();
  const claims: Record<string, string> = {
    'dispatcher (pending)': claimSql("status = 'pending'"),
    'poller of one provider': claimSql("status = 'processing' AND provider_id = @provider"),
    'poller of unconfigured providers': claimSql("status = 'processing' AND (provider_id IS NULL OR provider_id NOT IN (SELECT value FROM json_each(@except)))"),
  };
  const params = { now: Date.now(), lease_ms: 60_000, limit: 64, provider: 'long', except: '["long"]' };
  console.log(`${finished} finished and ${running} running (not due) tasks\n`);
  for (const [name, sql] of Object.entries(claims)) {
    console.log(name);
    for (const r of db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]) console.log(`    ${r.detail}`);
    const statement = db.prepare(sql);
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) statement.all(params);
    console.log(`    ${((performance.now() - t0) / 500).toFixed(3)} ms per claim\n`);
  }
  db.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
