// createTask throughput of a store, called directly (no HTTP): N sequential creates, then N in parallel batches of 50,
// each with the cache lookup on (the coalescing path). Prints creates per second for each, and the process's CPU time
// per create (user + system, all threads: less disturbed than the rate by other work on a shared machine).
// Run: node --import tsx bench/store-create.ts [sqlite|postgres] [N]   (postgres: DATABASE_URL, default the local `test` db)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSqliteStore } from '../src/store/sqlite';
import type { NewTask, Store } from '../src/store/types';

const kind = process.argv[2] ?? 'sqlite';
const n = Number(process.argv[3] ?? 5000);

async function open(): Promise<{ store: Store; done: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-'));
    const store = createSqliteStore(path.join(dir, 'vidgate.db'));
    return { store, done: async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
  }
  const { createPostgresStore } = await import('../src/store/postgres');
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `bench_${process.pid}`;
  const store = await createPostgresStore({ url, schema });
  const drop = async () => {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  };
  return { store, done: async () => { await store.close(); await drop(); } };
}

const task = (i: number, prefix: string): NewTask => ({
  id: `${prefix}-${i}`, owner_id: 'team', key_id: 'key', model: 'm', request_json: '{}', callback_url: null,
  credits_reserved: 1, created_at_ms: 1_000 + i, cache_key: `k-${prefix}-${i % 100}`, cache_status: 'miss',
});
const lookup = { fresh_since_ms: 0, hit_credits: 1 };

const { store, done } = await open();
await store.createTeam({ id: 'team', name: 'team', created_at_ms: 0, credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null });
/** Runs `body`; returns creates per second and CPU µs per create. */
async function measure(body: () => Promise<void>): Promise<string> {
  const t0_ms = performance.now();
  const cpu0 = process.cpuUsage();
  await body();
  const cpu = process.cpuUsage(cpu0);
  const rate = n / ((performance.now() - t0_ms) / 1000);
  return `${rate.toFixed(0)}/s (${((cpu.user + cpu.system) / n).toFixed(0)} µs CPU each)`;
}
const seq = await measure(async () => {
  for (let i = 0; i < n; i++) await store.createTask(task(i, 'seq'), lookup);
});
const par = await measure(async () => {
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => store.createTask(task(i + j, 'par'), lookup)));
});
console.log(`${kind}: ${n} createTask sequential ${seq}, in batches of 50 ${par}`);
await done();
