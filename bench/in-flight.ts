// bench/in-flight: the background loops with many jobs in flight (issue 16). Per round, a fresh gateway (real
// SQLite file, real HTTP on 127.0.0.1, the default worker settings) in front of an OpenAI-shaped upstream whose
// jobs run for hours (bench/support/long-jobs-upstream.ts, its own process, so that its CPU is not counted):
//   1. idle: --idle-s seconds with nothing in flight: CPU of this process.
//   2. --tasks creates through POST /v1/videos/generations on --connections connections; the dispatcher submits
//      them meanwhile. Dispatch latency per task: submitted_at_ms - created_at_ms (target: all within 20 s).
//   3. following: --window-s seconds with every task running upstream: the longest gap between two polls of each
//      job, as the upstream saw it (target: none above max(15 s, the poll-after hint)); polls per second; CPU and
//      RSS (target: RSS at most 200 MB).
//   4. completions: --complete jobs finish upstream at once; the time until each is stored completed (target:
//      within its poll interval at that moment, from src/core/poll-schedule.ts, plus 2 s).
// Two variants, interleaved in rounds (A, B, A, B, ...), since the machine is shared and absolute figures drift:
//   A: an empty store;  B: the same with --finished completed tasks in it (target: no figure worse by 20 %).
// The finished tasks are written straight into the store's tables (tasks, attempts, ledger rows) before the
// gateway opens it: seeding them through the API would take longer than the bench.
// This process runs the gateway and the load generator: its RSS and CPU include the generator (small next to the
// gateway; the generator is idle during the idle and following windows).
//
//   node --import tsx bench/in-flight.ts [--tasks 10000] [--finished 100000] [--rounds 3] [--window-s 45]
//       [--idle-s 8] [--complete 200] [--connections 20] [--poll-after-ms N] [--only A|B] [--backlog] [--json FILE]
// --backlog: the loops are stopped while the tasks are created, then started: the dispatcher's own throughput
// (tasks submitted per second, draining a backlog of --tasks), whatever the request path's speed. Its dispatch
// latencies then count the wait, and are not the target's.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { createGateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { nextPollDelayMs } from '../src/core/poll-schedule';
import { createSqliteStore } from '../src/store/sqlite';
import { mp4Renderer } from '../test/support/mp4';
import { KEY_A, testConfig } from '../test/support/gateway';

const DEFAULTS = { tasks: 10_000, finished: 100_000, rounds: 3, 'window-s': 45, 'idle-s': 8, complete: 200, connections: 20 };
const { values: v } = parseArgs({
  options: {
    ...Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' as const }])),
    'poll-after-ms': { type: 'string' },
    only: { type: 'string' },
    backlog: { type: 'boolean' },
    json: { type: 'string' },
  },
});
const num = (k: keyof typeof DEFAULTS) => {
  const x = Number((v as Record<string, string | undefined>)[k] ?? DEFAULTS[k]);
  if (!Number.isInteger(x) || x <= 0) throw new Error(`--${k} must be a positive integer`);
  return x;
};
const O = {
  tasks: num('tasks'), finished: num('finished'), rounds: num('rounds'), windowS: num('window-s'), idleS: num('idle-s'),
  complete: num('complete'), connections: num('connections'),
  pollAfterMs: v['poll-after-ms'] === undefined ? undefined : Number(v['poll-after-ms']),
};
const UPSTREAM_KEY = 'sk-bench-long-jobs';
const BODY = JSON.stringify({ model: 'sora-2', prompt: 'a lighthouse, for hours', aspect_ratio: '16:9', duration: 4 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' / ');
function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** Writes `n` completed tasks (each with its attempt and ledger rows) into the store at `file`, in one transaction. */
function seedFinished(file: string, n: number) {
  void createSqliteStore(file).close(); // the schema
  const db = new Database(file);
  const t0 = Date.now() - 7 * 24 * 3600_000;
  const task = db.prepare(
    `INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, credits_settled, quota_day, quota_month,
       attempt, provider_id, upstream_id, asset_key, created_at_ms, updated_at_ms, submitted_at_ms, completed_at_ms, next_run_at_ms,
       cache_status, asset_stored_at_ms)
     VALUES (@id, 'seed-team', 'seed-key', 'completed', 100, 'sora-2', @request, 40, 40, @day, @month, 1, 'long', @upstream, @id, @at, @at, @at, @at, @at, 'disabled', @at)`,
  );
  const attempt = db.prepare(
    `INSERT INTO task_attempts (task_id, n, provider_id, upstream_id, micro_usd, credits, started_at_ms, ended_at_ms, outcome) VALUES (?, 1, 'long', ?, 400000, 40, ?, ?, 'completed')`,
  );
  const ledger = db.prepare(`INSERT INTO ledger (team_id, key_id, task_id, attempt, kind, credits, day, model, provider_id, created_at_ms) VALUES ('seed-team', 'seed-key', ?, 1, ?, ?, ?, 'sora-2', 'long', ?)`);
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const at = t0 + i * 5000;
      const day = new Date(at).toISOString().slice(0, 10);
      const id = `seed-${String(i).padStart(7, '0')}`;
      task.run({ id, request: BODY, day, month: day.slice(0, 7), upstream: `old_${i}`, at });
      attempt.run(id, `old_${i}`, at, at);
      ledger.run(id, 'reserve', 40, day, at);
      ledger.run(id, 'release', -40, day, at);
      ledger.run(id, 'settle', 40, day, at);
    }
  })();
  db.close();
}

async function startUpstream(mp4File: string): Promise<{ url: string; child: ChildProcess }> {
  const args = ['--import', 'tsx', path.join(import.meta.dirname, 'support/long-jobs-upstream.ts'), '--mp4', mp4File];
  if (O.pollAfterMs !== undefined) args.push('--poll-after-ms', String(O.pollAfterMs));
  // Our end of its stdin: it exits when this process does, even on SIGKILL.
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\S+)/.exec(d.toString());
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`upstream exited ${code}`)));
  });
  return { url, child };
}

/** CPU of this process over the next `ms`, in % of one core. */
async function cpuOver(ms: number): Promise<number> {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(ms);
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1000 / (performance.now() - w0)) * 100;
}

interface RoundResult {
  variant: 'A' | 'B';
  round: number;
  load_before: string;
  idle_cpu_pct: number;
  creates_per_s: number;
  /** From the last create (with --backlog: from the loops' start) until no task is pending, in s. */
  drain_s: number;
  dispatch_ms: { p50: number; p99: number; max: number; over_20s: number };
  follow: { polls_per_s: number; gap_p50_ms: number; gap_p99_ms: number; gap_max_ms: number; over_bound: number; cpu_pct: number };
  completion: { p50_ms: number; p99_ms: number; max_ms: number; over_bound: number; stored: number };
  rss_peak_mb: number;
  /** Peak RSS per phase: idle, creating and dispatching, following, completing. */
  rss_phases_mb: Record<string, number>;
  /** V8 heap in use at the end of the following window (what is live, against RSS's high-water mark). */
  heap_following_mb: number;
}

async function round(variant: 'A' | 'B', n: number, mp4File: string): Promise<RoundResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-inflight-'));
  const dbFile = path.join(dir, 'vidgate.db');
  const load_before = load();
  if (variant === 'B') seedFinished(dbFile, O.finished);
  const upstream = await startUpstream(mp4File);
  const config = testConfig(dir, {
    // The defaults of the workers, not the tests' fast settings.
    workers: { poll_interval_ms: 1000, retry_backoff_ms: 2000, lease_ms: 60_000 },
    teams: { default_quotas: { reads_per_minute: null, submits_per_minute: null } },
    providers: [{ id: 'long', kind: 'openai', base_url: upstream.url, api_key_env: 'LONG_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] }],
  });
  const gateway = await createGateway(config, { log: createLogger('silent'), env: { LONG_KEY: UPSTREAM_KEY, VIDGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789' } });
  const base = await gateway.start();
  const reader = new Database(dbFile, { readonly: true });
  let rssPeak = 0;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 250);
  try {
    const headers = { Authorization: `Bearer ${KEY_A}`, 'Content-Type': 'application/json' };
    await fetch(`${base}/v1/models`, { headers }); // compiles the validator
    await sleep(2000); // past the start's one-time work
    const idleCpu = await cpuOver(O.idleS * 1000);
    const phases: Record<string, number> = {};
    const phase = (name: string) => {
      phases[name] = rssPeak / 2 ** 20;
      rssPeak = 0;
    };
    phase('idle');

    // Creates, as fast as the connections go; the dispatcher submits meanwhile (unless --backlog).
    if (v.backlog) await gateway.workers.stop(10_000);
    let sent = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: O.connections }, async () => {
        while (sent < O.tasks) {
          sent++;
          const res = await fetch(`${base}/v1/videos/generations`, { method: 'POST', headers, body: BODY });
          if (res.status !== 202) throw new Error(`create answered ${res.status}: ${await res.text()}`);
          await res.arrayBuffer();
        }
      }),
    );
    const createsPerS = O.tasks / ((performance.now() - t0) / 1000);
    const pending = reader.prepare("SELECT count(*) FROM tasks WHERE status = 'pending'").pluck();
    const drainStart = Date.now();
    if (v.backlog) gateway.workers.start();
    for (const end = Date.now() + 900_000; (pending.get() as number) > 0 && Date.now() < end; ) await sleep(250);
    const drainS = (Date.now() - drainStart) / 1000;
    const lat = sortNum(reader.prepare("SELECT submitted_at_ms - created_at_ms FROM tasks WHERE status = 'processing'").pluck().all() as number[]);
    if (lat.length !== O.tasks) throw new Error(`${lat.length} of ${O.tasks} tasks running upstream`);

    phase('creating');
    // Following: every job is running; the upstream measures the gaps between polls of each.
    await fetch(`${upstream.url}/control/window`, { method: 'POST' });
    const followCpu = await cpuOver(O.windowS * 1000);
    const stats = (await (await fetch(`${upstream.url}/control/stats`)).json()) as { window_ms: number; polls: number; gaps_ms: number[] };
    const gaps = sortNum(stats.gaps_ms);
    const gapBound = Math.max(config.workers.max_poll_interval_ms, O.pollAfterMs ?? 0);

    const heapFollowingMb = process.memoryUsage().heapUsed / 2 ** 20;
    phase('following');
    // Completions: some jobs finish at once upstream; each must be stored within its poll interval + 2 s.
    const done = (await (await fetch(`${upstream.url}/control/complete?n=${O.complete}`, { method: 'POST' })).json()) as { id: string; completed_at_ms: number }[];
    const byUpstream = reader.prepare(`SELECT id, status, submitted_at_ms, completed_at_ms FROM tasks WHERE upstream_id IN (SELECT value FROM json_each(?))`);
    type Row = { id: string; status: string; submitted_at_ms: number; completed_at_ms: number | null };
    const ids = JSON.stringify(done.map((d) => d.id));
    let rows: Row[] = [];
    for (const end = Date.now() + 60_000; Date.now() < end; await sleep(250)) {
      rows = byUpstream.all(ids) as Row[];
      if (rows.every((r) => r.status !== 'processing')) break;
    }
    phase('completing');
    const at = done[0]?.completed_at_ms ?? Date.now();
    const stored = rows.filter((r) => r.status === 'completed' && r.completed_at_ms !== null);
    const lags = sortNum(stored.map((r) => r.completed_at_ms! - at));
    const over = stored.filter((r) => r.completed_at_ms! - at > nextPollDelayMs(at - r.submitted_at_ms, O.pollAfterMs, config.workers) + 2000).length;

    return {
      variant, round: n, load_before,
      idle_cpu_pct: idleCpu,
      creates_per_s: createsPerS,
      drain_s: drainS,
      dispatch_ms: { p50: pct(lat, 50), p99: pct(lat, 99), max: lat.at(-1)!, over_20s: lat.filter((x) => x > 20_000).length },
      follow: {
        polls_per_s: stats.polls / (stats.window_ms / 1000),
        gap_p50_ms: pct(gaps, 50), gap_p99_ms: pct(gaps, 99), gap_max_ms: gaps.at(-1) ?? NaN,
        over_bound: gaps.filter((g) => g > gapBound).length,
        cpu_pct: followCpu,
      },
      completion: { p50_ms: pct(lags, 50), p99_ms: pct(lags, 99), max_ms: lags.at(-1) ?? NaN, over_bound: over + (O.complete - stored.length), stored: stored.length },
      rss_peak_mb: Math.max(...Object.values(phases)),
      rss_phases_mb: phases,
      heap_following_mb: heapFollowingMb,
    };
  } finally {
    clearInterval(rssTimer);
    reader.close();
    await gateway.stop();
    upstream.child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
function line(r: RoundResult): string {
  return [
    `${r.variant}${r.round}`, `load ${r.load_before}`,
    `idle cpu ${f1(r.idle_cpu_pct)}%`, `creates ${f0(r.creates_per_s)}/s; then ${f1(r.drain_s)} s until none pending${v.backlog ? ` (backlog: ${f0(O.tasks / r.drain_s)} dispatched/s)` : ''}`,
    `dispatch p50 ${f0(r.dispatch_ms.p50)} p99 ${f0(r.dispatch_ms.p99)} max ${f0(r.dispatch_ms.max)} ms (>20 s: ${r.dispatch_ms.over_20s})`,
    `polls ${f0(r.follow.polls_per_s)}/s, gap p50 ${f0(r.follow.gap_p50_ms)} p99 ${f0(r.follow.gap_p99_ms)} max ${f0(r.follow.gap_max_ms)} ms (over bound: ${r.follow.over_bound}), cpu ${f1(r.follow.cpu_pct)}%`,
    `completion p50 ${f0(r.completion.p50_ms)} p99 ${f0(r.completion.p99_ms)} max ${f0(r.completion.max_ms)} ms (${r.completion.stored} stored, over bound: ${r.completion.over_bound})`,
    `rss peak ${f0(r.rss_peak_mb)} MB (${Object.entries(r.rss_phases_mb).map(([k, mb]) => `${k} ${f0(mb)}`).join(', ')}); heap in use after following ${f0(r.heap_following_mb)} MB`,
  ].join('\n    ');
}

async function main() {
  console.log(`bench/in-flight: ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), Node ${process.version}; shared machine: other runs may load it`);
  console.log(`${O.tasks} tasks in flight, A: empty store, B: ${O.finished} finished tasks; ${O.rounds} rounds A/B interleaved; window ${O.windowS} s; poll-after hint ${O.pollAfterMs ?? 'none'}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-mp4-'));
  const mp4File = path.join(dir, 'v.mp4');
  fs.writeFileSync(mp4File, await mp4Renderer()({ size: '1280x720', seconds: 4 }));
  const results: RoundResult[] = [];
  try {
    for (let n = 1; n <= O.rounds; n++) {
      for (const variant of (['A', 'B'] as const).filter((x) => v.only === undefined || v.only === x)) {
        const r = await round(variant, n, mp4File);
        results.push(r);
        console.log(line(r));
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Medians per variant, and B against A.
  const med = (xs: number[]) => pct(sortNum(xs), 50);
  const figures: [string, (r: RoundResult) => number][] = [
    ['idle CPU %', (r) => r.idle_cpu_pct],
    ['dispatch p99 ms', (r) => r.dispatch_ms.p99],
    ['dispatch max ms', (r) => r.dispatch_ms.max],
    ['polls/s', (r) => r.follow.polls_per_s],
    ['poll gap max ms', (r) => r.follow.gap_max_ms],
    ['following CPU %', (r) => r.follow.cpu_pct],
    ['completion p99 ms', (r) => r.completion.p99_ms],
    ['completion max ms', (r) => r.completion.max_ms],
    ['RSS peak MB', (r) => r.rss_peak_mb],
    ['heap in use MB', (r) => r.heap_following_mb],
  ];
  console.log(`\nmedians over ${O.rounds} rounds     A (empty)   B (${O.finished} finished)   B/A`);
  for (const [name, get] of figures) {
    const a = med(results.filter((r) => r.variant === 'A').map(get));
    const b = med(results.filter((r) => r.variant === 'B').map(get));
    console.log(`  ${name.padEnd(22)} ${f1(a).padStart(10)}   ${f1(b).padStart(10)}   ${(b / a).toFixed(2)}`);
  }
  console.log(`load average at the end: ${load()}`);
  if (v.json) fs.writeFileSync(v.json, JSON.stringify(results, null, 2));
}

await main();
