// bench/replicas: submits and status polls per second through 1, 2 and 3 vidgate replicas on PostgreSQL, against
// one process on SQLite, with the load generator (this process) on the same machine; then how the store's claim
// (`claimDue`) grows with 10 000 and 100 000 tasks in the PostgreSQL table.
//
// Throughput: each setup (sqlite-1, pg-1, pg-2, pg-3) is started fresh (real processes, `node --import tsx
// src/main.ts`; a fresh SQLite file or PostgreSQL schema), then driven by --concurrency clients for --seconds:
// first POST /v1/videos/generations (a new prompt each, so every submit is a cache miss that reserves credits and
// is dispatched), then GET /v1/tasks/{id} of those tasks. Requests go round-robin over the replicas (no load
// balancer). The upstream is the fake tasks API (test/support/fake-tasks-api.ts) in this process, with jobs of an
// hour, so the tasks stay in flight and the replicas' loops keep polling them. Setups run interleaved over
// --rounds rounds; the load average is printed before each run. Quotas are on (every limit null: counted, never
// refusing).
//
// Claim latency: a fresh schema with N tasks inserted in bulk by SQL (90 % completed, 10 % processing and not
// due), and 200 due pending tasks; then 200 calls of claimDue('dispatch', 1) (each claims one) and 200 of
// claimDue('poll', 16) (nothing due), timed one by one.
//
//   node --import tsx bench/replicas.ts [--seconds 10] [--rounds 2] [--concurrency 16] [--sizes 0,10000,100000]
//       [--setups sqlite-1,pg-1,pg-2,pg-3] [--skip-claims]
// PostgreSQL: DATABASE_URL, or postgres://postgres@127.0.0.1:5432/test.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createPostgresStore } from '../src/store/postgres';
import { startFakeTasksApi, type FakeTasksApi } from '../test/support/fake-tasks-api';
import { freePort } from '../test/support/free-port';
import { startServerProcess, type ServerProcess } from '../test/support/process';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    concurrency: { type: 'string' },
    sizes: { type: 'string' },
    setups: { type: 'string' },
    'skip-claims': { type: 'boolean' },
  },
});
const SECONDS = Number(values.seconds ?? 10);
const ROUNDS = Number(values.rounds ?? 2);
const CONCURRENCY = Number(values.concurrency ?? 16);
const SIZES = (values.sizes ?? '0,10000,100000').split(',').map(Number);
const SETUPS = (values.setups ?? 'sqlite-1,pg-1,pg-2,pg-3').split(',');
const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const KEY = `bench-replicas-${crypto.randomBytes(8).toString('hex')}`;
const NO_LIMITS = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

interface Setup {
  urls: string[];
  stop: () => Promise<void>;
}

/** Starts `replicas` processes on a fresh SQLite file (1) or a fresh PostgreSQL schema, one after the other. */
async function startSetup(name: string, upstream: FakeTasksApi): Promise<Setup> {
  const [kind, n] = name.split('-') as ['sqlite' | 'pg', string];
  const schema = `bench_${crypto.randomBytes(6).toString('hex')}`;
  const dirs: string[] = [];
  const procs: ServerProcess[] = [];
  for (let i = 0; i < Number(n); i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-replica-'));
    dirs.push(dir);
    procs.push(
      await startServerProcess({
        DATABASE_URL: '',
        VIDGATE_DATA_DIR: dir,
        VIDGATE_SERVER__PORT: String(await freePort()),
        VIDGATE_LOG_LEVEL: 'warn',
        VIDGATE_AUTH__API_KEYS: KEY,
        VIDGATE_TEAMS__DEFAULT_QUOTAS: JSON.stringify(NO_LIMITS),
        VIDGATE_WEBHOOK_SECRETS_KEY: '0'.repeat(64),
        ...(kind === 'pg' && { VIDGATE_STORE__KIND: 'postgres', VIDGATE_STORE__URL: PG_URL, VIDGATE_STORE__SCHEMA: schema }),
        BENCH_UPSTREAM_KEY: upstream.apiKey,
        VIDGATE_PROVIDERS: JSON.stringify([
          { id: 'upstream', kind: 'tasks-api', base_url: upstream.url, api_key_env: 'BENCH_UPSTREAM_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.25 } }] },
        ]),
      }),
    );
  }
  return {
    urls: procs.map((p) => p.url),
    async stop() {
      for (const p of procs) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
      dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
      if (kind === 'pg') await withPg((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    },
  };
}

async function withPg<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

interface Measured {
  ok: number;
  errors: number;
  perSecond: number;
  p50_ms: number;
  p99_ms: number;
}

/** CONCURRENCY clients sending `request(i)` round-robin over `urls` for SECONDS; counts 2xx answers. */
async function drive(urls: string[], request: (url: string, i: number) => Promise<Response>, onOk?: (body: unknown) => void): Promise<Measured> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const end = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const i = next++;
        const t0 = performance.now();
        try {
          const res = await request(urls[i % urls.length]!, i);
          const body = await res.json();
          if (res.ok) {
            latencies.push(performance.now() - t0);
            onOk?.(body);
          } else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const sorted = latencies.sort((a, b) => a - b);
  return { ok: sorted.length, errors, perSecond: sorted.length / ((performance.now() - started) / 1000), p50_ms: pct(sorted, 50), p99_ms: pct(sorted, 99) };
}

const headers = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };

async function throughput(): Promise<void> {
  const upstream = await startFakeTasksApi({ durationMs: 3_600_000 });
  const results = new Map<string, { submit: Measured[]; poll: Measured[] }>(SETUPS.map((s) => [s, { submit: [], poll: [] }]));
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const name of SETUPS) {
        const setup = await startSetup(name, upstream);
        try {
          console.log(`round ${round} ${name}: load average ${loadavg()}`);
          const ids: string[] = [];
          const submit = await drive(
            setup.urls,
            (url, i) => fetch(`${url}/v1/videos/generations`, { method: 'POST', headers, body: JSON.stringify({ model: 'sora-2', prompt: `bench ${round} ${name} ${i}`, aspect_ratio: '16:9', duration: 4 }) }),
            (body) => ids.push((body as { id: string }).id),
          );
          const poll = await drive(setup.urls, (url, i) => fetch(`${url}/v1/tasks/${ids[i % ids.length]}`, { headers }));
          console.log(`  submits ${submit.perSecond.toFixed(0)}/s (${submit.errors} errors), polls ${poll.perSecond.toFixed(0)}/s (${poll.errors} errors)`);
          results.get(name)!.submit.push(submit);
          results.get(name)!.poll.push(poll);
        } finally {
          await setup.stop();
        }
      }
    }
  } finally {
    await upstream.close();
  }
  const base = results.get(SETUPS[0]!)!;
  const mean = (ms: Measured[], f: (m: Measured) => number) => ms.reduce((s, m) => s + f(m), 0) / ms.length;
  console.log(`\n${CONCURRENCY} clients, ${SECONDS} s per run, ${ROUNDS} rounds; mean over rounds; ratio against ${SETUPS[0]}\n`);
  console.log('| setup | submits/s | ratio | submit p50 / p99 ms | polls/s | ratio | poll p50 / p99 ms | errors |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [name, r] of results) {
    const s = mean(r.submit, (m) => m.perSecond);
    const p = mean(r.poll, (m) => m.perSecond);
    console.log(
      `| ${name} | ${s.toFixed(0)} | ${(s / mean(base.submit, (m) => m.perSecond)).toFixed(2)} | ${mean(r.submit, (m) => m.p50_ms).toFixed(1)} / ${mean(r.submit, (m) => m.p99_ms).toFixed(1)} | ` +
        `${p.toFixed(0)} | ${(p / mean(base.poll, (m) => m.perSecond)).toFixed(2)} | ${mean(r.poll, (m) => m.p50_ms).toFixed(1)} / ${mean(r.poll, (m) => m.p99_ms).toFixed(1)} | ` +
        `${r.submit.reduce((n, m) => n + m.errors, 0) + r.poll.reduce((n, m) => n + m.errors, 0)} |`,
    );
  }
}

/** claimDue timings on a fresh schema holding `size` tasks (90 % completed, 10 % processing, not due) and 200 due. */
async function claimLatency(size: number): Promise<{ dispatch: number[]; poll: number[] }> {
  const schema = `bench_${crypto.randomBytes(6).toString('hex')}`;
  const store = await createPostgresStore({ url: PG_URL, schema, pool_size: 2 });
  try {
    const now = Date.now();
    await withPg(async (c) => {
      const insert = (from: number, to: number, status: string, nextRunAt: number) =>
        c.query(
          `INSERT INTO ${schema}.tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, quota_day, quota_month, attempt,
             provider_id, upstream_id, created_at_ms, updated_at_ms, next_run_at_ms, cache_status)
           SELECT $1 || g, 'team', 'key', $2, 0, 'sora-2', '{}', 100, '2026-11-30', '2026-11', 1, 'upstream', 'job-' || g, g, g, $3, 'disabled'
           FROM generate_series($4::int, $5::int) AS g`,
          [`${status}-`, status, nextRunAt, from, to],
        );
      if (size > 0) {
        await insert(1, Math.round(size * 0.9), 'completed', 0);
        await insert(1, size - Math.round(size * 0.9), 'processing', 1e15);
      }
      await c.query(
        `INSERT INTO ${schema}.tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, quota_day, quota_month, attempt,
           created_at_ms, updated_at_ms, next_run_at_ms, cache_status)
         SELECT 'due-' || g, 'team', 'key', 'pending', 0, 'sora-2', '{}', 100, '2026-11-30', '2026-11', 0, g, g, g, 'disabled'
         FROM generate_series(1, 200) AS g`,
      );
      await c.query(`ANALYZE ${schema}.tasks`);
    });
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const dispatch: number[] = [];
    const poll: number[] = [];
    for (let i = 0; i < 200; i++) {
      dispatch.push(await time(() => store.claimDue('dispatch', 1, 60_000, now)));
      poll.push(await time(() => store.claimDue('poll', 16, 60_000, now)));
    }
    return { dispatch: dispatch.sort((a, b) => a - b), poll: poll.sort((a, b) => a - b) };
  } finally {
    await store.close();
    await withPg((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
  }
}

async function claims(): Promise<void> {
  console.log(`\nclaimDue on PostgreSQL, 200 calls each; load average ${loadavg()}\n`);
  console.log('| tasks in the table | dispatch claim (1 due) p50 / p99 ms | poll claim (none due) p50 / p99 ms |');
  console.log('|---|---|---|');
  for (const size of SIZES) {
    const { dispatch, poll } = await claimLatency(size);
    console.log(`| ${size + 200} | ${pct(dispatch, 50).toFixed(2)} / ${pct(dispatch, 99).toFixed(2)} | ${pct(poll, 50).toFixed(2)} / ${pct(poll, 99).toFixed(2)} |`);
  }
}

await throughput();
if (!values['skip-claims']) await claims();
