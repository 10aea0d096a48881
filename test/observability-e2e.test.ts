// Observability, end to end (issue 13): vidgate as a real process routing between two fake upstreams, a real
// Prometheus scraping it every second, and a workload with completions, cache hits and a coalesced follower, a
// content-policy failure, an outage of the cheap provider with failover, a cancel, webhooks (one retried) and a
// restart on the same data directory, with one long job still running at the end. Then:
//   - every panel query of every dashboard (grafana/dashboards/*.json) and the selector of every query variable
//     returns data, and every alert rule (grafana/alerts/*.yml) can fire: its expression with the threshold taken
//     off returns data (see alertProbes in support/dashboard-queries.ts);
//   - the money agrees with the ledger, the cache ratio with the tasks table, and the gauges of open tasks,
//     jobs in flight and reservations with the store.
// Counters restart at 0 with the process. Each counter comparison is made two ways over a window covering the whole
// run, evaluated at the last scrape:
//   - the sum of both processes' totals, from Prometheus' raw samples: each series' last sample before the restart
//     plus its last sample after it. This needs no reset detection (a counter that is back at its old value by the
//     first scrape of the new process shows no reset to Prometheus) and holds whether or not the series existed at 0.
//     Before the SIGTERM the test waits for a scrape that began after the last change, so that the first process's
//     final totals are in Prometheus.
//   - PromQL's `increase()` over the whole window, what the panels use: it corrects the reset itself, and is exact
//     here only because the contract's rule holds (every counter exists at 0 from the start) and the test waits for
//     a scrape after creating the teams and after the restart, before any traffic, so that each series is seen at 0
//     before it moves; it is evaluated at the last scrape, so nothing is extrapolated past it.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { alertProbes, alertRuleQueries, dashboardPanelQueries, dashboardVariableQueries, expandTemplate, type SourcedQuery } from './support/dashboard-queries';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { freePort } from './support/free-port';
import { tempDir } from './support/gateway';
import { mp4Renderer } from './support/mp4';
import { startServerProcess, type ServerProcess } from './support/process';
import { startPrometheus, type InstantSample, type PrometheusServer, type RangeSeries } from './support/prometheus-scraper';
import { readStoreFacts, type StoreFacts } from './support/store-facts';
import { startWebhookReceiver, type Receiver } from './support/webhook-receiver';

type Task = components['schemas']['Task'];

/** The dashboards and alert rules as code (tests run from the repository's root). */
const GRAFANA_DIR = path.resolve('grafana');
const DASHBOARDS_DIR = path.join(GRAFANA_DIR, 'dashboards');
const ADMIN_TOKEN = 'observability-admin-token-0123456789';
const MODEL = 'sora-2';
/** 16:9, 720p, 4 s: 100 credits at the cheap provider ($0.25/s), 200 at the dear one ($0.50/s). */
const SHAPE = { size: '1280x720', seconds: 4 };
const body = (prompt: string, extra: object = {}) => ({ model: MODEL, prompt, aspect_ratio: '16:9', duration: 4, ...extra });
/** Prompts the cheap fake treats specially, from the job's creation on. */
const POLICY = '[policy]';
const LONG = '[long]';
const JOB_MS = 400;
/** Long enough to outlast the test: the job still running at the end, and the one cancelled. */
const LONG_JOB_MS = 10 * 60 * 1000;
/** Money and ratios from Prometheus agree with the store within 1 %. */
const TOLERANCE = 0.01;
/** Per step of the workload (a task finishing, a breaker closing, a scrape), on a busy 2-core machine. */
const STEP_TIMEOUT_MS = 30_000;
const TERMINAL = ['completed', 'failed', 'cancelled'];

/** What the run leaves for the assertions. */
interface Run {
  prometheus: PrometheusServer;
  /** The store's facts, read from its file right after the last scrape. */
  facts: StoreFacts;
  /** Unix seconds of the last scrape, where every query is evaluated. */
  at_s: number;
  /** A window reaching from before the first start of vidgate to `at_s`, in whole seconds. */
  window_s: number;
  /** Unix seconds between the first process's exit and the second's start. */
  restart_s: number;
  teams: { alpha: string; beta: string };
}

let run: Run | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
/** Outputs of the vidgate processes, for failure messages. */
const outputs: (() => string)[] = [];

afterAll(async () => {
  // In reverse order of starting: vidgate first (it calls the fakes), then Prometheus, the fakes, the directories.
  for (const clean of cleanups.reverse()) await clean().catch(() => undefined);
});

/** The run, or the reason it is missing (so that every test after a broken setup fails saying why). */
function theRun(): Run {
  if (!run) throw new Error('the run did not complete: see the failure of beforeAll');
  return run;
}

beforeAll(async () => {
  const started = Date.now();
  const mp4 = { cheap: mp4Renderer('testsrc2'), dear: mp4Renderer('smptebars') };
  await Promise.all([mp4.cheap(SHAPE), mp4.dear(SHAPE)]);
  const cheap = await startFakeOpenAI({
    mp4: mp4.cheap,
    jobDurationMs: JOB_MS,
    onCreate: (job) => {
      if (job.prompt.includes(POLICY)) job.error = { code: 'content_policy_violation', message: 'the prompt was refused by the safety system' };
      if (job.prompt.includes(LONG)) job.duration_ms = LONG_JOB_MS;
    },
  });
  cleanups.push(() => cheap.close());
  const dear = await startFakeTasksApi({ mp4: mp4.dear, durationMs: JOB_MS });
  cleanups.push(() => dear.close());
  let secrets: string[] = [];
  const receiver = await startWebhookReceiver({ secrets: async () => secrets, answer: (d) => (receiverFailedOnce(d) ? 200 : 500) });
  cleanups.push(() => receiver.close());

  const port = await freePort();
  const dataDir = tempDir('vidgate-observe-');
  cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const prometheus = await startPrometheus({ target: `127.0.0.1:${port}` });
  cleanups.push(() => prometheus.close());

  const env = serverEnv({ dataDir, port, cheap, dear, receiver });
  const runStart_ms = Date.now();
  let server = await startVidgate(env);
  const api = client(server.url);

  // Two teams with a key each, and the webhook secret of the first.
  // Each with a budget (a day's, a month's), far from spent, so that the budget gauges exist.
  const alpha = await api.admin<{ id: string }>('POST', '/admin/teams', { name: 'alpha', quotas: { credits_per_day: 1_000_000 } });
  const beta = await api.admin<{ id: string }>('POST', '/admin/teams', { name: 'beta', quotas: { credits_per_month: 1_000_000 } });
  const keyA = (await api.admin<{ key: string }>('POST', `/admin/teams/${alpha.id}/keys`, { name: 'alpha-ci' })).key;
  const keyB = (await api.admin<{ key: string }>('POST', `/admin/teams/${beta.id}/keys`, { name: 'beta-ci' })).key;
  secrets = [(await api.admin<{ secret: string }>('POST', `/admin/teams/${alpha.id}/webhook-secret`, {})).secret];
  // The teams' series are scraped at 0 before they move.
  await prometheus.scrapedAfter(Date.now(), STEP_TIMEOUT_MS);

  // --- first process ---
  // Completions on the cheap provider; the first with a webhook, which fails once and is retried.
  const first = await api.submit(keyA, body('a harbour at dawn', { callback_url: `${receiver.origin}/hooks` }));
  const beta1 = await api.submit(keyB, body('a desert road'));
  // Two identical requests at once: one generation, one coalesced follower.
  const [lead, follower] = await Promise.all([api.submit(keyA, body('a city at night')), api.submit(keyA, body('a city at night'))]);
  expect([lead!.cache, follower!.cache].sort()).toEqual(['coalesced', 'miss']);
  await api.finished(keyA, [first.id, lead!.id, follower!.id]);
  await api.finished(keyB, [beta1.id]);
  // Cache hits, for both teams.
  expect((await api.submit(keyA, body('a harbour at dawn'))).cache).toBe('hit');
  expect((await api.submit(keyB, body('a desert road'))).cache).toBe('hit');
  // A content-policy failure: the request's fault, not the provider's.
  const refused = await api.finished(keyB, [(await api.submit(keyB, body(`a riot ${POLICY}`))).id]);
  expect(refused[0]).toMatchObject({ status: 'failed', provider: 'cheap', error: { code: 'content_policy_violation' } });
  // An outage of the cheap provider: the task fails over to the dear one; the breaker opens, the health checks
  // fail, then one passes once it is back (half open), and the next task, the probe, closes it.
  cheap.setMode('error_500');
  const failedOver = await api.finished(keyA, [(await api.submit(keyA, body('a storm at sea'))).id]);
  expect(failedOver[0]).toMatchObject({ status: 'completed', provider: 'dear' });
  cheap.resetModes();
  await api.breakerIn(keyA, 'cheap', 'half_open');
  const probe = await api.finished(keyA, [(await api.submit(keyA, body('a calm lake'))).id]);
  expect(probe[0]).toMatchObject({ status: 'completed', provider: 'cheap' });
  await api.breakerIn(keyA, 'cheap', 'closed');
  // A cancel while the job runs upstream.
  const doomed = await api.submit(keyA, body(`a slow sunset ${LONG}`));
  await api.processing(keyA, doomed.id);
  expect((await api.call<Task>(keyA, 'POST', `/v1/tasks/${doomed.id}/cancel`)).status).toBe('cancelled');
  // The long job that is still running at the end (in flight, with its reservation).
  const long = await api.submit(keyB, body(`a glacier melting ${LONG}`));
  await api.processing(keyB, long.id);
  await waitUntil(() => receiver.deliveries.length >= 2, 'the webhook delivered after its retry');

  // The first process's final totals are scraped, then it stops.
  await prometheus.scrapedAfter(Date.now(), STEP_TIMEOUT_MS);
  server.child.kill('SIGTERM');
  expect(await server.exited).toBe(0);
  const restart_s = Date.now() / 1000;
  const cheapRequestsBefore = cheap.requests.length;

  // --- second process, same data directory and port; its series are scraped before any traffic ---
  server = await startVidgate(env);
  const again = client(server.url);
  await prometheus.scrapedAfter(Date.now(), STEP_TIMEOUT_MS);
  const second = await again.submit(keyA, body('a forest in fog'));
  const beta2 = await again.submit(keyB, body('a river delta'));
  await again.finished(keyA, [second.id]);
  await again.finished(keyB, [beta2.id]);
  expect((await again.submit(keyA, body('a harbour at dawn'))).cache).toBe('hit'); // the cache outlives the process
  expect((await again.submit(keyB, body('a river delta'))).cache).toBe('hit');
  // The new process polls the long job (the stopped one's lease lapsed).
  const longJob = (await again.call<Task>(keyB, 'GET', `/v1/tasks/${long.id}`)).attempts[0]!.upstream_id;
  await waitUntil(() => cheap.requests.slice(cheapRequestsBefore).some((q) => q.method === 'GET' && q.path === `/v1/videos/${longJob}`), 'the long job polled by the new process');
  const quiet_ms = Date.now();
  const at_s = await prometheus.scrapedAfter(quiet_ms, STEP_TIMEOUT_MS);
  const facts = readStoreFacts(path.join(dataDir, 'vidgate.db'));
  expect(facts.open_tasks).toEqual({ processing: 1 }); // only the long job: the gauges must show exactly it

  run = { prometheus, facts, at_s, restart_s, window_s: Math.ceil(at_s - runStart_ms / 1000) + 10, teams: { alpha: alpha.id, beta: beta.id } };
  console.info(`observability run: ${((Date.now() - started) / 1000).toFixed(1)} s of setup and workload, window ${run.window_s} s`);

  /** The receiver fails a task's first delivery, then accepts. */
  function receiverFailedOnce(d: { id: string }): boolean {
    return receiver.deliveries.filter((x) => x.id === d.id).length > 1;
  }
}, 240_000);

function serverEnv(o: { dataDir: string; port: number; cheap: FakeOpenAI; dear: FakeTasksApi; receiver: Receiver }): Record<string, string> {
  return {
    VIDGATE_DATA_DIR: o.dataDir,
    VIDGATE_SERVER__PORT: String(o.port),
    VIDGATE_SERVER__DRAIN_TIMEOUT_MS: '5000',
    VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    VIDGATE_LOG_LEVEL: 'warn',
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
    VIDGATE_WORKERS__RETRY_BACKOFF_MS: '100',
    // The stopped process's leases lapse soon, so that the next one polls the long job.
    VIDGATE_WORKERS__LEASE_MS: '3000',
    VIDGATE_ROUTING__BREAKER__CONSECUTIVE_FAILURES: '1',
    VIDGATE_ROUTING__BREAKER__COOLDOWN_MS: '500',
    VIDGATE_ROUTING__BREAKER__MAX_COOLDOWN_MS: '2000',
    VIDGATE_ROUTING__HEALTH_CHECK__MIN_INTERVAL_MS: '200',
    VIDGATE_ROUTING__HEALTH_CHECK__MAX_INTERVAL_MS: '500',
    VIDGATE_WEBHOOKS__RETRY_SCHEDULE_MS: '[200, 400, 800]',
    VIDGATE_WEBHOOKS__POLL_INTERVAL_MS: '200',
    VIDGATE_OUTBOUND__CA_FILE: o.receiver.caFile,
    VIDGATE_OUTBOUND__TRUSTED_ORIGINS: o.receiver.origin,
    OBSERVE_CHEAP_KEY: o.cheap.apiKey,
    OBSERVE_DEAR_KEY: o.dear.apiKey,
    VIDGATE_PROVIDERS: JSON.stringify([
      { id: 'cheap', kind: 'openai', base_url: o.cheap.url, api_key_env: 'OBSERVE_CHEAP_KEY', timeout_ms: 10_000, models: [{ model: MODEL, usd_per_second: { standard: 0.25 } }] },
      { id: 'dear', kind: 'tasks-api', base_url: o.dear.url, api_key_env: 'OBSERVE_DEAR_KEY', timeout_ms: 10_000, models: [{ model: MODEL, usd_per_second: { standard: 0.5 } }] },
    ]),
  };
}

async function startVidgate(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServerProcess(env);
  outputs.push(server.output);
  cleanups.push(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    await server.exited;
  });
  return server;
}

async function waitUntil(done: () => boolean | Promise<boolean>, what: string, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${outputs.map((o) => o()).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The public and admin API of one vidgate process. */
function client(url: string) {
  async function request<T>(auth: string, method: string, route: string, payload?: object): Promise<T> {
    const res = await fetch(`${url}${route}`, {
      method,
      headers: { Authorization: `Bearer ${auth}`, ...(payload && { 'Content-Type': 'application/json' }) },
      ...(payload && { body: JSON.stringify(payload) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }
  const c = {
    call: <T>(key: string, method: string, route: string, payload?: object) => request<T>(key, method, route, payload),
    admin: <T>(method: string, route: string, payload?: object) => request<T>(ADMIN_TOKEN, method, route, payload),
    submit: (key: string, payload: object) => request<Task>(key, 'POST', '/v1/videos/generations', payload),
    async finished(key: string, ids: string[]): Promise<Task[]> {
      let tasks: Task[] = [];
      await waitUntil(async () => {
        tasks = await Promise.all(ids.map((id) => request<Task>(key, 'GET', `/v1/tasks/${id}`)));
        return tasks.every((t) => TERMINAL.includes(t.status));
      }, `tasks ${ids.join(', ')} to finish`);
      return tasks;
    },
    async processing(key: string, id: string): Promise<void> {
      await waitUntil(async () => (await request<Task>(key, 'GET', `/v1/tasks/${id}`)).status === 'processing', `task ${id} to be processing`);
    },
    async breakerIn(key: string, provider: string, state: 'closed' | 'half_open'): Promise<void> {
      type Providers = { data: components['schemas']['ProviderStatus'][] };
      await waitUntil(async () => {
        const p = (await request<Providers>(key, 'GET', '/v1/providers')).data.find((x) => x.id === provider);
        return p?.models.find((m) => m.model === MODEL)?.health.state === state;
      }, `the breaker of ${provider} to be ${state}`);
    },
  };
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading Prometheus.

/** A query's failure as a line, or undefined when it returned at least one series with a number (not NaN). */
async function missingData(p: PrometheusServer, q: SourcedQuery, expr: string, at_s: number): Promise<string | undefined> {
  try {
    const result = await p.query(expr, at_s);
    if (result.length === 0) return `${q.source}: no series\n    ${expr}`;
    if (result.every((s) => Number.isNaN(s.value))) return `${q.source}: only NaN (${result.length} series)\n    ${expr}`;
    return undefined;
  } catch (err) {
    return `${q.source}: ${(err as Error).message}`;
  }
}

/** The raw samples of each series of `selector` over the run's window. */
async function rawWindow(p: PrometheusServer, selector: string, r: Run): Promise<RangeSeries[]> {
  return p.rawSamples(`${selector}[${r.window_s}s]`, r.at_s);
}

/** The sum of both processes' totals of one series: its last sample before the restart, plus its last one after. */
function seriesTotal(series: RangeSeries, restart_s: number): number {
  const before = series.samples.filter((s) => s.time_s < restart_s).at(-1)?.value ?? 0;
  const after = series.samples.filter((s) => s.time_s > restart_s).at(-1)?.value ?? 0;
  return before + after;
}

/** Sums of the series' totals (both processes) per value of `label`. */
function totalsBy(series: RangeSeries[], label: string, restart_s: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of series) out[s.metric[label] ?? ''] = (out[s.metric[label] ?? ''] ?? 0) + seriesTotal(s, restart_s);
  return out;
}

/** A PromQL result keyed by one label's value. */
async function queryBy(p: PrometheusServer, expr: string, label: string, at_s: number): Promise<Record<string, number>> {
  return Object.fromEntries((await p.query(expr, at_s)).map((s) => [s.metric[label] ?? '', s.value]));
}

/** What one credit is worth: credits.usd_per_credit's default, which the run keeps. */
const USD_PER_CREDIT = 0.01;

/** The panel queries of the dashboards; fails when the dashboards, a required part of issue 13, are missing. */
function panelQueries(): SourcedQuery[] {
  expect(fs.existsSync(DASHBOARDS_DIR), `${DASHBOARDS_DIR} is part of issue 13 and does not exist yet`).toBe(true);
  const queries = dashboardPanelQueries(DASHBOARDS_DIR);
  expect(queries.length, `no panel queries in ${DASHBOARDS_DIR}`).toBeGreaterThan(0);
  return queries;
}

const within = (actual: number | undefined, expected: number) => actual !== undefined && Math.abs(actual - expected) <= TOLERANCE * Math.max(Math.abs(expected), 1e-9);

// ---------------------------------------------------------------------------------------------------------------

describe('observability end to end: vidgate, a real Prometheus, the dashboards and alerts as code', () => {
  it('the workload left the store as planned (the facts the metrics are checked against)', () => {
    const { facts, teams } = theRun();
    expect(facts.statuses).toEqual({ completed: 12, failed: 1, cancelled: 1, processing: 1 });
    expect(facts.cache_statuses).toEqual({ miss: 10, coalesced: 1, hit: 4 });
    // alpha: 4 cheap generations (100 each), the failover (200), 2 hits and a follower at 0; beta: 2 cheap, 2 hits.
    expect(facts.settled_credits).toEqual({ [teams.alpha]: 600, [teams.beta]: 200 });
    expect(facts.reserved_credits).toEqual({ [teams.beta]: 100 });
    expect(facts.jobs_in_flight).toEqual({ cheap: 1 });
  });

  it('every panel query of every dashboard, and every query variable, returns data', async () => {
    const r = theRun();
    const queries = [...panelQueries(), ...dashboardVariableQueries(DASHBOARDS_DIR)];
    const problems: string[] = [];
    for (const q of queries) {
      const problem = await missingData(r.prometheus, q, expandTemplate(q.expr, { range_s: r.window_s }), r.at_s);
      if (problem) problems.push(problem);
    }
    expect(problems, `${problems.length} of ${queries.length} queries without data`).toEqual([]);
  });

  it('every alert rule can fire: its expression without the threshold returns data', async () => {
    const r = theRun();
    const dir = path.join(GRAFANA_DIR, 'alerts');
    expect(fs.existsSync(dir), `${dir} is part of issue 13 and does not exist yet`).toBe(true);
    const rules = alertRuleQueries(dir);
    expect(rules.length, `no alert rules in ${dir}`).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const rule of rules) {
      // The rule as written must at least be accepted by Prometheus (empty is its normal answer).
      await r.prometheus.query(rule.expr, r.at_s).catch((err: Error) => problems.push(`${rule.source}: ${err.message}`));
      for (const probe of alertProbes(rule.expr)) {
        const problem = await missingData(r.prometheus, rule, probe, r.at_s);
        if (problem) problems.push(problem);
      }
    }
    expect(problems, `${problems.length} problems in ${rules.length} rules`).toEqual([]);
  });

  it('spend per team: the settled credits of both processes agree with the ledger within 1 %', async () => {
    const r = theRun();
    const raw = totalsBy(await rawWindow(r.prometheus, 'vidgate_credits_total{kind="settled"}', r), 'team', r.restart_s);
    for (const team of [r.teams.alpha, r.teams.beta]) {
      const expected = r.facts.settled_credits[team] ?? 0;
      expect(within(raw[team], expected), `team ${team}: both processes' totals ${raw[team]}, ledger ${expected}`).toBe(true);
    }
  });

  it('spend per team as the panels compute it: increase() over the run, across the restart, agrees with the ledger within 1 %', async () => {
    const r = theRun();
    const increase = await queryBy(r.prometheus, `sum by (team) (increase(vidgate_credits_total{kind="settled"}[${r.window_s}s]))`, 'team', r.at_s);
    for (const team of [r.teams.alpha, r.teams.beta]) {
      const expected = r.facts.settled_credits[team] ?? 0;
      expect(within(increase[team], expected), `team ${team}: increase() ${increase[team]}, ledger ${expected}`).toBe(true);
    }
  });

  it('the cache: requests per result of both processes equal the tasks table per cache_status', async () => {
    const r = theRun();
    const statuses = r.facts.cache_statuses;
    const raw = totalsBy(await rawWindow(r.prometheus, 'vidgate_cache_requests_total', r), 'result', r.restart_s);
    for (const result of new Set([...Object.keys(statuses), ...Object.keys(raw)])) {
      expect(raw[result] ?? 0, `cache result ${result}`).toBe(statuses[result] ?? 0);
    }
  });

  it('the cache hit ratio as the panels compute it (increase() over the run) equals the tasks table within 1 %', async () => {
    const r = theRun();
    const statuses = r.facts.cache_statuses;
    const all = Object.values(statuses).reduce((a, b) => a + b, 0);
    const w = `${r.window_s}s`;
    const [ratio] = await r.prometheus.query(`sum(increase(vidgate_cache_requests_total{result="hit"}[${w}])) / sum(increase(vidgate_cache_requests_total[${w}]))`, r.at_s);
    const expected = (statuses.hit ?? 0) / all;
    expect(within(ratio?.value, expected), `hit ratio ${ratio?.value}, tasks table ${expected}`).toBe(true);
  });

  it('open tasks, jobs in flight and reservations: the gauges equal the store', async () => {
    const r = theRun();
    const open = await queryBy(r.prometheus, 'vidgate_tasks_open', 'status', r.at_s);
    expect(open).toEqual({ pending: r.facts.open_tasks.pending ?? 0, processing: r.facts.open_tasks.processing ?? 0 });
    const inFlight = await queryBy(r.prometheus, 'vidgate_provider_jobs_in_flight', 'provider', r.at_s);
    expect(inFlight).toEqual({ cheap: r.facts.jobs_in_flight.cheap ?? 0, dear: r.facts.jobs_in_flight.dear ?? 0 });
    const reserved = await queryBy(r.prometheus, 'vidgate_team_reserved_credits', 'team', r.at_s);
    // Every team with a reservation is there with it; any other team listed shows 0.
    for (const [team, credits] of Object.entries(r.facts.reserved_credits)) expect(reserved[team], `team ${team}`).toBe(credits);
    for (const [team, credits] of Object.entries(reserved)) expect(credits, `team ${team}`).toBe(r.facts.reserved_credits[team] ?? 0);
  });

  it('the money panels (settled credits over the time range, in credits or USD, in all or by team, provider or model) agree with the ledger within 1 %', async () => {
    const r = theRun();
    // The value of a credit, which the panels in USD multiply by (credits.usd_per_credit's default).
    expect((await r.prometheus.query('vidgate_credit_value_usd', r.at_s)).map((s) => s.value)).toEqual([USD_PER_CREDIT]);
    const money = panelQueries().filter((q) => /vidgate_credits_total\{[^}]*kind="settled"/.test(q.expr) && q.expr.includes('$__range'));
    expect(money.some((q) => /by \(team\)/.test(q.expr)), 'no panel shows the spend per team over the time range').toBe(true);
    const by: Record<string, Record<string, number>> = { team: r.facts.settled_credits, provider: r.facts.settled_credits_by_provider, model: r.facts.settled_credits_by_model };
    const problems: string[] = [];
    for (const q of money) {
      const factor = q.unit === 'currencyUSD' ? USD_PER_CREDIT : 1;
      for (const row of await r.prometheus.query(expandTemplate(q.expr, { range_s: r.window_s }), r.at_s)) {
        const label = ['team', 'provider', 'model'].find((l) => row.metric[l] !== undefined);
        const credits = label ? (by[label]![row.metric[label]!] ?? 0) : Object.values(r.facts.settled_credits).reduce((a, b) => a + b, 0);
        if (!within(row.value, credits * factor)) problems.push(`${q.source} ${label ? `${label}=${row.metric[label]}` : ''}: ${row.value}, ledger ${credits * factor}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the cache hit ratio panels over the time range agree with the tasks table within 1 %', async () => {
    const r = theRun();
    const statuses = r.facts.cache_statuses;
    expect(statuses.bypassed ?? 0, 'the ratio below counts every task; the workload bypasses nothing').toBe(0);
    const ratios = panelQueries().filter((q) => q.expr.includes('vidgate_cache_requests_total') && /result="hit"/.test(q.expr) && q.expr.includes('$__range') && q.unit === 'percentunit');
    expect(ratios.length, 'no panel shows the cache hit ratio over the time range').toBeGreaterThan(0);
    const expected = (statuses.hit ?? 0) / Object.values(statuses).reduce((a, b) => a + b, 0);
    for (const q of ratios) {
      const rows = await r.prometheus.query(expandTemplate(q.expr, { range_s: r.window_s }), r.at_s);
      expect(rows.length, `${q.source}: one ratio over all teams`).toBe(1);
      expect(within(rows[0]!.value, expected), `${q.source}: ${rows[0]!.value}, tasks table ${expected}`).toBe(true);
    }
  });

  it('the panels of tasks open, jobs in flight and reservations show what the store holds', async () => {
    const r = theRun();
    const gauges = panelQueries().filter((q) => !q.expr.includes('['));
    const of = (metric: string) => gauges.filter((q) => q.expr.includes(metric));
    const problems: string[] = [];
    const check = async (q: SourcedQuery, expected: (row: InstantSample) => number) => {
      const rows = await r.prometheus.query(expandTemplate(q.expr, { range_s: r.window_s }), r.at_s);
      if (rows.length === 0) problems.push(`${q.source}: no series`);
      for (const row of rows) if (row.value !== expected(row)) problems.push(`${q.source} ${JSON.stringify(row.metric)}: ${row.value}, store ${expected(row)}`);
    };
    for (const metric of ['vidgate_tasks_open', 'vidgate_provider_jobs_in_flight', 'vidgate_team_reserved_credits']) expect(of(metric).length, `no panel shows ${metric}`).toBeGreaterThan(0);
    for (const q of of('vidgate_tasks_open')) {
      const status = /status="(\w+)"/.exec(q.expr)?.[1];
      await check(q, (row) => r.facts.open_tasks[status ?? row.metric.status ?? ''] ?? 0);
    }
    for (const q of of('vidgate_provider_jobs_in_flight')) await check(q, (row) => r.facts.jobs_in_flight[row.metric.provider ?? ''] ?? 0);
    for (const q of of('vidgate_team_reserved_credits')) await check(q, (row) => r.facts.reserved_credits[row.metric.team ?? ''] ?? 0);
    expect(problems).toEqual([]);
  });
});
