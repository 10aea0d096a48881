// bench/routing-sim: a simulated day of traffic across three providers with different prices and outage
// windows, on a compressed clock. The real gateway (real SQLite, real HTTP, real workers and breakers) routes
// between three fake upstreams over HTTP on 127.0.0.1; a scheduler switches the fakes' failure modes on and
// off to follow the outage schedule. At the end it compares the success rate and the cost with the oracle
// (the cheapest provider that was up when each task was submitted).
//
//   node --import tsx bench/routing-sim.ts [--day-seconds 120] [--rate 15] [--seed 1]
//
// See bench/README.md for what is measured and the latest figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/core/config';
import { createGateway, type Gateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { TERMINAL_STATUSES, type AttemptRecord, type TaskRecord } from '../src/store/types';
import { usdOf } from '../src/routing/quote';
import { startFakeOpenAI, type FakeJob, type FakeOpenAI } from '../test/support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from '../test/support/fake-tasks-api';
import { mp4Renderer } from '../test/support/mp4';
import { seededRandom } from '../test/support/seeded-random';

// ---------------------------------------------------------------------------------------------------------
// Settings

const HOUR_S = 3600;
const DAY_S = 24 * HOUR_S;
const MODEL = 'sora-2';
const VIDEO_SECONDS = 4;
const GATEWAY_KEY = 'routing-sim-key-0123456789';

/** The gateway's defaults, in real (uncompressed) time; the bench divides them by the compression factor. */
const DEFAULTS_MS = {
  cooldown: 30_000,
  max_cooldown: 10 * 60_000,
  window: 60_000,
  retry_backoff: 2_000,
  upstream_deadline: 30 * 60_000,
  wait_for_provider: 10 * 60_000,
};

interface ProviderSpec {
  id: string;
  kind: 'openai' | 'tasks-api';
  usd_per_second: number;
  /** Real ms a fake job takes (times the compression factor in simulated time). */
  job_ms: number;
  /** Outage windows in simulated hours [from, to). */
  outages: [number, number][];
}

/** The least upstream deadline: 4 times the longest fake job (350 ms) plus 10 polls of 50 ms. */
const DEADLINE_FLOOR_MS = 1900;

const DEFAULT_SCHEDULE = 'cheap=2-5,14-15.5;middle=9-11,15.5-16.5;dear=20-21';

const usage = `usage: node --import tsx bench/routing-sim.ts [options]
  --day-seconds N      real seconds for one simulated day (default 120)
  --rate N             tasks submitted per real second (default 15)
  --poll-ms N          workers.poll_interval_ms (default 50)
  --schedule S         outage windows in simulated hours (default "${DEFAULT_SCHEDULE}")
  --cooldown-ms N      routing.breaker.cooldown_ms (default 30 s / compression)
  --max-cooldown-ms N  routing.breaker.max_cooldown_ms (default 10 min / compression)
  --window-ms N        routing.breaker.window_ms (default 60 s / compression)
  --drain-seconds N    how long to wait for the last tasks after the day ends (default 60)
  --seed N             seed of the failure mix (default 1)
  --stall H=MS         freeze this whole process for MS real ms at simulated hour H (e.g. 18=3000), as a GC
                       pause or CPU starvation would; repeatable. Off by default
  --starve A-B=F       between simulated hours A and B, steal the share F (0-1) of this process's time
                       (busy loops of 50*F/(1-F) ms every 50 ms), as a starved CPU would. Off by default
  --json FILE          also write the figures as JSON`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      'day-seconds': { type: 'string', default: '120' },
      rate: { type: 'string', default: '15' },
      'poll-ms': { type: 'string', default: '50' },
      schedule: { type: 'string', default: DEFAULT_SCHEDULE },
      'cooldown-ms': { type: 'string' },
      'max-cooldown-ms': { type: 'string' },
      'window-ms': { type: 'string' },
      'drain-seconds': { type: 'string', default: '60' },
      seed: { type: 'string', default: '1' },
      stall: { type: 'string', multiple: true, default: [] },
      starve: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const num = (name: string, raw: string | undefined, min: number): number => {
    const n = Number(raw);
    if (raw === undefined || !Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got ${raw}`);
    return n;
  };
  const daySeconds = num('day-seconds', values['day-seconds'], 5);
  const compression = DAY_S / daySeconds;
  const scaled = (ms: number) => Math.max(1, Math.round(ms / compression));
  const optionalMs = (name: string, raw: string | undefined, fallback: number) => (raw === undefined ? fallback : Math.round(num(name, raw, 1)));
  return {
    daySeconds,
    compression,
    rate: num('rate', values.rate, 0.1),
    pollMs: Math.round(num('poll-ms', values['poll-ms'], 1)),
    schedule: parseSchedule(values.schedule!),
    breaker: {
      consecutive_failures: 5,
      error_ratio: 0.5,
      min_calls: 10,
      window_ms: optionalMs('window-ms', values['window-ms'], scaled(DEFAULTS_MS.window)),
      cooldown_ms: optionalMs('cooldown-ms', values['cooldown-ms'], scaled(DEFAULTS_MS.cooldown)),
      max_cooldown_ms: optionalMs('max-cooldown-ms', values['max-cooldown-ms'], scaled(DEFAULTS_MS.max_cooldown)),
    },
    retryBackoffMs: scaled(DEFAULTS_MS.retry_backoff),
    // Floored so that it stays well above a fake job (at most 350 ms) on very short days.
    upstreamDeadlineMs: Math.max(scaled(DEFAULTS_MS.upstream_deadline), DEADLINE_FLOOR_MS),
    upstreamDeadlineFloored: scaled(DEFAULTS_MS.upstream_deadline) < DEADLINE_FLOOR_MS,
    waitForProviderMs: scaled(DEFAULTS_MS.wait_for_provider),
    drainSeconds: num('drain-seconds', values['drain-seconds'], 1),
    seed: Math.round(num('seed', values.seed, 0)),
    starve: values.starve === undefined ? undefined : parseStarve(values.starve),
    stalls: (values.stall ?? []).map((text) => {
      const [h, ms] = text.split('=').map(Number);
      if (h === undefined || ms === undefined || !(h >= 0 && h < 24 && ms > 0)) throw new Error(`--stall: expected HOUR=MS, got ${text}`);
      return { hour: h, ms };
    }),
    json: values.json,
  };
}

type Options = ReturnType<typeof parseOptions>;

function parseStarve(text: string): { from: number; to: number; share: number } {
  const m = /^([\d.]+)-([\d.]+)=([\d.]+)$/.exec(text);
  const [from, to, share] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
  if (!(from >= 0 && to > from && to <= 24 && share > 0 && share < 1)) throw new Error(`--starve: expected FROM-TO=SHARE (hours, 0<SHARE<1), got ${text}`);
  return { from, to, share };
}

/** "cheap=2-5,14-15.5;middle=9-11" -> outage windows per provider id, in simulated hours. */
function parseSchedule(text: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const part of text.split(';').map((s) => s.trim()).filter(Boolean)) {
    const [id, windows = ''] = part.split('=');
    const list: [number, number][] = [];
    for (const w of windows.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [from, to] = w.split('-').map(Number);
      if (from === undefined || to === undefined || !(from >= 0 && to > from && to <= 24)) throw new Error(`--schedule: bad window '${w}' for ${id}`);
      list.push([from, to]);
    }
    out.set(id!.trim(), list);
  }
  return out;
}

function providerSpecs(schedule: Map<string, [number, number][]>): ProviderSpec[] {
  const specs: ProviderSpec[] = [
    { id: 'cheap', kind: 'tasks-api', usd_per_second: 0.1, job_ms: 300, outages: [] },
    { id: 'middle', kind: 'openai', usd_per_second: 0.12, job_ms: 250, outages: [] },
    { id: 'dear', kind: 'openai', usd_per_second: 0.15, job_ms: 350, outages: [] },
  ];
  for (const id of schedule.keys()) if (!specs.some((s) => s.id === id)) throw new Error(`--schedule: unknown provider '${id}' (cheap, middle, dear)`);
  for (const s of specs) s.outages = schedule.get(s.id) ?? [];
  // "Any one provider down": the bench's claim only holds when no two outages overlap.
  for (const a of specs) {
    for (const b of specs) {
      if (a === b) continue;
      for (const [af, at] of a.outages) {
        for (const [bf, bt] of b.outages) {
          if (af < bt && bf < at) throw new Error(`--schedule: ${a.id} ${af}-${at} overlaps ${b.id} ${bf}-${bt}; at most one provider may be down at a time`);
        }
      }
    }
  }
  return specs;
}

// ---------------------------------------------------------------------------------------------------------
// Fake upstreams and their outages

interface Upstream {
  spec: ProviderSpec;
  url: string;
  apiKey: string;
  /** Put the fake into outage mode; called again on every scheduler tick while down, to vary the failure. */
  down(rng: () => number): void;
  up(): void;
  /** Create (submit) requests the fake received. */
  creates(): number;
  /** Remember the jobs the fake holds now (the OpenAI fake forgets a job once it is deleted). */
  track(): void;
  /** Whether this upstream job had finished successfully by `atMs`; undefined when unknown. */
  finishedBy(upstreamId: string, atMs: number): boolean | undefined;
  close(): Promise<void>;
}

/**
 * During an outage: submits get a 500 or a connection reset (mixed at random, re-drawn on every tick),
 * in-flight jobs fail with the retryable `service_error` when polled, and result downloads get a 5xx.
 */
function openaiUpstream(spec: ProviderSpec, fake: FakeOpenAI): Upstream {
  const seen = new Map<string, FakeJob>();
  return {
    spec,
    url: fake.url,
    apiKey: fake.apiKey,
    down(rng) {
      fake.setMode(rng() < 0.5 ? 'error_500' : 'reset', { route: 'create' });
      fake.setMode({ kind: 'fail_job', code: 'service_error', message: 'simulated outage' }, { route: 'retrieve' });
      fake.setMode('error_500', { route: 'content' });
    },
    up: () => fake.resetModes(),
    creates: () => fake.requestsTo('create').length,
    track() {
      for (const [id, job] of fake.jobs) seen.set(id, job);
    },
    finishedBy(upstreamId, atMs) {
      const job = seen.get(upstreamId) ?? fake.jobs.get(upstreamId);
      return job && !job.error && job.created_at_ms + job.duration_ms <= atMs;
    },
    close: () => fake.close(),
  };
}

function tasksApiUpstream(spec: ProviderSpec, fake: FakeTasksApi): Upstream {
  return {
    spec,
    url: fake.url,
    apiKey: fake.apiKey,
    down(rng) {
      const r = rng();
      fake.setMode(r < 0.5 ? 'reset' : { kind: 'http_error', status: r < 0.75 ? 500 : 503 }, { route: 'create' });
      fake.setMode({ kind: 'fail_task', code: 'service_error', message: 'simulated outage' }, { route: 'task' });
      fake.setMode({ kind: 'http_error', status: 503 }, { route: 'file' });
    },
    up() {
      for (const route of ['create', 'task', 'file'] as const) fake.setMode('normal', { route });
    },
    creates: () => fake.requests.filter((r) => r.method === 'POST').length,
    track() {},
    finishedBy(upstreamId, atMs) {
      const task = fake.tasks.get(upstreamId);
      return task && !task.failed && task.created_ms + spec.job_ms <= atMs;
    },
    close: () => fake.close(),
  };
}


// ---------------------------------------------------------------------------------------------------------
// The run

interface Submitted {
  i: number;
  /** Real ms since the start of the day. */
  at_ms: number;
  sim_hour: number;
  /** Providers scheduled up at submission. */
  up: string[];
  oracle_provider: string;
  oracle_usd: number;
  id?: string;
  submit_error?: string;
}

interface BreakerEvent {
  provider: string;
  at_ms: number;
  state: string;
  reason: string | null;
}

/** A silent logger that keeps what the analysis needs: requeue reasons and any error the gateway logged. */
function countingLogger() {
  const requeues = new Map<string, number>();
  const errors: string[] = [];
  let warnings = 0;
  const log = createLogger('info', {
    write(line: string) {
      const { level, msg, time: _time, pid: _pid, hostname: _host, ...fields } = JSON.parse(line) as { level: string; msg: string } & Record<string, unknown>;
      if (level === 'info' && msg === 'task requeued') {
        const key = `${String(fields.provider)}: ${String(fields.code)}`;
        requeues.set(key, (requeues.get(key) ?? 0) + 1);
      }
      if (level === 'warn') warnings++;
      if (level === 'error') errors.push(`${msg} ${JSON.stringify(fields)}`);
    },
  });
  return { log, requeues, errors, warnings: () => warnings };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function main(): Promise<void> {
  const opts = parseOptions();
  const specs = providerSpecs(opts.schedule);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-routing-sim-'));
  // Undone in reverse order at the end, or when anything below throws.
  const cleanups: (() => Promise<unknown> | void)[] = [() => fs.rmSync(dataDir, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await simulate(opts, specs, dataDir, cleanups);
  } finally {
    await cleanup();
  }
}

async function simulate(opts: Options, specs: ProviderSpec[], dataDir: string, cleanups: (() => Promise<unknown> | void)[]): Promise<void> {
  const price = new Map(specs.map((s) => [s.id, s.usd_per_second * VIDEO_SECONDS]));
  const rng = seededRandom(opts.seed);
  process.stdout.write('starting the fake upstreams... ');
  // Real MP4s of each requested shape, rendered on first use: the gateway verifies every video it downloads.
  const mp4 = mp4Renderer();
  const upstreams: Upstream[] = [];
  for (const spec of specs) {
    const upstream =
      spec.kind === 'openai'
        ? openaiUpstream(spec, await startFakeOpenAI({ mp4, jobDurationMs: spec.job_ms, apiKey: `sk-fake-${spec.id}`, models: [MODEL] }))
        : tasksApiUpstream(spec, await startFakeTasksApi({ mp4, durationMs: spec.job_ms, apiKey: `fake-key-${spec.id}` }));
    upstreams.push(upstream);
    cleanups.push(() => upstream.close());
  }
  const env: NodeJS.ProcessEnv = Object.fromEntries(upstreams.map((u) => [`SIM_KEY_${u.spec.id.toUpperCase()}`, u.apiKey]));

  const config = parseConfig({
    data_dir: dataDir,
    log_level: 'silent',
    server: { host: '127.0.0.1', port: 0 },
    auth: { api_keys: [GATEWAY_KEY] },
    // This bench measures routing, not admission: lift the default team's 600 requests per minute.
    teams: { default_quotas: { requests_per_minute: null } },
    workers: {
      poll_interval_ms: opts.pollMs,
      lease_ms: 5000,
      retry_backoff_ms: opts.retryBackoffMs,
      upstream_timeout_ms: 5000,
      upstream_deadline_ms: opts.upstreamDeadlineMs,
    },
    providers: upstreams.map((u) => ({
      id: u.spec.id,
      kind: u.spec.kind,
      base_url: u.url,
      api_key_env: `SIM_KEY_${u.spec.id.toUpperCase()}`,
      timeout_ms: 5000,
      models: [{ model: MODEL, usd_per_second: { standard: u.spec.usd_per_second } }],
    })),
    routing: { wait_for_provider_ms: opts.waitForProviderMs, breaker: opts.breaker },
  });
  const logger = countingLogger();
  const gateway: Gateway = await createGateway(config, { log: logger.log, env });
  cleanups.push(() => gateway.stop());
  const gatewayUrl = await gateway.start();
  console.log(`done; gateway at ${gatewayUrl}`);

  printSettings(opts, specs, config.workers.batch_size, config.workers.max_attempts);
  const result = await runDay(opts, specs, upstreams, gateway, gatewayUrl, price, rng);
  const report = analyse(opts, specs, result, logger);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(report, null, 2) + '\n');
}

function isDown(spec: ProviderSpec, simHour: number): boolean {
  return spec.outages.some(([from, to]) => simHour >= from && simHour < to);
}

async function runDay(
  opts: Options,
  specs: ProviderSpec[],
  upstreams: Upstream[],
  gateway: Gateway,
  gatewayUrl: string,
  price: Map<string, number>,
  rng: () => number,
) {
  const dayMs = opts.daySeconds * 1000;
  const t0 = Date.now();
  const simHourAt = (realMs: number) => ((realMs / dayMs) * 24);
  const elapsed = () => Date.now() - t0;

  // The outage scheduler: every 20 ms, put each fake in or out of outage according to the schedule.
  const downNow = new Set<string>();
  const outageLog: { provider: string; at_ms: number; down: boolean }[] = [];
  const stallsLeft = [...opts.stalls].sort((a, b) => a.hour - b.hour);
  const scheduler = setInterval(() => {
    const hour = simHourAt(elapsed());
    while (stallsLeft.length && stallsLeft[0]!.hour <= hour) {
      const until = Date.now() + stallsLeft.shift()!.ms;
      while (Date.now() < until) {
        // a frozen process: nothing in it runs (the fakes' jobs still finish: their clock keeps going)
      }
    }
    for (const u of upstreams) {
      u.track();
      const down = hour < 24 && isDown(u.spec, hour);
      if (down) u.down(rng);
      if (down !== downNow.has(u.spec.id)) {
        if (down) downNow.add(u.spec.id);
        else {
          downNow.delete(u.spec.id);
          u.up();
        }
        outageLog.push({ provider: u.spec.id, at_ms: elapsed(), down });
        if (!process.stdout.isTTY) console.log(`  sim ${formatHour(hour)} (real ${(elapsed() / 1000).toFixed(1)} s): ${u.spec.id} ${down ? 'down' : 'up again'}`);
      }
    }
  }, 20);

  // Optional CPU starvation: busy loops that take the given share of this process's time.
  const starver = setInterval(() => {
    const s = opts.starve;
    const hour = simHourAt(elapsed());
    if (!s || hour < s.from || hour >= s.to) return;
    const until = Date.now() + (50 * s.share) / (1 - s.share);
    while (Date.now() < until) {
      // stolen time
    }
  }, 50);

  // The event loop of this process (gateway, fakes and load generator share it): stalls delay polls.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const stalls: { at_ms: number; ms: number }[] = [];
  let lastTick = Date.now();
  const stallWatch = setInterval(() => {
    const t = Date.now();
    if (t - lastTick > 50 + 250) stalls.push({ at_ms: t - t0, ms: t - lastTick - 50 });
    lastTick = t;
  }, 50);

  // The breakers, sampled every 5 ms (state changes only).
  const breakerEvents: BreakerEvent[] = [];
  const lastState = new Map<string, string>();
  const sampler = setInterval(() => {
    for (const s of specs) {
      const snap = gateway.router.health.snapshot(s.id, MODEL);
      if (lastState.get(s.id) !== snap.state) {
        lastState.set(s.id, snap.state);
        breakerEvents.push({ provider: s.id, at_ms: elapsed(), state: snap.state, reason: snap.reason });
      }
    }
  }, 5);

  // Progress line, once per simulated hour.
  const progress = setInterval(() => {
    if (!process.stdout.isTTY) return;
    const hour = Math.min(24, simHourAt(elapsed()));
    const down = [...downNow].join(',') || '-';
    process.stdout.write(`\r  simulated ${formatHour(hour)}  submitted ${submitted.length}  down: ${down.padEnd(12)}`);
  }, dayMs / 24);

  // The traffic: one task every 1/rate s, through the gateway's HTTP API.
  const submitted: Submitted[] = [];
  const pending: Promise<void>[] = [];
  const total = Math.floor(opts.daySeconds * opts.rate);
  console.log(`\nsimulating one day in ${opts.daySeconds} s: ${total} tasks at ${opts.rate}/s`);
  for (let i = 0; i < total; i++) {
    await sleep(t0 + (i * 1000) / opts.rate - Date.now());
    const at = elapsed();
    const hour = simHourAt(at);
    const up = specs.filter((s) => !isDown(s, hour)).map((s) => s.id);
    const oracle = up.reduce((best, id) => (price.get(id)! < price.get(best)! ? id : best), up[0]!);
    const record: Submitted = { i, at_ms: at, sim_hour: hour, up, oracle_provider: oracle, oracle_usd: price.get(oracle)! };
    submitted.push(record);
    pending.push(submit(gatewayUrl, i).then((r) => void Object.assign(record, r)));
  }
  await Promise.all(pending);
  const dayEndedMs = elapsed();
  await sleep(dayMs - dayEndedMs);
  clearInterval(progress);
  const clear = process.stdout.isTTY ? '\r' : '';
  process.stdout.write(`${clear}  simulated 24:00  submitted ${submitted.length}  day over after ${(elapsed() / 1000).toFixed(1)} s real${' '.repeat(10)}\n`);

  // Wait for every task to finish (the scheduler keeps running: the schedule ends with everyone up).
  const drainDeadline = Date.now() + opts.drainSeconds * 1000;
  const open = new Set(submitted.filter((s) => s.id).map((s) => s.id!));
  const tasks = new Map<string, TaskRecord>();
  while (open.size > 0 && Date.now() < drainDeadline) {
    for (const id of [...open]) {
      const t = await gateway.store.getTask(id);
      if (t && TERMINAL_STATUSES.includes(t.status)) {
        tasks.set(id, t);
        open.delete(id);
      }
    }
    if (open.size > 0) await sleep(100);
  }
  for (const id of open) {
    const t = await gateway.store.getTask(id);
    if (t) tasks.set(id, t);
  }
  const drainedMs = elapsed();
  clearInterval(scheduler);
  clearInterval(sampler);
  clearInterval(stallWatch);
  clearInterval(starver);
  loopDelay.disable();
  const loop = { p50_ms: loopDelay.percentile(50) / 1e6, p99_ms: loopDelay.percentile(99) / 1e6, max_ms: loopDelay.max / 1e6 };
  console.log(`  all tasks settled ${((drainedMs - dayMs) / 1000).toFixed(1)} s after the day ended${open.size ? ` (${open.size} still unfinished)` : ''}`);

  const attempts: AttemptRecord[] = [];
  const ids = [...tasks.keys()];
  for (let k = 0; k < ids.length; k += 500) attempts.push(...(await gateway.store.listAttempts(ids.slice(k, k + 500))));
  const creates = new Map(upstreams.map((u) => [u.spec.id, u.creates()]));
  // Abandoned attempts whose job had in fact finished upstream: paid for there, thrown away here.
  const byId = new Map(upstreams.map((u) => [u.spec.id, u]));
  const finishedAbandoned = attempts.filter(
    (a) => a.outcome === 'retried' && a.upstream_id !== null && a.ended_at_ms !== null && byId.get(a.provider_id)?.finishedBy(a.upstream_id, a.ended_at_ms) === true,
  );
  return { t0, dayMs, submitted, tasks, attempts, breakerEvents, outageLog, creates, unfinished: open.size, loop, stalls, finishedAbandoned };
}

async function submit(gatewayUrl: string, i: number): Promise<{ id?: string; submit_error?: string }> {
  try {
    const res = await fetch(`${gatewayUrl}/v1/videos/generations`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${GATEWAY_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: `routing-sim task ${i}`, aspect_ratio: '16:9', duration: VIDEO_SECONDS }),
    });
    const body = (await res.json()) as { id?: string; error?: { code?: string } };
    if (res.status !== 202 || !body.id) return { submit_error: `http_${res.status}_${body.error?.code ?? 'unknown'}` };
    return { id: body.id };
  } catch (err) {
    return { submit_error: `client_error: ${(err as Error).message}` };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Analysis and report

function formatHour(hour: number): string {
  const m = Math.round(hour * 60);
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

function percentile(sorted: number[], p: number): number | 'n/a' {
  if (sorted.length === 0) return 'n/a';
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

const pct = (n: number, d: number) => (d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(2)} %`);
const usd = (n: number) => `$${n.toFixed(2)}`;

function printSettings(opts: Options, specs: ProviderSpec[], batchSize: number, maxAttempts: number) {
  const simMin = (realMs: number) => `${((realMs * opts.compression) / 60_000).toFixed(1)} sim min`;
  const lines = [
    '',
    'settings',
    `  day                 ${opts.daySeconds} s real = 24 h simulated (compression x${opts.compression.toFixed(0)}; 1 sim hour = ${(opts.daySeconds / 24).toFixed(2)} s real)`,
    `  traffic             ${opts.rate} tasks/s real, ${MODEL} 1280x720 ${VIDEO_SECONDS} s; seed ${opts.seed}`,
    ...specs.map(
      (s) =>
        `  provider ${s.id.padEnd(10)} ${s.kind.padEnd(9)} $${s.usd_per_second.toFixed(2)}/s ($${(s.usd_per_second * VIDEO_SECONDS).toFixed(2)}/task), job ${s.job_ms} ms (${simMin(s.job_ms)}), down ${s.outages.map(([a, b]) => `${formatHour(a)}-${formatHour(b)}`).join(', ') || 'never'}`,
    ),
    `  outage behaviour    submit: 500/503 or connection reset (mixed); in-flight jobs: failed 'service_error' (retryable); downloads: 5xx`,
    `  breaker             consecutive_failures ${opts.breaker.consecutive_failures}, error_ratio ${opts.breaker.error_ratio}, min_calls ${opts.breaker.min_calls}, ` +
      `window_ms ${opts.breaker.window_ms} (${simMin(opts.breaker.window_ms)}), cooldown_ms ${opts.breaker.cooldown_ms} (${simMin(opts.breaker.cooldown_ms)}), ` +
      `max_cooldown_ms ${opts.breaker.max_cooldown_ms} (${simMin(opts.breaker.max_cooldown_ms)})`,
    `  workers             poll_interval_ms ${opts.pollMs} (${simMin(opts.pollMs)}), batch_size ${batchSize}, max_attempts ${maxAttempts}, retry_backoff_ms ${opts.retryBackoffMs}, ` +
      `upstream_deadline_ms ${opts.upstreamDeadlineMs} (${simMin(opts.upstreamDeadlineMs)}${opts.upstreamDeadlineFloored ? `, floored at ${DEADLINE_FLOOR_MS}` : ''}), upstream_timeout_ms 5000 (not scaled)`,
    ...(opts.starve ? [`  injected starvation ${(opts.starve.share * 100).toFixed(0)} % of the process's time taken ${formatHour(opts.starve.from)}-${formatHour(opts.starve.to)}`] : []),
    ...(opts.stalls.length ? [`  injected stalls     ${opts.stalls.map((x) => `${x.ms} ms at ${formatHour(x.hour)}`).join(', ')} (the whole process freezes)`] : []),
    `  routing             wait_for_provider_ms ${opts.waitForProviderMs} (${simMin(opts.waitForProviderMs)})`,
    `  host                ${os.cpus().length} CPUs, Node ${process.version}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (1/5/15 min) at the start`,
    `  scaling             breaker window/cool-downs, retry backoff, upstream deadline and wait-for-provider are the gateway defaults divided by the compression`,
  ];
  console.log(lines.join('\n'));
}

type RunResult = Awaited<ReturnType<typeof runDay>>;

function analyse(opts: Options, specs: ProviderSpec[], run: RunResult, logger: ReturnType<typeof countingLogger>) {
  const { submitted, tasks, attempts, breakerEvents, dayMs } = run;
  const hourToMs = (h: number) => (h / 24) * dayMs;
  const byTask = new Map<string, AttemptRecord[]>();
  for (const a of attempts) {
    const list = byTask.get(a.task_id) ?? [];
    list.push(a);
    byTask.set(a.task_id, list);
  }

  // Per task: outcome, cost, oracle.
  const failedByCode = new Map<string, number>();
  const servedBy = new Map<string, number>(specs.map((s) => [s.id, 0]));
  const oracleBy = new Map<string, number>(specs.map((s) => [s.id, 0]));
  let succeeded = 0;
  let actualUsd = 0;
  let oracleUsd = 0;
  let oracleUsdAll = 0;
  let duringOutage = 0;
  let duringOutageOk = 0;
  const perOutageProvider = new Map<string, { n: number; ok: number }>();
  const latencies: number[] = [];
  const latenciesOutage: number[] = [];
  const excess = { failed_on_oracle: { n: 0, usd: 0 }, routed_past_oracle: { n: 0, usd: 0 }, below_oracle: { n: 0, usd: 0 } };
  const attemptsHistogram = new Map<number, number>();
  const routedPastByProvider = new Map<string, number>();

  for (const s of submitted) {
    oracleUsdAll += s.oracle_usd;
    const someoneDown = s.up.length < specs.length;
    const downId = specs.find((p) => !s.up.includes(p.id))?.id;
    if (someoneDown) duringOutage++;
    const t = s.id ? tasks.get(s.id) : undefined;
    const list = s.id ? (byTask.get(s.id) ?? []) : [];
    attemptsHistogram.set(list.length, (attemptsHistogram.get(list.length) ?? 0) + 1);
    const ok = t?.status === 'completed';
    if (downId) {
      const e = perOutageProvider.get(downId) ?? { n: 0, ok: 0 };
      e.n++;
      if (ok) e.ok++;
      perOutageProvider.set(downId, e);
    }
    oracleBy.set(s.oracle_provider, oracleBy.get(s.oracle_provider)! + 1);
    if (!ok) {
      const code = s.submit_error ?? (t ? (t.status === 'failed' ? (t.error_code ?? 'unknown') : `unfinished_${t.status}`) : 'unknown_task');
      failedByCode.set(code, (failedByCode.get(code) ?? 0) + 1);
      continue;
    }
    succeeded++;
    if (someoneDown) duringOutageOk++;
    const done = list.find((a) => a.outcome === 'completed');
    if (!done) throw new Error(`task ${s.id} completed without a completed attempt`);
    servedBy.set(done.provider_id, (servedBy.get(done.provider_id) ?? 0) + 1);
    actualUsd += usdOf(done.micro_usd);
    oracleUsd += s.oracle_usd;
    const diff = usdOf(done.micro_usd) - s.oracle_usd;
    if (diff > 1e-9) {
      const bucket = list[0]!.provider_id === s.oracle_provider ? excess.failed_on_oracle : excess.routed_past_oracle;
      bucket.n++;
      bucket.usd += diff;
      if (list[0]!.provider_id !== s.oracle_provider) routedPastByProvider.set(s.oracle_provider, (routedPastByProvider.get(s.oracle_provider) ?? 0) + 1);
    } else if (diff < -1e-9) {
      excess.below_oracle.n++;
      excess.below_oracle.usd += diff;
    }
    const ms = t!.completed_at_ms! - t!.created_at_ms;
    latencies.push(ms);
    if (someoneDown) latenciesOutage.push(ms);
  }
  latencies.sort((a, b) => a - b);
  latenciesOutage.sort((a, b) => a - b);

  const abandoned = attempts.filter((a) => a.outcome === 'retried');
  const abandonedWithJob = abandoned.filter((a) => a.upstream_id !== null);
  const totalCreates = [...run.creates.values()].reduce((a, b) => a + b, 0);
  const tasksN = submitted.length;
  const diffPct = oracleUsd === 0 ? 0 : ((actualUsd - oracleUsd) / oracleUsd) * 100;
  const wastedUsd = run.finishedAbandoned.reduce((a, b) => a + usdOf(b.micro_usd), 0);
  const diffWithWastePct = oracleUsd === 0 ? 0 : ((actualUsd + wastedUsd - oracleUsd) / oracleUsd) * 100;
  const successAll = tasksN ? succeeded / tasksN : 0;
  const successOutage = duringOutage ? duringOutageOk / duringOutage : 1;

  // Per outage window: detection (breaker opened), probes while down, recovery (breaker closed again).
  const outageRows: string[] = [];
  for (const s of specs) {
    for (const [from, to] of s.outages) {
      const start = hourToMs(from);
      const end = hourToMs(to);
      const ev = breakerEvents.filter((e) => e.provider === s.id);
      const opened = ev.find((e) => e.state === 'open' && e.at_ms >= start && e.at_ms < end);
      const probes = ev.filter((e) => e.state === 'half_open' && e.at_ms >= start && e.at_ms < end).length;
      const stateAtEnd = [...ev].reverse().find((e) => e.at_ms <= end)?.state ?? 'closed';
      const closed = ev.find((e) => e.state === 'closed' && e.at_ms >= end);
      const failedAttempts = attempts.filter((a) => a.provider_id === s.id && a.outcome === 'retried' && a.ended_at_ms !== null && a.ended_at_ms - run.t0 >= start && a.ended_at_ms - run.t0 < end + 1000).length;
      const firstBack = attempts
        .filter((a) => a.provider_id === s.id && a.started_at_ms - run.t0 >= end && a.upstream_id !== null)
        .reduce<number | undefined>((m, a) => (m === undefined || a.started_at_ms < m ? a.started_at_ms : m), undefined);
      const detect = opened ? `breaker open after ${(opened.at_ms - start).toFixed(0)} ms` : 'breaker never opened (no traffic)';
      const recover =
        stateAtEnd === 'closed'
          ? 'closed at recovery'
          : closed
            ? `closed ${(closed.at_ms - end).toFixed(0)} ms after recovery (${((closed.at_ms - end) / dayMs * 24 * 60).toFixed(1)} sim min)`
            : 'never closed again';
      const back = firstBack !== undefined && stateAtEnd !== 'closed' ? `, first new job ${(firstBack - run.t0 - end).toFixed(0)} ms after recovery` : '';
      outageRows.push(
        `  ${s.id.padEnd(7)} ${formatHour(from)}-${formatHour(to)}: ${detect}, ${probes} probes while down, ${failedAttempts} attempts abandoned, ${recover}${back}`,
      );
    }
  }
  // Breaker openings outside any outage (false alarms).
  const falseOpens = breakerEvents.filter((e) => {
    if (e.state !== 'open') return false;
    const spec = specs.find((s) => s.id === e.provider)!;
    return !spec.outages.some(([f, t]) => e.at_ms >= hourToMs(f) && e.at_ms < hourToMs(t) + 200);
  });

  const share = (m: Map<string, number>, n: number) => specs.map((s) => `${s.id} ${pct(m.get(s.id) ?? 0, n)}`).join(', ');
  const attemptsMean = tasksN ? attempts.length / tasksN : 0;
  const pass = { success: successAll >= 0.999 && successOutage >= 0.999, cost: Math.abs(diffPct) <= 1 };

  const lines = [
    '',
    'results',
    `  tasks                ${tasksN}`,
    `  succeeded            ${succeeded} (${pct(succeeded, tasksN)})`,
    `  during outages       ${duringOutageOk} of ${duringOutage} (${pct(duringOutageOk, duringOutage)})` +
      ` [${specs.filter((s) => perOutageProvider.has(s.id)).map((s) => `${s.id} down: ${perOutageProvider.get(s.id)!.ok}/${perOutageProvider.get(s.id)!.n}`).join(', ')}]`,
    `  failed by code       ${failedByCode.size ? [...failedByCode].map(([c, n]) => `${c} ${n}`).join(', ') : 'none'}`,
    `  actual cost          ${usd(actualUsd)}  (succeeded tasks, price of the attempt that completed)`,
    `  oracle cost          ${usd(oracleUsd)}  (same tasks, cheapest provider up at submission; all tasks: ${usd(oracleUsdAll)})`,
    `  difference           ${diffPct >= 0 ? '+' : ''}${diffPct.toFixed(3)} %`,
    `    above oracle       ${excess.failed_on_oracle.n} tasks failed on the oracle's provider and finished elsewhere (+${usd(excess.failed_on_oracle.usd)}); ` +
      `${excess.routed_past_oracle.n} tasks routed past an up, cheaper provider (+${usd(excess.routed_past_oracle.usd)}${routedPastByProvider.size ? `; past ${[...routedPastByProvider].map(([p, n]) => `${p} ${n}`).join(', ')}` : ''})`,
    `    below oracle       ${excess.below_oracle.n} tasks (${usd(excess.below_oracle.usd)})`,
    `  served by            ${share(servedBy, succeeded)}`,
    `  oracle would use     ${share(oracleBy, tasksN)}`,
    `  attempts per task    mean ${attemptsMean.toFixed(3)}; ${[...attemptsHistogram].sort((a, b) => a[0] - b[0]).map(([k, n]) => `${k}: ${n}`).join(', ')}`,
    `  upstream submits     ${totalCreates} create requests received by the fakes (${tasksN ? (totalCreates / tasksN).toFixed(3) : 'n/a'} per task; ${[...run.creates].map(([p, n]) => `${p} ${n}`).join(', ')}); ` +
      `${totalCreates - attempts.length} more than attempts (${specs.map((s) => `${s.id} ${(run.creates.get(s.id) ?? 0) - attempts.filter((a) => a.provider_id === s.id).length}`).join(', ')}): same-key re-sends after a lost answer`,
    `  abandoned attempts   ${abandoned.length} (${abandonedWithJob.length} after the upstream job was created, worth ${usd(abandonedWithJob.reduce((a, b) => a + usdOf(b.micro_usd), 0))} if billed)`,
    `  finished, abandoned  ${run.finishedAbandoned.length} abandoned attempts had a job that had already finished upstream (${[...new Set(run.finishedAbandoned.map((a) => a.error_code))].join(', ') || '-'}): ` +
      `${usd(wastedUsd)} paid for videos thrown away; actual cost including them ${usd(actualUsd + wastedUsd)} (${diffWithWastePct >= 0 ? '+' : ''}${diffWithWastePct.toFixed(3)} % vs oracle)`,
    `  requeue reasons      ${logger.requeues.size ? [...logger.requeues].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} x${n}`).join('; ') : 'none'}`,
    `  time to completion   p50 ${percentile(latencies, 50)} ms, p95 ${percentile(latencies, 95)} ms, max ${latencies.at(-1) ?? 'n/a'} ms (real); during outages p50 ${percentile(latenciesOutage, 50)} ms, p95 ${percentile(latenciesOutage, 95)} ms`,
    `  host load           ${os.cpus().length} CPUs; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (1/5/15 min) at the end of the run; ` +
      `event-loop delay p50 ${run.loop.p50_ms.toFixed(0)} ms, p99 ${run.loop.p99_ms.toFixed(0)} ms, max ${run.loop.max_ms.toFixed(0)} ms; ` +
      `${run.stalls.length} stalls > 250 ms${run.stalls.length ? ` (longest ${Math.max(...run.stalls.map((x) => x.ms))} ms; at sim ${run.stalls.slice(0, 8).map((x) => formatHour((x.at_ms / dayMs) * 24)).join(', ')}${run.stalls.length > 8 ? ', ...' : ''})` : ''}`,
    `  outages`,
    ...outageRows,
    `  false breaker opens  ${falseOpens.length ? falseOpens.map((e) => `${e.provider} at ${formatHour((e.at_ms / dayMs) * 24)} (${e.reason})`).join('; ') : 'none'}`,
    `  gateway errors       ${logger.errors.length ? `${logger.errors.length}, first: ${logger.errors.slice(0, 3).join(' | ')}` : 'none'}`,
    '',
    `target: >= 99.9 % success (overall and during outages): ${pass.success ? 'PASS' : 'FAIL'} (${(successAll * 100).toFixed(2)} % / ${(successOutage * 100).toFixed(2)} %)`,
    `target: cost within 1 % of the oracle:                  ${pass.cost ? 'PASS' : 'FAIL'} (${diffPct >= 0 ? '+' : ''}${diffPct.toFixed(3)} %)`,
    `overall: ${pass.success && pass.cost ? 'PASS' : 'FAIL'}`,
  ];
  console.log(lines.join('\n'));

  return {
    settings: { ...opts, schedule: Object.fromEntries(opts.schedule), providers: specs },
    tasks: tasksN,
    succeeded,
    success_rate: successAll,
    during_outages: { tasks: duringOutage, succeeded: duringOutageOk, success_rate: successOutage },
    failed_by_code: Object.fromEntries(failedByCode),
    actual_usd: actualUsd,
    oracle_usd: oracleUsd,
    difference_pct: diffPct,
    excess,
    served_by: Object.fromEntries(servedBy),
    oracle_by: Object.fromEntries(oracleBy),
    attempts_mean: attemptsMean,
    upstream_creates: Object.fromEntries(run.creates),
    attempts_by_provider: Object.fromEntries(specs.map((s) => [s.id, attempts.filter((a) => a.provider_id === s.id).length])),
    abandoned_attempts: abandoned.length,
    abandoned_with_job: abandonedWithJob.length,
    requeue_reasons: Object.fromEntries(logger.requeues),
    latency_ms: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), max: latencies.at(-1) ?? null },
    breaker_events: breakerEvents.map((e) => ({ ...e, sim: formatHour((e.at_ms / dayMs) * 24) })),
    gateway_errors: logger.errors,
    finished_abandoned: { attempts: run.finishedAbandoned.length, usd: wastedUsd, difference_pct_including: diffWithWastePct },
    event_loop: run.loop,
    stalls: run.stalls,
    attempts: run.attempts.map((a) => ({ ...a, started_rel_ms: a.started_at_ms - run.t0, ended_rel_ms: a.ended_at_ms === null ? null : a.ended_at_ms - run.t0 })),
    submitted: run.submitted,
    pass,
  };
}

main().catch((err: Error) => {
  console.error(`\nrouting-sim broke: ${err.stack ?? err.message}`);
  process.exit(1);
});
