// bench/routing-sim-faults: provider faults at the gateway's DEFAULT breaker, health-check, worker and routing
// settings, on the real clock (routing-sim.ts compresses a day and scales the settings; this one does not).
// Three fake upstreams over real HTTP on 127.0.0.1 (cheapest OpenAI shape, middle task-API shape, dearest OpenAI
// shape), each case a fresh gateway (real SQLite, workers, breakers, active checks) and fresh fakes:
//
//   fail-jobs    cheap accepts every job and fails it, the whole run
//   late-create  cheap's create answers arrive after the 5 s timeout, but each still creates a job
//   hang         cheap's create hangs (no answer at all) for 20 s, then answers again
//   retry-after  cheap answers 429 with Retry-After: 2 for 10 s, then answers again
//   mixed        cheap down 10-40 s and 60-70 s, middle down 20-30 s and 55-75 s (every route answers 500)
//
// Per case: success rate (overall, and of tasks submitted while a provider was down), cost against the oracle (the
// cheapest provider up at each submission), upstream jobs created per task and orphaned ones (created, not failed
// upstream, never downloaded nor cancelled), and the time from each recovery to the provider's next task (for the
// recoveries after which it is the cheapest provider up).
//
//   node --import tsx bench/routing-sim-faults.ts [--rate 3] [--cases mixed,hang] [--json FILE]
//
// See bench/README.md for the figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/core/config';
import { createGateway } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { TERMINAL_STATUSES } from '../src/store/types';
import { startFakeOpenAI, type FakeOpenAI } from '../test/support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from '../test/support/fake-tasks-api';
import { mp4Renderer, type Mp4Source } from '../test/support/mp4';

const MODEL = 'sora-2';
const VIDEO_S = 4;
const KEY = 'routing-faults-key-0123456789';
/** Provider timeout: the only non-default setting besides the providers themselves (the default is 30 s). */
const PROVIDER_TIMEOUT_MS = 5000;

type Id = 'cheap' | 'middle' | 'dear';
const PRICE: Record<Id, number> = { cheap: 0.1, middle: 0.12, dear: 0.15 };
/** Real job durations, unlike the unit tests' 150 ms. */
const JOB_MS: Record<Id, number> = { cheap: 3000, middle: 2500, dear: 3500 };

interface Fakes {
  cheap: FakeOpenAI;
  middle: FakeTasksApi;
  dear: FakeOpenAI;
}

interface Case {
  name: string;
  /** Seconds of submissions. */
  seconds: number;
  /** Per provider, the windows [from, to) in seconds in which it is down (for the oracle and recovery times). */
  down: Partial<Record<Id, [number, number][]>>;
  /** Puts the fakes in and out of their faults at second `t` (called every 100 ms). */
  drive(f: Fakes, t: number, isDown: (id: Id) => boolean): void;
}

const outage = (on: (f: Fakes, id: Id) => void, off: (f: Fakes, id: Id) => void) => {
  const state = new Map<Id, boolean>();
  return (f: Fakes, _t: number, isDown: (id: Id) => boolean) => {
    for (const id of ['cheap', 'middle', 'dear'] as const) {
      if (state.get(id) === isDown(id) || (!state.has(id) && !isDown(id))) continue; // up from the start: untouched
      state.set(id, isDown(id));
      (isDown(id) ? on : off)(f, id);
    }
  };
};

/** Every route of the fake answers 500 (its whole API is down), or answers normally. */
const down500 = outage(
  (f, id) => (id === 'middle' ? f.middle.setMode({ kind: 'http_error', status: 500 }) : f[id].setMode('error_500')),
  (f, id) => (id === 'middle' ? f.middle.setMode('normal') : f[id].resetModes()),
);

const CASES: Case[] = [
  {
    name: 'fail-jobs',
    seconds: 40,
    down: { cheap: [[0, Infinity]] },
    drive: outage((f) => f.cheap.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve' }), () => undefined),
  },
  {
    name: 'late-create',
    seconds: 40,
    down: { cheap: [[0, 20]] },
    drive: outage((f) => f.cheap.setMode({ kind: 'late_answer', delayMs: PROVIDER_TIMEOUT_MS + 1000 }, { route: 'create' }), (f) => f.cheap.resetModes()),
  },
  {
    name: 'hang',
    seconds: 40,
    down: { cheap: [[0, 20]] },
    drive: outage((f) => f.cheap.setMode('hang', { route: 'create' }), (f) => f.cheap.resetModes()),
  },
  {
    name: 'retry-after',
    seconds: 30,
    down: { cheap: [[5, 15]] },
    drive: outage((f) => f.cheap.setMode({ kind: 'rate_limited', retryAfterS: 2 }), (f) => f.cheap.resetModes()),
  },
  {
    name: 'mixed',
    seconds: 90,
    down: { cheap: [[10, 40], [60, 70]], middle: [[20, 30], [55, 75]] },
    drive: down500,
  },
];

function options() {
  const { values } = parseArgs({
    options: { rate: { type: 'string', default: '3' }, cases: { type: 'string' }, json: { type: 'string' }, 'drain-seconds': { type: 'string', default: '90' } },
  });
  const names = values.cases?.split(',') ?? CASES.map((c) => c.name);
  for (const n of names) if (!CASES.some((c) => c.name === n)) throw new Error(`unknown case '${n}'`);
  return { rate: Number(values.rate), cases: CASES.filter((c) => names.includes(c.name)), json: values.json, drainMs: Number(values['drain-seconds']) * 1000 };
}

async function runCase(c: Case, rate: number, drainMs: number, mp4: Mp4Source) {
  const fakes: Fakes = {
    cheap: await startFakeOpenAI({ mp4, jobDurationMs: JOB_MS.cheap }),
    middle: await startFakeTasksApi({ mp4, durationMs: JOB_MS.middle }),
    dear: await startFakeOpenAI({ mp4, jobDurationMs: JOB_MS.dear }),
  };
  // Every job the OpenAI-shaped fakes ever create (their map forgets deleted ones).
  const created: Record<'cheap' | 'dear', Map<string, { failed: () => boolean }>> = { cheap: new Map(), dear: new Map() };
  for (const id of ['cheap', 'dear'] as const) {
    const jobs = fakes[id].jobs;
    const set = jobs.set.bind(jobs);
    jobs.set = (key, job) => (created[id].set(key, { failed: () => job.error !== undefined }), set(key, job));
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vidgate-bench-faults-'));
  const config = parseConfig({
    data_dir: dataDir,
    log_level: 'silent',
    server: { host: '127.0.0.1', port: 0 },
    auth: { api_keys: [KEY] },
    teams: { default_quotas: { requests_per_minute: null } },
    cache: { enabled: false },
    providers: (['cheap', 'middle', 'dear'] as const).map((id) => ({
      id,
      kind: id === 'middle' ? 'tasks-api' : 'openai',
      base_url: fakes[id].url,
      api_key_env: `BENCH_KEY_${id.toUpperCase()}`,
      timeout_ms: PROVIDER_TIMEOUT_MS,
      models: [{ model: MODEL, usd_per_second: { standard: PRICE[id] } }],
    })),
  });
  const env = { BENCH_KEY_CHEAP: fakes.cheap.apiKey, BENCH_KEY_MIDDLE: fakes.middle.apiKey, BENCH_KEY_DEAR: fakes.dear.apiKey };
  const gateway = await createGateway(config, { log: createLogger('silent'), env });
  const url = await gateway.start();

  const t0 = Date.now();
  const sec = () => (Date.now() - t0) / 1000;
  const isDownAt = (id: Id, t: number) => (c.down[id] ?? []).some(([a, b]) => t >= a && t < b);
  const driver = setInterval(() => c.drive(fakes, sec(), (id) => isDownAt(id, sec())), 100);
  c.drive(fakes, 0, (id) => isDownAt(id, 0));

  const submitted: { id: string; at_s: number; oracle: Id }[] = [];
  const posts: Promise<void>[] = [];
  const total = Math.round(c.seconds * rate);
  for (let i = 0; i < total; i++) {
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (i * 1000) / rate - Date.now())));
    const at_s = sec();
    const oracle = (['cheap', 'middle', 'dear'] as const).find((id) => !isDownAt(id, at_s)) ?? 'dear';
    posts.push(
      fetch(`${url}/v1/videos/generations`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: `task ${i}`, aspect_ratio: '16:9', duration: VIDEO_S }),
      }).then(async (res) => {
        if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
        submitted.push({ id: ((await res.json()) as { id: string }).id, at_s, oracle });
      }),
    );
  }
  await Promise.all(posts);
  const drainUntil = Date.now() + drainMs;
  const ids = submitted.map((s) => s.id);
  const read = async () => new Map((await Promise.all(ids.map((id) => gateway.store.getTask(id)))).map((t) => [t!.id, t!]));
  while (Date.now() < drainUntil) {
    if ([...(await read()).values()].every((t) => TERMINAL_STATUSES.includes(t.status))) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  clearInterval(driver);
  await new Promise((r) => setTimeout(r, 1500)); // let abandoned jobs' cancels land
  const tasks = await read();
  const attempts = await gateway.store.listAttempts(ids);
  await gateway.stop();
  await Promise.all([fakes.cheap.close(), fakes.middle.close(), fakes.dear.close()]);
  fs.rmSync(dataDir, { recursive: true, force: true });

  // Success, cost.
  const outageTask = (s: { at_s: number }) => (['cheap', 'middle', 'dear'] as const).some((id) => isDownAt(id, s.at_s));
  const ok = submitted.filter((s) => tasks.get(s.id)?.status === 'completed');
  const okDuring = ok.filter(outageTask);
  const paid = ok.reduce((sum, s) => sum + PRICE[tasks.get(s.id)!.provider_id as Id] * VIDEO_S, 0);
  const oracle = ok.reduce((sum, s) => sum + PRICE[s.oracle] * VIDEO_S, 0);
  const failures = new Map<string, number>();
  for (const s of submitted) {
    const t = tasks.get(s.id);
    if (t?.status !== 'completed') failures.set(t?.error_code ?? t?.status ?? 'missing', (failures.get(t?.error_code ?? t?.status ?? 'missing') ?? 0) + 1);
  }

  // Upstream jobs: created, and orphaned (created, not failed upstream, never downloaded nor cancelled).
  const fetched = (f: FakeOpenAI, route: 'content' | 'delete') => new Set(f.requestsTo(route).map((q) => decodeURIComponent(q.path.split('/')[3]!)));
  let jobs = 0;
  let orphaned = 0;
  for (const id of ['cheap', 'dear'] as const) {
    const [content, deleted] = [fetched(fakes[id], 'content'), fetched(fakes[id], 'delete')];
    jobs += created[id].size;
    for (const [jobId, job] of created[id]) if (!job.failed() && !content.has(jobId) && !deleted.has(jobId)) orphaned++;
  }
  const files = new Set(fakes.middle.requests.filter((q) => q.path.startsWith('/files/')).map((q) => q.path.slice('/files/'.length, -'.mp4'.length)));
  jobs += fakes.middle.tasks.size;
  for (const [taskId, t] of fakes.middle.tasks) if (!t.failed && !files.has(taskId)) orphaned++;

  // Recovery: from each outage's end to the provider's next attempt, where it is then the cheapest provider up.
  const recoveries: { provider: Id; at_s: number; first_task_after_s: number | null }[] = [];
  for (const [id, windows] of Object.entries(c.down) as [Id, [number, number][]][]) {
    for (const [, end] of windows) {
      if (!Number.isFinite(end) || end >= c.seconds) continue;
      if ((['cheap', 'middle', 'dear'] as const).find((p) => !isDownAt(p, end)) !== id) continue;
      const first = attempts.filter((a) => a.provider_id === id && (a.started_at_ms - t0) / 1000 >= end).sort((a, b) => a.started_at_ms - b.started_at_ms)[0];
      recoveries.push({ provider: id, at_s: end, first_task_after_s: first ? (first.started_at_ms - t0) / 1000 - end : null });
    }
  }
  const latencies = ok.map((s) => (tasks.get(s.id)!.completed_at_ms! - tasks.get(s.id)!.created_at_ms) / 1000).sort((a, b) => a - b);
  return {
    case: c.name,
    tasks: submitted.length,
    success_rate: ok.length / submitted.length,
    success_rate_during_outage: okDuring.length / Math.max(1, submitted.filter(outageTask).length),
    failures: Object.fromEntries(failures),
    cost_vs_oracle: paid / oracle,
    jobs_per_task: jobs / submitted.length,
    orphaned_jobs: orphaned,
    /** Tasks whose first attempt went to a provider that was down when they were submitted. */
    first_attempt_on_down: submitted.filter((s) => {
      const first = attempts.find((a) => a.task_id === s.id && a.n === 1)?.provider_id as Id | undefined;
      return first !== undefined && isDownAt(first, s.at_s);
    }).length,
    recoveries,
    p50_s: latencies[Math.floor(latencies.length / 2)] ?? null,
    max_s: latencies.at(-1) ?? null,
  };
}

async function main() {
  const opts = options();
  // Real MP4s of each requested shape: every delivered video is verified.
  const mp4 = mp4Renderer();
  console.log(`routing-sim-faults: default breaker, health-check, worker and routing settings; provider timeout ${PROVIDER_TIMEOUT_MS} ms; ${opts.rate} tasks/s`);
  console.log(`jobs take ${JOB_MS.cheap}/${JOB_MS.middle}/${JOB_MS.dear} ms on cheap/middle/dear ($${PRICE.cheap}/$${PRICE.middle}/$${PRICE.dear} per s); load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const results = [];
  for (const c of opts.cases) {
    const started = Date.now();
    const r = await runCase(c, opts.rate, opts.drainMs, mp4);
    results.push(r);
    const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
    const rec = r.recoveries.map((x) => `${x.provider}@${x.at_s}s: ${x.first_task_after_s === null ? 'never' : `${x.first_task_after_s.toFixed(1)} s`}`).join(', ') || '-';
    console.log(
      `${c.name.padEnd(12)} tasks ${String(r.tasks).padStart(3)}  success ${pct(r.success_rate)} (during outage ${pct(r.success_rate_during_outage)})` +
        `  cost x${r.cost_vs_oracle.toFixed(4)}  jobs/task ${r.jobs_per_task.toFixed(2)}  orphaned ${r.orphaned_jobs}  first sent to a down provider ${r.first_attempt_on_down}` +
        `  recovery ${rec}  p50 ${r.p50_s?.toFixed(1)} s, max ${r.max_s?.toFixed(1)} s  (${((Date.now() - started) / 1000).toFixed(0)} s)` +
        (Object.keys(r.failures).length ? `  failures ${JSON.stringify(r.failures)}` : ''),
    );
  }
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(results, null, 2) + '\n');
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
