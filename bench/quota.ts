// bench/quota: what the quota checks cost on the request path. The real gateway (real SQLite file in a temp
// dir, real HTTP on 127.0.0.1, log silent) runs in this process and serves two teams side by side:
//   off: a team and key with no limits at all (every quota null);
//   on:  a team and key with every limit set (credits per day and month, max concurrent, requests per
//        minute), all far too high to ever refuse, so every request pays for every check.
// A load generator in a second process (this same file, with --load-child) keeps --connections keep-alive
// connections busy on POST /v1/videos/generations (auth, rate-limit count, validation, and the createTask
// transaction with its quota reservation) and on GET /v1/tasks/{id} (auth and rate-limit count), for each
// team in turn, over several rounds in alternating order. By default the dispatcher and poller are not
// started (--workers idle), so only the request path is measured.
//
// It prints, per endpoint and team: requests per second, latency p50/p99, the gateway's CPU time per request,
// the overhead of "on" over "off" (paired per round), and every non-2xx answer. Then, because a shared machine
// makes the HTTP figures noisy, two steadier views of the same question: the SQL statements each request runs
// (counted exactly), and the store calls that hold the quota logic timed alone (main-thread CPU per call).
//
//   node --import tsx bench/quota.ts [--seconds 10] [--connections 32] [--rounds 3] [--floor] [--help]
//
// Profiling: `node --cpu-prof --import tsx bench/quota.ts ...` profiles the gateway only (the load
// generator is started without the flag). See bench/README.md for what is measured and the latest figures.
import { fork, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Gateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { RATE_QUOTA, type Quotas } from '../src/store/types';

// ---------------------------------------------------------------------------------------------------------
// Settings

const usage = `usage: node --import tsx bench/quota.ts [options]
  --seconds N        measured seconds per phase (default 10)
  --warmup N         unmeasured seconds before each phase (default 2)
  --connections N    concurrent keep-alive connections of the load generator (default 32)
  --rounds N         rounds; each measures every endpoint for every mode, in alternating order (default 3)
  --endpoints LIST   submit,get (default both)
  --modes LIST       off,on and optionally floor (default off,on)
  --floor            same as adding "floor" to --modes: a third team whose per-request rate-limit
                     count is skipped (store.admitRequest stubbed in this process), to show what
                     that count costs in both off and on
  --limits-on S      team | both: where "on" sets its limits (default both: the team and the key)
  --workers W        idle (default): the dispatcher and poller are not started, so only the request
                     path is measured; live: they run, against a simulated provider whose jobs take 1 h
  --keep             keep the temp data dir
  --json FILE        also write the raw figures as JSON`;

const HUGE = 1_000_000_000; // far above anything a run can reach: never refuses, always checked
const NO_LIMITS: Quotas = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };
const HIGH_LIMITS: Quotas = { credits_per_day: HUGE, credits_per_month: HUGE, max_concurrent: HUGE, reads_per_minute: HUGE, submits_per_minute: HUGE };
const SUBMIT_BODY = JSON.stringify({ model: 'sora-2', prompt: 'a paper boat on a rainy street', aspect_ratio: '16:9', duration: 4 });
const SEED_TASKS = 256; // tasks created per team before the run, read by the GET phases
const MICRO_BATCHES = 20;
const MICRO_PER_BATCH = 500;

type Mode = 'off' | 'on' | 'floor';
type Endpoint = 'submit' | 'get';

// ---------------------------------------------------------------------------------------------------------
// The load generator (child process). It receives one phase at a time over IPC and answers with its figures.

interface PhaseRequest {
  type: 'run';
  url: string;
  key: string;
  endpoint: Endpoint;
  ids: string[];
  seconds: number;
  warmup: number;
  connections: number;
}

interface PhaseResult {
  type: 'result';
  /** Answers completed inside the measured window. */
  count: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Status code -> count, for every answer in the measured window. */
  statuses: Record<string, number>;
  /** Answers carrying X-RateLimit-Limit (only a team or key with a requests-per-minute limit gets it). */
  with_ratelimit_header: number;
  /** Transport errors (reset, refused, ...), by message. */
  errors: Record<string, number>;
  /** Up to 5 bodies of non-2xx answers, to see why. */
  samples: string[];
  /** Task ids answered by submits (a sample). */
  ids: string[];
  /** CPU used by the load generator during the phase, in % of one core. */
  cpu_pct: number;
}

async function loadChild(): Promise<void> {
  process.on('message', (msg: PhaseRequest | { type: 'exit' }) => {
    if (msg.type === 'exit') process.exit(0);
    void runPhase(msg).then((r) => process.send!(r));
  });
  process.send!({ type: 'ready' });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runPhase(req: PhaseRequest): Promise<PhaseResult> {
  const url = new URL(req.url);
  // A fresh agent per phase: the server closes idle sockets after 5 s, and a reused dead socket would
  // show up as an error that is not the gateway's.
  const agent = new http.Agent({ keepAlive: true, maxSockets: req.connections, maxFreeSockets: req.connections });
  const headers = { authorization: `Bearer ${req.key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(SUBMIT_BODY) };
  const getHeaders = { authorization: `Bearer ${req.key}` };

  let latencies = new Float64Array(1 << 16);
  let n = 0;
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const samples: string[] = [];
  const ids: string[] = [];
  let withHeader = 0;
  let next = 0;

  const t0 = performance.now();
  const measureFrom = t0 + req.warmup * 1000;
  const measureTo = measureFrom + req.seconds * 1000;
  let cpuStart: NodeJS.CpuUsage | undefined;

  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const isSubmit = req.endpoint === 'submit';
      const r = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: isSubmit ? 'POST' : 'GET',
          path: isSubmit ? '/v1/videos/generations' : `/v1/tasks/${req.ids[next++ % req.ids.length]}`,
          headers: isSubmit ? headers : getHeaders,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const ended = performance.now();
            if (started >= measureFrom && ended <= measureTo) {
              if (n === latencies.length) {
                const grown = new Float64Array(n * 2);
                grown.set(latencies);
                latencies = grown;
              }
              latencies[n++] = ended - started;
              const code = String(res.statusCode);
              statuses[code] = (statuses[code] ?? 0) + 1;
              if (res.headers['x-ratelimit-limit'] !== undefined) withHeader++;
              const ok = res.statusCode === (isSubmit ? 202 : 200);
              if (!ok && samples.length < 5) samples.push(`${code} ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`);
              if (ok && isSubmit && ids.length < 1000) ids.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string }).id);
            }
            resolve();
          });
          res.on('error', (e) => {
            errors[e.message] = (errors[e.message] ?? 0) + 1;
            resolve();
          });
        },
      );
      r.on('error', (e) => {
        if (performance.now() >= measureFrom) errors[e.message] = (errors[e.message] ?? 0) + 1;
        resolve();
      });
      r.end(isSubmit ? SUBMIT_BODY : undefined);
    });

  const worker = async () => {
    while (performance.now() < measureTo) {
      if (!cpuStart && performance.now() >= measureFrom) cpuStart = process.cpuUsage();
      await one();
    }
  };
  await Promise.all(Array.from({ length: req.connections }, worker));
  const cpu = process.cpuUsage(cpuStart);
  agent.destroy();

  const sorted = latencies.slice(0, n).sort();
  return {
    type: 'result',
    count: n,
    seconds: req.seconds,
    rps: n / req.seconds,
    p50_ms: percentile(sorted, 50),
    p90_ms: percentile(sorted, 90),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1]! : NaN,
    statuses,
    with_ratelimit_header: withHeader,
    errors,
    samples,
    ids,
    cpu_pct: ((cpu.user + cpu.system) / 1000 / (req.seconds * 1000)) * 100,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The orchestrator (main process): runs the gateway in this process, the load in the child.

interface Measured extends Omit<PhaseResult, 'type' | 'ids' | 'samples'> {
  round: number;
  mode: Mode;
  endpoint: Endpoint;
  /** The gateway's process over the measured window: CPU time per answered request (user + system, µs). */
  gateway_cpu_us_per_req: number;
  /** Its CPU use, in % of one core, and its event-loop utilization. */
  gateway_cpu_pct: number;
  gateway_elu: number;
  /** Its main thread (Linux): % of the window on a CPU, and % waiting for one (run queue: other processes). */
  main_oncpu_pct: number;
  main_runq_pct: number;
}

/** On-CPU and run-queue-wait nanoseconds of this process's main thread, where Linux tells them. */
function schedstat(): [number, number] | undefined {
  try {
    const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
    return run === undefined || wait === undefined ? undefined : [run, wait];
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const silent = createLogger('silent');

function startChild(): Promise<ChildProcess> {
  const self = fileURLToPath(import.meta.url);
  // Only tsx is passed on, so that a --cpu-prof given to the orchestrator profiles the gateway alone.
  const child = fork(self, ['--load-child'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
    child.once('message', () => resolve(child));
  });
}

function askChild(child: ChildProcess, req: PhaseRequest): Promise<PhaseResult> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as PhaseResult));
    child.send(req);
  });
}

async function submitOnce(url: string, key: string): Promise<string> {
  const res = await fetch(`${url}/v1/videos/generations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: SUBMIT_BODY,
  });
  const body = await res.text();
  if (res.status !== 202) throw new Error(`seeding: expected 202, got ${res.status}: ${body}`);
  return (JSON.parse(body) as { id: string }).id;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pct = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`;
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

/**
 * The quota statements alone, timed at the store with no HTTP around them: admitRequest (the per-request
 * rate-limit count, in memory) and createTask (insert + reservation), for the off and on keys, alternating in
 * batches so that both see the same machine. The median batch is reported, in µs per call.
 */
async function storeMicro(gw: Gateway, teams: Partial<Record<Mode, { id: string; keyId: string }>>, batches: number, perBatch: number) {
  const modes = (['off', 'on'] as const).filter((m) => teams[m]);
  const keys = new Map<Mode, NonNullable<Awaited<ReturnType<Gateway['store']['getApiKey']>>>>();
  const teamRecords = new Map<Mode, NonNullable<Awaited<ReturnType<Gateway['store']['getTeam']>>>>();
  for (const m of modes) keys.set(m, (await gw.store.getApiKey(teams[m]!.keyId))!);
  for (const m of modes) teamRecords.set(m, (await gw.store.getTeam(teams[m]!.id))!);
  const ops = {
    admitRequest: async (m: Mode) => void (await gw.store.admitRequest(keys.get(m)!, teamRecords.get(m)!, 'read', Date.now())),
    createTask: async (m: Mode) =>
      void (await gw.store.createTask({
        id: `task_${crypto.randomBytes(12).toString('hex')}`, // as the gateway makes them: random, so both modes insert alike
        owner_id: teams[m]!.id,
        key_id: teams[m]!.keyId,
        model: 'sora-2',
        request_json: JSON.stringify({ model: 'sora-2', prompt: 'a paper boat on a rainy street', size: '1280x720', duration_s: 4 }),
        callback_url: null,
        credits_reserved: 40,
        created_at_ms: Date.now(),
        cache_key: null,
        cache_status: 'disabled',
      })),
    'getApiKey (1 SELECT, for scale)': async (m: Mode) => void (await gw.store.getApiKey(teams[m]!.keyId)),
  };
  const results: { op: string; us: Record<string, number> }[] = [];
  for (const [op, fn] of Object.entries(ops)) {
    const times: Record<string, number[]> = {};
    for (let b = 0; b < batches; b++) {
      for (const m of b % 2 ? [...modes].reverse() : modes) {
        // The main thread's own CPU time where Linux tells it (waiting for a CPU does not count), else wall time.
        const s0 = schedstat();
        const t0 = performance.now();
        for (let i = 0; i < perBatch; i++) await fn(m);
        const s1 = schedstat();
        const ns = s0 && s1 ? s1[0] - s0[0] : (performance.now() - t0) * 1e6;
        (times[m] ??= []).push(ns / 1000 / perBatch);
      }
    }
    results.push({ op, us: Object.fromEntries(modes.map((m) => [m, median(times[m]!)])) });
  }
  return results;
}

/**
 * The SQL each request runs, counted exactly: every statement's run/get/all/iterate is counted by its text
 * while `n` sequential requests of one kind are served (the counting wrapper is installed only for this
 * pass, after the timed phases). Returns, per endpoint and mode, the count per request of each statement.
 */
async function countStatements(url: string, teams: Partial<Record<Mode, { key: string; ids: string[] }>>, endpoints: Endpoint[], modes: Mode[], n: number) {
  const { default: Database } = await import('better-sqlite3');
  const probe = new Database(':memory:');
  // The same native Statement class serves the gateway's statements: wrap its methods on the prototype.
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
  const methods = ['run', 'get', 'all', 'iterate'] as const;
  const originals = methods.map((m) => proto[m]!);
  let counts = new Map<string, number>();
  methods.forEach((m, i) => {
    const original = originals[i]!;
    proto[m] = function (this: { source: string }, ...args: unknown[]) {
      counts.set(this.source, (counts.get(this.source) ?? 0) + 1);
      return original.apply(this, args);
    };
  });
  const out: { endpoint: Endpoint; mode: Mode; perRequest: Map<string, number> }[] = [];
  try {
    for (const endpoint of endpoints) {
      for (const mode of modes) {
        const t = teams[mode]!;
        counts = new Map();
        for (let i = 0; i < n; i++) {
          const res =
            endpoint === 'submit'
              ? await fetch(`${url}/v1/videos/generations`, {
                  method: 'POST',
                  headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' },
                  body: SUBMIT_BODY,
                })
              : await fetch(`${url}/v1/tasks/${t.ids[i % t.ids.length]}`, { headers: { authorization: `Bearer ${t.key}` } });
          await res.arrayBuffer();
          if (res.status !== (endpoint === 'submit' ? 202 : 200)) throw new Error(`counting pass: ${endpoint} ${mode} answered ${res.status}`);
        }
        out.push({ endpoint, mode, perRequest: new Map([...counts].map(([sql, c]) => [sql, c / n])) });
      }
    }
  } finally {
    methods.forEach((m, i) => (proto[m] = originals[i]!));
    probe.close();
  }
  return out;
}

const oneLine = (sql: string, max = 110) => {
  const s = sql.replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      endpoints: { type: 'string', default: 'submit,get' },
      modes: { type: 'string', default: 'off,on' },
      floor: { type: 'boolean', default: false },
      'limits-on': { type: 'string', default: 'both' },
      workers: { type: 'string', default: 'idle' },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const endpoints = values.endpoints.split(',').map((s) => s.trim()) as Endpoint[];
  const modes = [...new Set([...values.modes.split(',').map((s) => s.trim()), ...(values.floor ? ['floor'] : [])])] as Mode[];
  const limitsOn = values['limits-on'];
  const workersMode = values.workers;
  for (const [name, v] of [['seconds', seconds], ['connections', connections], ['rounds', rounds]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer\n${usage}`);
  }
  if (!(warmup >= 0)) throw new Error(`--warmup must be >= 0\n${usage}`);
  if (!endpoints.every((e) => e === 'submit' || e === 'get')) throw new Error(`--endpoints: submit, get\n${usage}`);
  if (!modes.every((m) => m === 'off' || m === 'on' || m === 'floor')) throw new Error(`--modes: off, on, floor\n${usage}`);
  if (limitsOn !== 'team' && limitsOn !== 'both') throw new Error(`--limits-on: team or both\n${usage}`);
  if (workersMode !== 'idle' && workersMode !== 'live') throw new Error(`--workers: idle or live\n${usage}`);

  const { parseConfig } = await import('../src/core/config');
  const { createGateway } = await import('../src/core/gateway');

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-quota-'));
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    data_dir: dataDir,
    log_level: 'silent',
    auth: { api_keys: ['bench-quota-unused-key-0123456789'] }, // so that no development key is created
    // Jobs take an hour: with --workers live, tasks are dispatched and then only polled, never rendered.
    providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 3_600_000 }],
  });
  const gw: Gateway = await createGateway(config, { log: silent });

  // The teams. Each key gets the team's limits too when --limits-on both, so both scopes are checked.
  const teams = {} as Record<Mode, { id: string; keyId: string; key: string; ids: string[] }>;
  for (const mode of modes) {
    const quotas = mode === 'on' ? HIGH_LIMITS : NO_LIMITS;
    const team = await gw.teams.createTeam(`bench-quotas-${mode}`, quotas);
    const { record, key } = await gw.teams.addKey(team.id, { name: 'bench', ...(mode === 'on' && limitsOn === 'both' ? HIGH_LIMITS : {}) });
    teams[mode] = { id: team.id, keyId: record.id, key, ids: [] };
  }
  if (teams.floor) {
    // floor: skip the rate-limit count for this team only (the store object is shared with the app).
    const floorTeam = teams.floor.id;
    const admit = gw.store.admitRequest.bind(gw.store);
    gw.store.admitRequest = async (key, team, kind, nowMs) =>
      key.team_id === floorTeam ? { allowed: true, quota: RATE_QUOTA[kind], limit: null, remaining: null } : admit(key, team, kind, nowMs);
  }
  if (workersMode === 'idle') {
    // The loops never start and a submit does not wake them: only the request path runs.
    gw.workers.start = () => undefined;
    gw.workers.wakeDispatcher = () => undefined;
  }
  const url = await gw.start();

  for (const mode of modes) {
    const t = teams[mode];
    for (let i = 0; i < SEED_TASKS; i += 16) t.ids.push(...(await Promise.all(Array.from({ length: 16 }, () => submitOnce(url, t.key)))));
  }

  const child = await startChild();
  const cpus = os.cpus();
  console.log(
    `bench/quota: ${cpus.length} x ${cpus[0]?.model.trim()}, node ${process.version}; gateway ${url} (this process), ` +
      `load generator pid ${child.pid}\n` +
      `${rounds} rounds x ${endpoints.join('+')} x ${modes.join('/')} (alternating), ${warmup} s warm-up + ${seconds} s each, ` +
      `${connections} connections; workers ${workersMode}; "on" limits on ${limitsOn === 'both' ? 'team and key' : 'team'}\n`,
  );

  const measured: Measured[] = [];
  const problems: string[] = [];
  const accepted: Record<string, number> = {};
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? modes : [...modes].reverse();
    for (const endpoint of endpoints) {
      for (const mode of order) {
        const t = teams[mode];
        // The child measures the client side; this process samples itself over the same window.
        const answer = askChild(child, { type: 'run', url, key: t.key, endpoint, ids: t.ids, seconds, warmup, connections });
        await sleep(warmup * 1000);
        const elu0 = performance.eventLoopUtilization();
        const cpu0 = process.cpuUsage();
        const sched0 = schedstat();
        const w0 = performance.now();
        await sleep(seconds * 1000);
        const wallNs = (performance.now() - w0) * 1e6;
        const cpu = process.cpuUsage(cpu0);
        const elu = performance.eventLoopUtilization(elu0);
        const sched1 = schedstat();
        const r = await answer;
        const { type: _t, ids: _i, samples, ...figures } = r;
        const m: Measured = {
          round, mode, endpoint, ...figures,
          gateway_cpu_us_per_req: (cpu.user + cpu.system) / Math.max(1, r.count),
          gateway_cpu_pct: ((cpu.user + cpu.system) * 1000 / wallNs) * 100,
          gateway_elu: elu.utilization,
          main_oncpu_pct: sched0 && sched1 ? ((sched1[0] - sched0[0]) / wallNs) * 100 : NaN,
          main_runq_pct: sched0 && sched1 ? ((sched1[1] - sched0[1]) / wallNs) * 100 : NaN,
        };
        measured.push(m);
        const expected = endpoint === 'submit' ? '202' : '200';
        const bad = Object.entries(r.statuses).filter(([code]) => code !== expected);
        if (bad.length || Object.keys(r.errors).length) {
          problems.push(`round ${round} ${endpoint} ${mode}: ${JSON.stringify({ statuses: r.statuses, errors: r.errors })}\n    ${samples.join('\n    ')}`);
        }
        if (endpoint === 'submit') accepted[mode] = (accepted[mode] ?? 0) + (r.statuses['202'] ?? 0);
        const headerOk = mode === 'on' ? r.with_ratelimit_header === r.count : r.with_ratelimit_header === 0;
        if (!headerOk) problems.push(`round ${round} ${endpoint} ${mode}: ${r.with_ratelimit_header}/${r.count} answers had X-RateLimit-Limit`);
        console.log(
          `  round ${round}  ${endpoint.padEnd(6)}  ${mode.padEnd(5)}  ${fmt(r.rps, 0).padStart(6)} req/s  ` +
            `p50 ${fmt(r.p50_ms, 2)} ms  p99 ${fmt(r.p99_ms, 2)} ms  ` +
            `non-2xx ${r.count - (r.statuses[expected] ?? 0)}  errors ${Object.values(r.errors).reduce((a, b) => a + b, 0)}  ` +
            `gateway ${fmt(m.gateway_cpu_us_per_req, 0)} us cpu/req, cpu ${fmt(m.gateway_cpu_pct, 0)} %, elu ${fmt(m.gateway_elu * 100, 0)} %, ` +
            `main thread waiting for a cpu ${fmt(m.main_runq_pct, 0)} %; load generator cpu ${fmt(r.cpu_pct, 0)} %`,
        );
      }
    }
  }

  // The quota counters must agree with what was accepted: every 202 is one running task (workers idle, or
  // jobs of an hour), and the "on" team's reservations equal 40 credits (4 s of sora-2 at $0.10/s) each.
  // Answers that completed outside the measured windows (warm-ups, seeding) count too, so compare with >=.
  const now = Date.now();
  for (const mode of modes) {
    const usageTeam = await gw.store.quotaUsage('team', teams[mode].id, now);
    const submitted = (accepted[mode] ?? 0) + SEED_TASKS;
    if (usageTeam.active_tasks < submitted || usageTeam.credits_day !== usageTeam.active_tasks * 40) {
      problems.push(`${mode}: counters ${JSON.stringify(usageTeam)} do not match ${submitted}+ accepted submits`);
    }
  }

  child.send({ type: 'exit' });
  const statements = workersMode === 'idle' ? await countStatements(url, teams, endpoints, modes, 50) : [];
  const micro = modes.includes('on') && modes.includes('off') ? await storeMicro(gw, teams, MICRO_BATCHES, MICRO_PER_BATCH) : [];
  await gw.stop();
  if (!values.keep) fs.rmSync(dataDir, { recursive: true, force: true });
  else console.log(`\ndata dir kept: ${dataDir}`);

  // Summary: the median over the rounds of each figure. "vs off" compares with the off phase of the same
  // round (run back to back), then takes the median of those ratios, which drifts less than a ratio of medians.
  const rows: string[][] = [
    ['endpoint', 'quotas', 'req/s', 'p50 ms', 'p99 ms', 'cpu us/req', 'vs off: req/s', 'p50', 'p99', 'cpu/req', 'non-2xx', 'errors'],
  ];
  const paired = (endpoint: Endpoint, mode: Mode, figure: (m: Measured) => number) => {
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const at = (md: Mode) => measured.find((m) => m.endpoint === endpoint && m.mode === md && m.round === round);
      const x = at(mode);
      const b = at('off');
      if (x && b) ratios.push(((figure(x) - figure(b)) / figure(b)) * 100);
    }
    return ratios;
  };
  const overheads: string[] = [];
  for (const endpoint of endpoints) {
    const expected = endpoint === 'submit' ? '202' : '200';
    for (const mode of modes) {
      const ms = measured.filter((m) => m.endpoint === endpoint && m.mode === mode);
      const vs = (figure: (m: Measured) => number) => (mode === 'off' || !modes.includes('off') ? '' : pct(median(paired(endpoint, mode, figure))));
      rows.push([
        endpoint,
        mode,
        fmt(median(ms.map((m) => m.rps)), 0),
        fmt(median(ms.map((m) => m.p50_ms)), 2),
        fmt(median(ms.map((m) => m.p99_ms)), 2),
        fmt(median(ms.map((m) => m.gateway_cpu_us_per_req)), 0),
        vs((m) => m.rps),
        vs((m) => m.p50_ms),
        vs((m) => m.p99_ms),
        vs((m) => m.gateway_cpu_us_per_req),
        String(ms.reduce((n, m) => n + m.count - (m.statuses[expected] ?? 0), 0)),
        String(ms.reduce((n, m) => n + Object.values(m.errors).reduce((x, y) => x + y, 0), 0)),
      ]);
    }
    if (modes.includes('on') && modes.includes('off')) {
      const lost = paired(endpoint, 'on', (m) => m.rps).map((x) => -x);
      const cpu = paired(endpoint, 'on', (m) => m.gateway_cpu_us_per_req);
      overheads.push(
        `  ${endpoint}: throughput ${fmt(median(lost))} % lower with quotas on (rounds: ${lost.map((x) => fmt(x)).join(', ')}); ` +
          `gateway CPU per request ${pct(median(cpu))} (rounds: ${cpu.map((x) => fmt(x)).join(', ')})`,
      );
    }
  }
  console.log(`
median of ${rounds} rounds (${seconds} s each, ${connections} connections):\n`);
  console.log(table(rows));
  if (overheads.length) console.log(`\nquota overhead, on vs off in the same round:\n${overheads.join('\n')}`);
  const runq = median(measured.map((m) => m.main_runq_pct));
  if (runq > 5) {
    console.log(
      `\nnote: the gateway's main thread waited for a CPU ${fmt(runq, 0)} % of the time (median): other processes compete ` +
        'for the cores, so req/s and latency are noisy; cpu us/req is the steadier figure',
    );
  }

  if (statements.length) {
    console.log('\nSQL statements per request (counted over 50 sequential requests of each kind):\n');
    const sum = (m: Map<string, number>, f: (sql: string) => boolean = () => true) => [...m].filter(([q]) => f(q)).reduce((a, [, c]) => a + c, 0);
    console.log(
      table([
        ['endpoint', 'quotas', 'statements', 'write transactions', 'of which quota (usage_counters, teams/api_keys limits, ledger)'],
        ...statements.map((s) => [
          s.endpoint,
          s.mode,
          fmt(sum(s.perRequest), 1),
          fmt(sum(s.perRequest, (q) => q.startsWith('BEGIN IMMEDIATE')), 1),
          fmt(sum(s.perRequest, (q) => /usage_counters|ledger|SELECT credits_per_day/.test(q)), 1),
        ]),
      ]),
    );
    for (const endpoint of endpoints) {
      const at = (mode: Mode) => statements.find((s) => s.endpoint === endpoint && s.mode === mode)?.perRequest;
      const off = at('off');
      const on = at('on');
      if (!off || !on) continue;
      const diff = [...new Set([...off.keys(), ...on.keys()])]
        .map((q) => [q, (on.get(q) ?? 0) - (off.get(q) ?? 0)] as const)
        .filter(([, d]) => Math.abs(d) > 0.01);
      console.log(`\n${endpoint}, what "on" runs that "off" does not (per request):`);
      console.log(diff.length ? diff.map(([q, d]) => `  ${d > 0 ? '+' : ''}${fmt(d, 1)}  ${oneLine(q)}`).join('\n') : '  nothing');
    }
  }
  if (micro.length) {
    const unit = schedstat() ? 'µs of main-thread CPU' : 'µs (wall clock)';
    console.log(`\nthe store calls alone (no HTTP), median of ${MICRO_BATCHES} alternating batches of ${MICRO_PER_BATCH}, ${unit} per call:\n`);
    console.log(table([['store call', 'off', 'on', 'on - off'], ...micro.map((r) => [r.op, fmt(r.us.off!, 1), fmt(r.us.on!, 1), fmt(r.us.on! - r.us.off!, 1)])]));
  }
  if (values.json) {
    fs.writeFileSync(values.json, JSON.stringify({ seconds, warmup, connections, rounds, workers: workersMode, limitsOn, measured, micro, statements: statements.map((s) => ({ ...s, perRequest: Object.fromEntries(s.perRequest) })) }, null, 2));
  }
  if (problems.length) {
    console.log(`\nPROBLEMS (${problems.length}):\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('\nevery answer was 202 (submit) or 200 (get); X-RateLimit headers and quota counters as expected');
  }
}

if (process.argv.includes('--load-child')) {
  void loadChild();
} else {
  main().catch((err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  });
}
