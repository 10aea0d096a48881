// bench/http: the request path against a bare `node:http` server answering the same bytes, side by side in one
// run, with `wrk` (/usr/bin/wrk) as the load generator. Every server runs in a process of its own (this file,
// forked with --child), so the gateway, the bare server and wrk each get their own event loop.
//
// Phases, each over --rounds interleaved rounds (A, B, A, B, ...), the load average printed before every run:
//   get:    GET /v1/tasks/{id} at --connections connections: bare vs gateway
//   get1:   the same at one connection: bare vs gateway (p50 overhead)
//   create: POST /v1/videos/generations at --connections connections: bare vs gateway on an empty store vs
//           10 000 tasks in flight (--inflight) vs 100 000 finished tasks (--finished); a fresh gateway (fresh
//           SQLite file) for every run, since each run adds its own tasks.
// The gateway: one simulated provider (jobs of 1 h), quotas on (every limit set on the team and the key, far
// too high to refuse), the dispatcher and poller not started (only the request path is measured). After each
// create run the gateway checks the ledger: every accepted task reserved once, the counters equal the ledger.
//
//   node --import tsx bench/http.ts [--seconds 5] [--warmup 1] [--rounds 3] [--connections 20]
//       [--phases get,get1,create] [--inflight 10000] [--finished 100000] [--profile DIR]
import { execFile, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { Gateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import type { Quotas } from '../src/store/types';
import { START_NODE_FLAGS } from './support/start-flags';

const usage = `usage: node --import tsx bench/http.ts [options]
  --seconds N       measured seconds per run (default 5)
  --warmup N        unmeasured seconds before each run (default 1)
  --rounds N        interleaved rounds (default 3)
  --connections N   wrk connections of the "get" and "create" phases (default 20)
  --phases LIST     get,get1,create (default all three)
  --inflight N      tasks in flight (pending/processing, a running attempt each) in the "inflight" store (default 10000)
  --finished N      completed tasks in the "finished" store (default 100000)
  --profile DIR     run the gateway children with --cpu-prof into DIR`;

const WRK = '/usr/bin/wrk';
const HUGE = 1_000_000_000;
const HIGH_LIMITS: Quotas = { credits_per_day: HUGE, credits_per_month: HUGE, max_concurrent: HUGE, reads_per_minute: HUGE, submits_per_minute: HUGE };
const SUBMIT_BODY = JSON.stringify({ model: 'sora-2', prompt: 'a paper boat on a rainy street', aspect_ratio: '16:9', duration: 4 });
const silent = createLogger('silent');

type Store = 'empty' | 'inflight' | 'finished';
/** What a child tells the parent once it listens. */
interface Ready {
  url: string;
  key?: string;
  task_id?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Children

/** What a child measured between two {type: 'cpu'} messages. */
interface Usage {
  /** CPU time (user + system) since the child started, µs. */
  us: number;
  /** The event loop's longest delay since the last message, ms (perf_hooks.monitorEventLoopDelay, 10 ms resolution). */
  loop_max_ms: number;
  /** Garbage collection pauses since the last message: their sum and the longest, ms ('gc' performance entries). */
  gc_ms: number;
  gc_max_ms: number;
}

/** Answers {type: 'cpu'} with this process's CPU time so far, and the loop delays and GC pauses since the last time. */
function answerUsage() {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let gc_ms = 0;
  let gc_max_ms = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc_ms += entry.duration;
      gc_max_ms = Math.max(gc_max_ms, entry.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('message', (m: { type: string }) => {
    if (m.type !== 'cpu') return;
    const { user, system } = process.cpuUsage();
    process.send!({ type: 'cpu', us: user + system, loop_max_ms: loop.max / 1e6, gc_ms, gc_max_ms } satisfies Usage & { type: 'cpu' });
    loop.reset();
    gc_ms = gc_max_ms = 0;
  });
}

/** A bare node:http server answering every request with the given status, content type and bytes. */
async function bareChild(status: number, contentType: string, bodyFile: string) {
  const body = fs.readFileSync(bodyFile);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  answerUsage();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  process.send!({ url: `http://127.0.0.1:${port}` } satisfies Ready);
}

/** The real gateway on a fresh SQLite file, filled as `store` says; answers 'check' with the ledger's verdict. */
async function gatewayChild(store: Store, inflight: number, finished: number) {
  const { parseConfig } = await import('../src/core/config');
  const { createGateway } = await import('../src/core/gateway');
  const Database = (await import('better-sqlite3')).default;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-http-'));
  process.on('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    data_dir: dataDir,
    log_level: 'silent',
    auth: { api_keys: ['bench-http-unused-key-0123456789'] },
    providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 3_600_000 }],
  });
  const gw: Gateway = await createGateway(config, { log: silent });
  const team = await gw.teams.createTeam('bench-http', HIGH_LIMITS);
  const { record, key } = await gw.teams.addKey(team.id, { name: 'bench', ...HIGH_LIMITS });
  // The loops never start and a submit wakes nothing: only the request path runs.
  gw.workers.start = () => undefined;
  gw.workers.wake = () => undefined;

  if (store !== 'empty') {
    // Rows written straight into the file (one transaction), as the gateway would have left them.
    const db = new Database(config.store.sqlite_path);
    const n = store === 'inflight' ? inflight : finished;
    const now = Date.now();
    const day = new Date(now).toISOString().slice(0, 10);
    const status = store === 'inflight' ? 'processing' : 'completed';
    db.transaction(() => {
      db.prepare(
        `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < @n)
         INSERT INTO tasks (id, owner_id, key_id, status, progress, model, request_json, credits_reserved, credits_settled,
           quota_day, quota_month, attempt, provider_id, upstream_id, created_at_ms, updated_at_ms, submitted_at_ms,
           completed_at_ms, next_run_at_ms)
         SELECT 'task_seed_' || i, @team, @key, @status, 0, 'sora-2', @request, 40, CASE WHEN @status = 'completed' THEN 40 END,
           @day, substr(@day, 1, 7), 1, 'simulated', 'job_' || i, @now - i, @now, @now - i,
           CASE WHEN @status = 'completed' THEN @now END, @now + 3600000
         FROM seq`,
      ).run({ n, team: team.id, key: record.id, status, request: SUBMIT_BODY, day, now });
      db.prepare(
        `INSERT INTO task_attempts (task_id, n, provider_id, upstream_id, micro_usd, credits, started_at_ms, ended_at_ms, outcome)
         SELECT id, 1, 'simulated', upstream_id, 400000, 40, submitted_at_ms, completed_at_ms,
           CASE WHEN status = 'completed' THEN 'completed' ELSE 'running' END
         FROM tasks WHERE id LIKE 'task_seed_%'`,
      ).run();
    })();
    db.close();
    // The counters and the ledger were not written for these rows: rebuild the counters from the tasks.
    await gw.store.recomputeUsage();
  }
  const url = await gw.start();
  const res = await fetch(`${url}/v1/videos/generations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: SUBMIT_BODY,
  });
  const task = (await res.json()) as { id: string };
  answerUsage();
  process.on('message', async (m: { type: string }) => {
    if (m.type !== 'check') return;
    const ledger = await gw.store.listLedger(team.id);
    const reserved = ledger.filter((e) => e.kind === 'reserve').length;
    const usage = await gw.store.quotaUsage('team', team.id, Date.now());
    const seeded = store === 'inflight' ? inflight : 0;
    const tasks = new Set(ledger.map((e) => e.task_id)).size;
    process.send!({ type: 'check', reserved, tasks, active: usage.active_tasks - seeded, credits: ledger.reduce((s, e) => s + e.credits, 0) });
  });
  process.send!({ url, key, task_id: task.id } satisfies Ready);
}

// ---------------------------------------------------------------------------------------------------------
// wrk

interface WrkResult {
  rps: number;
  /** The server process's CPU time per request answered (µs), when known. */
  cpu_us?: number;
  /** The server's usage over the measured run, when known. */
  usage?: Usage;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
}

const toMs = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[unit]!;

async function wrk(url: string, connections: number, seconds: number, script: string): Promise<WrkResult> {
  const args = [`-t${Math.min(2, connections)}`, `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url];
  const { stdout } = await promisify(execFile)(WRK, args, { maxBuffer: 1 << 20 });
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(stdout);
    if (!m) throw new Error(`no ${p}% in wrk output:\n${stdout}`);
    return toMs(m[1]!, m[2]!);
  };
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? 0);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50_ms: pct('50'),
    p99_ms: pct('99'),
    requests: num(/(\d+) requests in/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    errors: errors ? errors.slice(1).reduce((s, v) => s + Number(v), 0) : 0,
  };
}

function wrkScript(dir: string, name: string, method: 'GET' | 'POST', key: string): string {
  const salt = Math.random().toString(36).slice(2, 8); // warm-up and measured runs send different prompts
  const file = path.join(dir, `${name}-${salt}.lua`);
  const lines = [`wrk.method = "${method}"`, `wrk.headers["Authorization"] = "Bearer ${key}"`];
  if (method === 'POST') {
    // A prompt of its own for every request (thread id and counter), so that none is a cache hit or a follower.
    const [head, tail] = SUBMIT_BODY.split('a paper boat') as [string, string];
    lines.push(
      `wrk.headers["Content-Type"] = "application/json"`,
      'local threads = 0',
      'function setup(thread) thread:set("tid", threads); threads = threads + 1 end',
      'local n = 0',
      `function request() n = n + 1; return wrk.format(nil, nil, nil, [[${head}a paper boat ${salt}-]] .. tid .. "-" .. n .. [[${tail}]]) end`,
    );
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// The parent

const self = fileURLToPath(import.meta.url);
const children = new Set<ChildProcess>();

function startChild(args: string[], profileDir?: string): Promise<{ child: ChildProcess; ready: Ready }> {
  // The gateway child runs with `npm start`'s node flags, as a started gateway does.
  const execArgv = [...process.execArgv, ...START_NODE_FLAGS, ...(profileDir ? ['--cpu-prof', '--cpu-prof-interval=200', `--cpu-prof-dir=${profileDir}`] : [])];
  const child = fork(self, ['--child', ...args], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    child.once('message', (ready: Ready) => resolve({ child, ready }));
    child.once('exit', (code) => reject(new Error(`child ${args.join(' ')} exited with ${code}`)));
  });
}

async function stopChild(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT'); // SIGINT lets --cpu-prof write its profile
  await exited;
}

function usageOf(child: ChildProcess): Promise<Usage> {
  return new Promise((resolve) => {
    const listen = (m: Usage & { type: string }) => {
      if (m.type !== 'cpu') return;
      child.off('message', listen);
      resolve(m);
    };
    child.on('message', listen);
    child.send({ type: 'cpu' });
  });
}

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (r: WrkResult) =>
  `${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50_ms.toFixed(2).padStart(6)} ms  p99 ${r.p99_ms.toFixed(2).padStart(6)} ms` +
  (r.cpu_us === undefined ? '' : `  cpu ${r.cpu_us.toFixed(0).padStart(4)} µs/req`) +
  (r.usage === undefined ? '' : `  loop max ${r.usage.loop_max_ms.toFixed(0).padStart(3)} ms  gc ${r.usage.gc_ms.toFixed(0).padStart(4)} ms (max ${r.usage.gc_max_ms.toFixed(1)})`) +
  (r.non2xx || r.errors ? `  (non-2xx ${r.non2xx}, socket errors ${r.errors})` : '');

/** Fetches a response's exact bytes and headers once, for the bare server to answer with. */
async function capture(url: string, init: RequestInit, dir: string, name: string) {
  const res = await fetch(url, init);
  const body = Buffer.from(await res.arrayBuffer());
  const file = path.join(dir, `${name}.body`);
  fs.writeFileSync(file, body);
  return { status: res.status, contentType: res.headers.get('content-type') ?? 'application/json', file, bytes: body.length };
}

async function main() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '20' },
      phases: { type: 'string', default: 'get,get1,create' },
      inflight: { type: 'string', default: '10000' },
      finished: { type: 'string', default: '100000' },
      profile: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void console.log(usage);
  const [seconds, warmup, rounds, connections] = [values.seconds, values.warmup, values.rounds, values.connections].map(Number) as [number, number, number, number];
  const phases = new Set(values.phases.split(','));
  const sizes = ['--inflight', values.inflight, '--finished', values.finished];
  const profileDir = values.profile && path.resolve(values.profile);
  if (!fs.existsSync(WRK)) throw new Error(`${WRK} is missing (apt-get install wrk)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-http-wrk-'));
  const cpus = os.cpus();
  console.log(`bench/http — ${cpus.length} x ${cpus[0]?.model.trim()}, node ${process.version}, wrk ${WRK}; ${rounds} rounds, ${warmup} s warm-up + ${seconds} s each`);
  console.log('The machine may be shared: read the ratios (same round, side by side), not the absolute figures.\n');
  let failed = false;

  const run = async (label: string, url: string, c: number, script: () => string, server: ChildProcess) => {
    const before = loadavg();
    if (warmup > 0) await wrk(url, c, warmup, script());
    const before_usage = await usageOf(server);
    const r = await wrk(url, c, seconds, script());
    r.usage = await usageOf(server);
    r.cpu_us = (r.usage.us - before_usage.us) / (r.requests || 1);
    console.log(`  ${label.padEnd(22)} load ${before}  ${fmt(r)}`);
    if (r.errors > 0 || r.non2xx > 0) failed = true;
    return r;
  };

  // GET phases: one gateway for all rounds (a GET changes no task), one bare server answering its bytes.
  if (phases.has('get') || phases.has('get1')) {
    const gw = await startChild(['gateway', 'empty', ...sizes], profileDir);
    const { url, key, task_id } = gw.ready;
    const target = `${url}/v1/tasks/${task_id}`;
    const got = await capture(target, { headers: { authorization: `Bearer ${key}` } }, tmp, 'get');
    const bare = await startChild(['bare', String(got.status), got.contentType, got.file]);
    const script = () => wrkScript(tmp, 'get', 'GET', key!);
    for (const [phase, c] of [['get', connections], ['get1', 1]] as const) {
      if (!phases.has(phase)) continue;
      console.log(`GET /v1/tasks/{id} (${got.status}, ${got.bytes} bytes), ${c} connection${c === 1 ? '' : 's'}`);
      const ratios: number[] = [];
      const overheads: number[] = [];
      const p99s: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        const b = await run(`round ${round} bare`, `${bare.ready.url}/v1/tasks/${task_id}`, c, script, bare.child);
        const g = await run(`round ${round} gateway`, target, c, script, gw.child);
        ratios.push(g.rps / b.rps);
        overheads.push(g.p50_ms - b.p50_ms);
        p99s.push(g.p99_ms);
      }
      console.log(
        `  => gateway/bare req/s: ${ratios.map((r) => r.toFixed(3)).join(', ')} (median ${median(ratios).toFixed(3)}); ` +
          `gateway p99 median ${median(p99s).toFixed(2)} ms; p50 overhead median ${median(overheads).toFixed(3)} ms\n`,
      );
    }
    await Promise.all([stopChild(gw.child), stopChild(bare.child)]);
  }

  if (phases.has('create')) {
    // The bare server answers a 202 exactly as the gateway does.
    const probe = await startChild(['gateway', 'empty', ...sizes]);
    const post = { method: 'POST', headers: { authorization: `Bearer ${probe.ready.key}`, 'content-type': 'application/json' }, body: SUBMIT_BODY };
    const got = await capture(`${probe.ready.url}/v1/videos/generations`, post, tmp, 'create');
    await stopChild(probe.child);
    const bare = await startChild(['bare', String(got.status), got.contentType, got.file]);
    console.log(`POST /v1/videos/generations (${got.status}, ${got.bytes} bytes), ${connections} connections; stores: empty, ${values.inflight} in flight, ${values.finished} finished`);
    const stores: Store[] = ['empty', 'inflight', 'finished'];
    const rps: Record<Store | 'bare', number[]> = { bare: [], empty: [], inflight: [], finished: [] };
    const p99: Record<Store, number[]> = { empty: [], inflight: [], finished: [] };
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? stores : [...stores].reverse();
      rps.bare.push((await run(`round ${round} bare`, `${bare.ready.url}/v1/videos/generations`, connections, () => wrkScript(tmp, 'post-bare', 'POST', 'x'), bare.child)).rps);
      for (const store of order) {
        const gw = await startChild(['gateway', store, ...sizes], profileDir);
        const r = await run(`round ${round} ${store}`, `${gw.ready.url}/v1/videos/generations`, connections, () => wrkScript(tmp, `post-${store}`, 'POST', gw.ready.key!), gw.child);
        rps[store].push(r.rps);
        p99[store].push(r.p99_ms);
        // The ledger stays exact: every accepted task reserved once; the team's active counter counts them.
        gw.child.send({ type: 'check' });
        const check = await new Promise<{ reserved: number; tasks: number; active: number; credits: number }>((resolve) =>
          gw.child.once('message', resolve),
        );
        const ok = check.reserved === check.tasks && check.active === check.tasks && check.credits === check.tasks * 40;
        if (!ok) failed = true;
        console.log(`    ledger: ${check.tasks} tasks, ${check.reserved} reservations, active ${check.active}, ${check.credits} credits: ${ok ? 'exact' : 'WRONG'}`);
        await stopChild(gw.child);
      }
    }
    await stopChild(bare.child);
    for (const store of stores) {
      const vsEmpty = rps[store].map((r, i) => r / rps.empty[i]!);
      console.log(
        `  => ${store.padEnd(8)} median ${median(rps[store]).toFixed(0)} req/s (bare ${median(rps.bare).toFixed(0)}), p99 median ${median(p99[store]).toFixed(2)} ms` +
          (store === 'empty' ? '' : `; vs empty, same round: ${vsEmpty.map((r) => r.toFixed(3)).join(', ')}`),
      );
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  if (failed) {
    console.log('\nFAILED: non-2xx answers, socket errors or a ledger that does not add up (see above)');
    process.exitCode = 1;
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const [kind, ...rest] = argv.slice(1);
  process.on('SIGINT', () => process.exit(0));
  if (kind === 'bare') await bareChild(Number(rest[0]), rest[1]!, rest[2]!);
  else {
    const { values } = parseArgs({ args: rest.slice(1), options: { inflight: { type: 'string' }, finished: { type: 'string' } } });
    await gatewayChild(rest[0] as Store, Number(values.inflight), Number(values.finished));
  }
} else {
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  await main();
}
