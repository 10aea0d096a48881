// bench/in-flight: the background loops with many jobs in flight (issue 16). Per round, a fresh gateway (real
// SQLite file, real HTTP on 127.0.0.1, the default worker settings) in its own process
// (bench/support/in-flight-gateway.ts), in front of an OpenAI-shaped upstream whose jobs run for hours
// (bench/support/long-jobs-upstream.ts, a third process); this process sends the creates and measures:
//   1. idle: --idle-s seconds with nothing in flight: CPU of the gateway's process.
//   2. --tasks creates through POST /v1/videos/generations on --connections connections; the dispatcher submits
//      them meanwhile. Dispatch latency per task: submitted_at_ms - created_at_ms (target: all within 20 s).
//   3. following: --window-s seconds with every task running upstream: the longest gap between two polls of each
//      job, as the upstream saw it (target: none above max(15 s, the poll-after hint)); polls per second; the
//      gateway's CPU, RSS (target: at most 200 MB) and V8 heap.
//   4. completions: --complete jobs finish upstream at once; the time until each is stored completed (target:
//      within the promised poll interval, max(15 s, the hint), plus 2 s), split into the wait for the poll that
//      saw it and the handling (download, probe, store); the other jobs' poll gaps meanwhile.
// Two variants, interleaved in rounds (A, B, A, B, ...), since the machine is shared and absolute figures drift:
//   A: an empty store;  B: the same with --finished completed tasks in it (target: no figure worse by 20 %).
// The finished tasks are written straight into the store's tables (tasks, attempts, ledger rows) before the
// gateway opens it: seeding them through the API would take longer than the bench.
// The gateway's RSS is read from /proc/<pid>/status every 250 ms (peak per phase); its CPU, heap and event-loop
// delay it reports itself over the IPC channel.
//
//   node --import tsx bench/in-flight.ts [--tasks 10000] [--finished 100000] [--rounds 3] [--window-s 45]
//       [--idle-s 8] [--complete 200] [--connections 20] [--poll-after-ms N] [--only A|B] [--backlog] [--json FILE]
//       [--runtime bundle|tsx] [--heap-snapshot DIR] [--gateway-flags=--max-old-space-size=128]
// --runtime: the gateway bundled by esbuild beforehand and run by plain node (as `npm start` runs dist/server/; the
// default), or under tsx (what tsx itself costs). --heap-snapshot: the gateway writes a V8 heap snapshot into DIR at the end
// of each following window.
// --gateway-flags: node options of the gateway's process (V8's heap settings, to see what they change); by default
// those of `npm start` (bench/support/start-flags.ts).
// --backlog: the loops are stopped while the tasks are created, then started: the dispatcher's own throughput
// (tasks submitted per second, draining a backlog of --tasks), whatever the request path's speed. Its dispatch
// latencies then count the wait, and are not the target's.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { parseConfig } from '../src/core/config';
import { nextPollDelayMs } from '../src/core/poll-schedule';
import { createSqliteStore } from '../src/store/sqlite';
import { mp4Renderer } from '../test/support/mp4';
import { bundleGateway, forkGateway, type GatewayProcess, type Runtime } from './support/gateway-process';
import type { GatewayUsage } from './support/in-flight-gateway';
import { START_NODE_FLAGS } from './support/start-flags';

const DEFAULTS = { tasks: 10_000, finished: 100_000, rounds: 3, 'window-s': 45, 'idle-s': 8, complete: 200, connections: 20 };
const { values: v } = parseArgs({
  options: {
    ...Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' as const }])),
    'poll-after-ms': { type: 'string' },
    only: { type: 'string' },
    backlog: { type: 'boolean' },
    json: { type: 'string' },
    runtime: { type: 'string', default: 'bundle' },
    'heap-snapshot': { type: 'string' },
    'gateway-flags': { type: 'string' },
  },
});
if (v.runtime !== 'tsx' && v.runtime !== 'bundle') throw new Error('--runtime must be tsx or bundle');
const RUNTIME = v.runtime as Runtime;
const num = (k: keyof typeof DEFAULTS) => {
  const x = Number((v as unknown as Record<string, string | undefined>)[k] ?? DEFAULTS[k]);
  if (!Number.isInteger(x) || x <= 0) throw new Error(`--${k} must be a positive integer`);
  return x;
};
const O = {
  tasks: num('tasks'), finished: num('finished'), rounds: num('rounds'), windowS: num('window-s'), idleS: num('idle-s'),
  complete: num('complete'), connections: num('connections'),
  pollAfterMs: v['poll-after-ms'] === undefined ? undefined : Number(v['poll-after-ms']),
};
const UPSTREAM_KEY = 'sk-bench-long-jobs';
const API_KEY = 'bench-key-in-flight-0123456789';
const MB = 2 ** 20;
const BODY = JSON.stringify({ model: 'sora-2', prompt: 'a lighthouse, for hours', aspect_ratio: '16:9', duration: 4 });

/** The longest gap allowed between two polls of a job: the issue's 15 s (max_poll_interval_ms's default), or the hint when longer. */
const gapBoundMs = () => Math.max(15_000, O.pollAfterMs ?? 0);
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

/** CPU of the gateway's process over the next `ms`, in % of one core. */
async function cpuOver(gateway: GatewayProcess, ms: number): Promise<{ cpu_pct: number; loop_delay_ms: GatewayUsage['loop_delay_ms'] }> {
  const c0 = (await gateway.call('usage')).cpu_us;
  const w0 = performance.now();
  await sleep(ms);
  const u = await gateway.call('usage');
  return { cpu_pct: ((u.cpu_us - c0) / 1000 / (performance.now() - w0)) * 100, loop_delay_ms: u.loop_delay_ms };
}

/** The gateway's memory as the bench reports it, in MB: V8's heap, memory outside it, and code. */
function memoryMb(u: GatewayUsage) {
  return {
    rss: u.memory.rss / MB, heap_used: u.memory.heapUsed / MB, heap_total: u.memory.heapTotal / MB,
    external: u.memory.external / MB, array_buffers: u.memory.arrayBuffers / MB, code: u.code_bytes / MB,
  };
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
  follow: { polls_per_s: number; gap_p50_ms: number; gap_p99_ms: number; gap_max_ms: number; over_bound: number; cpu_pct: number; loop_delay_ms: GatewayUsage['loop_delay_ms'] };
  completion: {
    p50_ms: number; p99_ms: number; max_ms: number; stored: number;
    /** Stored later than the promised poll interval (15 s, or the hint when longer) plus 2 s, or not within 60 s. */
    over_bound: number;
    /** Stored later than the job's poll interval by its age (poll-schedule.ts, the poller not behind) plus 2 s. */
    over_age_schedule: number;
    /** From the completion upstream to the first poll that saw it; the gap between that poll and the one before. */
    poll_wait_ms: { p50: number; max: number };
    poll_interval_ms: { p50: number; max: number };
    /** From the poll that saw it to the download's request; from that poll to the task stored completed. */
    to_download_ms: { p50: number; max: number };
    handling_ms: { p50: number; max: number; over_2s: number };
    /** The longest poll gap of each job still running, from the completions until all were stored. */
    others_gap_ms: { p50: number; max: number; over_bound: number };
    /** The gateway's event loop delay over the same time (CPU saturation shows here). */
    loop_delay_ms: GatewayUsage['loop_delay_ms'];
  };
  rss_peak_mb: number;
  /** The gateway's peak RSS per phase: idle, creating and dispatching, following, completing. */
  rss_phases_mb: Record<string, number>;
  /** The gateway's V8 heap in use at the end of the following window (what is live, against RSS's high-water mark). */
  heap_following_mb: number;
  /** The gateway's memory at the end of the following window (process.memoryUsage and V8's code), in MB. */
  memory_following_mb: ReturnType<typeof memoryMb> & { rss_anon: number; rss_file: number };
}

async function round(variant: 'A' | 'B', n: number, mp4File: string, bundle: string | undefined): Promise<RoundResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-inflight-'));
  const dbFile = path.join(dir, 'vidgate.db');
  const load_before = load();
  if (variant === 'B') seedFinished(dbFile, O.finished);
  const upstream = await startUpstream(mp4File);
  const raw = {
    data_dir: dir,
    log_level: 'silent',
    server: { port: 0, drain_readiness_delay_ms: 0 },
    auth: { api_keys: [API_KEY] },
    // workers: the defaults, not the tests' fast settings.
    cache: { enabled: false },
    teams: { default_quotas: { reads_per_minute: null, submits_per_minute: null } },
    providers: [{ id: 'long', kind: 'openai', base_url: upstream.url, api_key_env: 'LONG_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] }],
  };
  const config = parseConfig(raw);
  const gateway = await forkGateway(raw, { LONG_KEY: UPSTREAM_KEY, VIDGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789' }, bundle, v['gateway-flags']?.split(' ').filter(Boolean) ?? START_NODE_FLAGS);
  const base = gateway.url;
  const reader = new Database(dbFile, { readonly: true });
  let rssPeak = 0;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, gateway.rssBytes())), 250);
  try {
    const headers = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };
    await fetch(`${base}/v1/models`, { headers }); // compiles the validator
    await sleep(2000); // past the start's one-time work
    const idleCpu = (await cpuOver(gateway, O.idleS * 1000)).cpu_pct;
    const phases: Record<string, number> = {};
    const phase = (name: string) => {
      phases[name] = Math.max(rssPeak, gateway.rssBytes()) / MB;
      rssPeak = 0;
    };
    phase('idle');

    // Creates, as fast as the connections go; the dispatcher submits meanwhile (unless --backlog).
    if (v.backlog) await gateway.call('stop-workers');
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
    if (v.backlog) await gateway.call('start-workers');
    for (const end = Date.now() + 900_000; (pending.get() as number) > 0 && Date.now() < end; ) await sleep(250);
    const drainS = (Date.now() - drainStart) / 1000;
    const lat = sortNum(reader.prepare("SELECT submitted_at_ms - created_at_ms FROM tasks WHERE status = 'processing'").pluck().all() as number[]);
    if (lat.length !== O.tasks) throw new Error(`${lat.length} of ${O.tasks} tasks running upstream`);

    phase('creating');
    // Following: every job is running; the upstream measures the gaps between polls of each.
    await fetch(`${upstream.url}/control/window`, { method: 'POST' });
    const { cpu_pct: followCpu, loop_delay_ms: followLoopDelay } = await cpuOver(gateway, O.windowS * 1000);
    const stats = (await (await fetch(`${upstream.url}/control/stats`)).json()) as { window_ms: number; polls: number; gaps_ms: number[] };
    const gaps = sortNum(stats.gaps_ms);
    const gapBound = gapBoundMs();

    const kinds = gateway.rssKinds();
    const memoryFollowing = { ...memoryMb(await gateway.call('usage')), rss_anon: kinds.anon / MB, rss_file: kinds.file / MB };
    phase('following');
    if (v['heap-snapshot']) console.log(`    heap snapshot: ${await gateway.call('heap-snapshot', path.join(v['heap-snapshot'], `in-flight-${variant}${n}.heapsnapshot`))}`);
    // Completions: some jobs finish at once upstream; each must be stored within its poll interval + 2 s. The
    // upstream measures the poll gaps of the other jobs meanwhile (a new window).
    await fetch(`${upstream.url}/control/window`, { method: 'POST' });
    await gateway.call('usage'); // resets the loop delay's histogram
    const done = (await (await fetch(`${upstream.url}/control/complete?n=${O.complete}`, { method: 'POST' })).json()) as { id: string; completed_at_ms: number }[];
    const byUpstream = reader.prepare(`SELECT id, upstream_id, status, submitted_at_ms, completed_at_ms FROM tasks WHERE upstream_id IN (SELECT value FROM json_each(?))`);
    type Row = { id: string; upstream_id: string; status: string; submitted_at_ms: number; completed_at_ms: number | null };
    const ids = JSON.stringify(done.map((d) => d.id));
    let rows: Row[] = [];
    for (const end = Date.now() + 60_000; Date.now() < end; await sleep(250)) {
      rows = byUpstream.all(ids) as Row[];
      if (rows.every((r) => r.status !== 'processing')) break;
    }
    const completingLoopDelay = (await gateway.call('usage')).loop_delay_ms;
    const completingGaps = sortNum(((await (await fetch(`${upstream.url}/control/stats`)).json()) as { gaps_ms: number[] }).gaps_ms);
    phase('completing');
    const at = done[0]?.completed_at_ms ?? Date.now();
    const stored = rows.filter((r) => r.status === 'completed' && r.completed_at_ms !== null);
    const lags = sortNum(stored.map((r) => r.completed_at_ms! - at));
    const overAge = stored.filter((r) => r.completed_at_ms! - at > nextPollDelayMs(at - r.submitted_at_ms, O.pollAfterMs, config.workers) + 2000).length;
    // Where the time went, as the upstream saw it: until the first poll that found the job completed, then from
    // that poll to the download's request, then until the task was stored completed (download, probe, store).
    type Seen = { id: string; last_poll_before_ms: number; seen_ms: number | null; content_ms: number | null };
    const seen = new Map(((await (await fetch(`${upstream.url}/control/completed`)).json()) as Seen[]).map((s) => [s.id, s]));
    const parts = stored.map((r) => ({ row: r, seen: seen.get(r.upstream_id)! }));
    const waits = sortNum(parts.map((p) => p.seen.seen_ms! - at));
    const intervals = sortNum(parts.map((p) => p.seen.seen_ms! - p.seen.last_poll_before_ms));
    const toDownload = sortNum(parts.map((p) => p.seen.content_ms! - p.seen.seen_ms!));
    const handling = sortNum(parts.map((p) => p.row.completed_at_ms! - p.seen.seen_ms!));
    const stat = (xs: number[]) => ({ p50: pct(xs, 50), max: xs.at(-1) ?? NaN });

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
        loop_delay_ms: followLoopDelay,
      },
      completion: {
        p50_ms: pct(lags, 50), p99_ms: pct(lags, 99), max_ms: lags.at(-1) ?? NaN, stored: stored.length,
        over_bound: lags.filter((x) => x > gapBound + 2000).length + (O.complete - stored.length),
        over_age_schedule: overAge + (O.complete - stored.length),
        poll_wait_ms: stat(waits), poll_interval_ms: stat(intervals), to_download_ms: stat(toDownload),
        handling_ms: { ...stat(handling), over_2s: handling.filter((x) => x > 2000).length },
        others_gap_ms: { p50: pct(completingGaps, 50), max: completingGaps.at(-1) ?? NaN, over_bound: completingGaps.filter((g) => g > gapBound).length },
        loop_delay_ms: completingLoopDelay,
      },
      rss_peak_mb: Math.max(...Object.values(phases)),
      rss_phases_mb: phases,
      heap_following_mb: memoryFollowing.heap_used,
      memory_following_mb: memoryFollowing,
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
    `polls ${f0(r.follow.polls_per_s)}/s, gap p50 ${f0(r.follow.gap_p50_ms)} p99 ${f0(r.follow.gap_p99_ms)} max ${f0(r.follow.gap_max_ms)} ms (over bound: ${r.follow.over_bound}), cpu ${f1(r.follow.cpu_pct)}%, loop delay p99 ${f0(r.follow.loop_delay_ms.p99)} max ${f0(r.follow.loop_delay_ms.max)} ms`,
    `completion p50 ${f0(r.completion.p50_ms)} p99 ${f0(r.completion.p99_ms)} max ${f0(r.completion.max_ms)} ms (${r.completion.stored} stored, over ${f1((gapBoundMs() + 2000) / 1000)} s: ${r.completion.over_bound}, over the age schedule + 2 s: ${r.completion.over_age_schedule})`,
    `  = until polled p50 ${f0(r.completion.poll_wait_ms.p50)} max ${f0(r.completion.poll_wait_ms.max)} (poll interval p50 ${f0(r.completion.poll_interval_ms.p50)} max ${f0(r.completion.poll_interval_ms.max)})` +
      ` + handling p50 ${f0(r.completion.handling_ms.p50)} max ${f0(r.completion.handling_ms.max)} ms (over 2 s: ${r.completion.handling_ms.over_2s}; of which until the download p50 ${f0(r.completion.to_download_ms.p50)} max ${f0(r.completion.to_download_ms.max)})`,
    `  meanwhile: the other jobs' poll gap p50 ${f0(r.completion.others_gap_ms.p50)} max ${f0(r.completion.others_gap_ms.max)} ms (over bound: ${r.completion.others_gap_ms.over_bound}); loop delay p99 ${f0(r.completion.loop_delay_ms.p99)} max ${f0(r.completion.loop_delay_ms.max)} ms`,
    `gateway rss peak ${f0(r.rss_peak_mb)} MB (${Object.entries(r.rss_phases_mb).map(([k, mb]) => `${k} ${f0(mb)}`).join(', ')})`,
    `after following: ${Object.entries(r.memory_following_mb).map(([k, mb]) => `${k} ${f0(mb)}`).join(', ')} MB`,
  ].join('\n    ');
}

async function main() {
  console.log(`bench/in-flight: ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), Node ${process.version}; shared machine: other runs may load it`);
  console.log(`${O.tasks} tasks in flight, A: empty store, B: ${O.finished} finished tasks; ${O.rounds} rounds A/B interleaved; window ${O.windowS} s; poll-after hint ${O.pollAfterMs ?? 'none'}; gateway runtime ${RUNTIME} with ${v['gateway-flags'] ?? START_NODE_FLAGS.join(' ')}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-mp4-'));
  const mp4File = path.join(dir, 'v.mp4');
  fs.writeFileSync(mp4File, await mp4Renderer()({ size: '1280x720', seconds: 4 }));
  const results: RoundResult[] = [];
  const bundle = RUNTIME === 'bundle' ? await bundleGateway() : undefined;
  try {
    for (let n = 1; n <= O.rounds; n++) {
      for (const variant of (['A', 'B'] as const).filter((x) => v.only === undefined || v.only === x)) {
        const r = await round(variant, n, mp4File, bundle);
        results.push(r);
        console.log(line(r));
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    if (bundle) fs.rmSync(bundle, { force: true });
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
    ['completion handling max', (r) => r.completion.handling_ms.max],
    ['gateway RSS peak MB', (r) => r.rss_peak_mb],
    ['RSS following MB', (r) => r.rss_phases_mb.following!],
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
