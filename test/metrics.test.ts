// The metrics contract (docs/metrics.md), end to end: a real gateway (real SQLite file, real HTTP) routing one model
// between two fake upstreams (a cheap OpenAI-shaped one, a dearer tasks-API one), scraped at GET /metrics as
// Prometheus would, and the text checked by Debian's promtool.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import supertest from 'supertest';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { createGateway, StartupError } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { createRouteTemplates } from '../src/http/route-templates';
import YAML from 'yaml';
import { SPEC_PATH } from '../src/http/app';
import { startFakeOpenAI, type FakeOpenAI } from './support/fake-openai';
import { startFakeTasksApi, type FakeTasksApi } from './support/fake-tasks-api';
import { ADMIN_TOKEN, KEY_A, auth, startTestGateway, tempDir, testConfig, waitFor, type ConfigOverrides } from './support/gateway';
import { mp4Renderer } from './support/mp4';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const MODEL = 'sora-2';
/** 16:9 at 720p, 4 s: $1.00 (100 credits) at openai (cheap), $2.00 (200 credits) at tasks (dear). */
const BODY = { model: MODEL, prompt: 'a lighthouse in a storm', aspect_ratio: '16:9', duration: 4 } as const;
const MP4 = mp4Renderer('testsrc2');
const PROMTOOL = '/usr/bin/promtool';
/**
 * The one exception to promtool's lint: prom-client's default process metrics name three gauges with `_total`
 * (counts of active handles, requests, resources). They are the standard names Node.js dashboards query
 * (docs/metrics.md keeps the standard names), so these exact three lines are allowed and nothing else.
 */
const PROMTOOL_ALLOWED = new Set(
  ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'].map((n) => `${n} non-counter metrics should not have "_total" suffix`),
);

beforeAll(async () => {
  await MP4({ size: '1280x720', seconds: 4 });
});

// ---------------------------------------------------------------------------------------------------------------
// Reading the text format.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of a Prometheus text exposition. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one series of `name` with exactly these labels; undefined when it does not exist. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const keys = Object.keys(labels);
  const found = samples(text).filter(
    (s) => s.name === name && Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k]),
  );
  expect(found.length, `${name}${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

const scrape = async (h: Pick<Harness, 'http'>) => {
  const res = await h.http.get('/metrics');
  expect(res.status).toBe(200);
  return res.text;
};

// ---------------------------------------------------------------------------------------------------------------
// The rig: two fakes and a gateway routing between them, closed when the test finishes.

interface Rig {
  h: Harness;
  openai: FakeOpenAI;
  tasks: FakeTasksApi;
  defaultTeam: string;
}

const tasksProvider = (tasks: FakeTasksApi) =>
  ({ id: 'tasks', kind: 'tasks-api', base_url: tasks.url, api_key_env: 'FAKE_TASKS_KEY', models: [{ model: MODEL, usd_per_second: { standard: 0.5 } }] });
const providers = (openai: FakeOpenAI, tasks: FakeTasksApi) => [
  { id: 'openai', kind: 'openai', base_url: openai.url, api_key_env: 'FAKE_OPENAI_KEY', models: [{ model: MODEL, usd_per_second: { standard: 0.25 } }] },
  tasksProvider(tasks),
];

async function rig(ctx: TestContext, overrides: ConfigOverrides = {}, env: Record<string, string> = {}, options: { validateResponses?: boolean } = {}): Promise<Rig> {
  const openai = await startFakeOpenAI({ mp4: MP4, jobDurationMs: 150 });
  const tasks = await startFakeTasksApi({ mp4: MP4, durationMs: 150 });
  const h = await startTestGateway(
    {
      workers: { poll_interval_ms: 50, retry_backoff_ms: 50, lease_ms: 5000, max_attempts: 3 },
      routing: { health_check: { enabled: false } },
      providers: providers(openai, tasks),
      ...overrides,
    },
    { env: { FAKE_OPENAI_KEY: openai.apiKey, FAKE_TASKS_KEY: tasks.apiKey, ...env }, ...options },
  );
  ctx.onTestFinished(async () => {
    await openai.close();
    await tasks.close();
    await h.close();
  });
  return { h, openai, tasks, defaultTeam: (await h.gateway.store.findTeamByName('default'))!.id };
}

async function submit(h: Pick<Harness, 'http'>): Promise<string> {
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(BODY);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.id as string;
}

async function finished(h: Pick<Harness, 'http'>, id: string): Promise<{ status: string; provider?: string; error?: { code: string } }> {
  return waitFor(async () => {
    const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
    return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  });
}

const attempts = (provider: string, stage: string, result: string, fault: string) => ({ provider, model: MODEL, stage, result, fault });

// ---------------------------------------------------------------------------------------------------------------

describe('metrics', () => {
  it('has every counter at 0 before any traffic, for each team, provider and model; gauges at their state', async (ctx) => {
    const r = await rig(ctx);
    const text = await scrape(r.h);
    const teams = [r.defaultTeam, r.h.teamB.id];
    for (const team of teams) {
      expect(value(text, 'vidgate_tasks_submitted_total', { team, model: MODEL })).toBe(0);
      expect(value(text, 'vidgate_team_info', { team, name: team === r.defaultTeam ? 'default' : 'team-b' })).toBe(1);
      expect(value(text, 'vidgate_team_reserved_credits', { team })).toBe(0);
      for (const provider of ['openai', 'tasks']) {
        for (const status of ['completed', 'failed', 'cancelled']) expect(value(text, 'vidgate_tasks_finished_total', { team, status, provider, model: MODEL })).toBe(0);
        expect(value(text, 'vidgate_failover_surcharge_credits_total', { team, provider, model: MODEL })).toBe(0);
      }
      expect(value(text, 'vidgate_tasks_finished_total', { team, status: 'completed', provider: 'cache', model: MODEL })).toBe(0);
      expect(value(text, 'vidgate_tasks_finished_total', { team, status: 'failed', provider: 'none', model: MODEL })).toBe(0);
      for (const kind of ['reserved', 'settled', 'released']) {
        for (const provider of ['openai', 'tasks', 'none', 'cache']) expect(value(text, 'vidgate_credits_total', { kind, team, provider, model: MODEL })).toBe(0);
      }
      for (const result of ['hit', 'miss', 'coalesced', 'bypassed', 'disabled']) expect(value(text, 'vidgate_cache_requests_total', { result, team, model: MODEL })).toBe(0);
      expect(value(text, 'vidgate_cache_credits_saved_total', { team, model: MODEL })).toBe(0);
    }
    for (const provider of ['openai', 'tasks']) {
      for (const [stage, result, fault] of [['job', 'succeeded', 'none'], ['submit', 'failed', 'provider'], ['submit', 'failed', 'request'], ['job', 'failed', 'provider'], ['job', 'failed', 'request'], ['job', 'cancelled', 'none']]) {
        expect(value(text, 'vidgate_attempts_total', attempts(provider, stage!, result!, fault!))).toBe(0);
      }
      for (const name of ['vidgate_failovers_total', 'vidgate_video_seconds_total', 'vidgate_provider_cost_usd_total', 'vidgate_task_time_to_video_seconds_count']) {
        expect(value(text, name, { provider, model: MODEL }), name).toBe(0);
      }
      for (const result of ['success', 'failure']) expect(value(text, 'vidgate_health_checks_total', { provider, result })).toBe(0);
      expect(value(text, 'vidgate_provider_jobs_in_flight', { provider })).toBe(0);
      expect(value(text, 'vidgate_breaker_state', { provider, model: MODEL, state: 'closed' })).toBe(1);
      expect(value(text, 'vidgate_breaker_state', { provider, model: MODEL, state: 'open' })).toBe(0);
    }
    expect(value(text, 'vidgate_task_queue_wait_seconds_count', { model: MODEL })).toBe(0);
    for (const outcome of ['delivered', 'retried', 'dead_lettered']) expect(value(text, 'vidgate_webhook_deliveries_total', { outcome })).toBe(0);
    for (const outcome of ['success', 'failure']) expect(value(text, 'vidgate_webhook_delivery_duration_seconds_count', { outcome })).toBe(0);
    expect(value(text, 'vidgate_assets_expired_total')).toBe(0);
    expect(value(text, 'vidgate_tasks_open', { status: 'pending' })).toBe(0);
    expect(value(text, 'vidgate_tasks_open', { status: 'processing' })).toBe(0);
    expect(value(text, 'vidgate_credit_value_usd')).toBe(0.01);
    // Every counter of vidgate's has samples from the start; process metrics keep their standard names.
    for (const [, name] of text.matchAll(/^# TYPE (vidgate_\w+) counter$/gm)) expect(samples(text).some((s) => s.name === name), name).toBe(true);
    expect(value(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);

    // A team created later has its counters at 0 at once.
    const created = await r.h.http.post('/admin/teams').set(auth(ADMIN_TOKEN)).send({ name: 'team-c' });
    expect(created.status).toBe(201);
    const later = await scrape(r.h);
    expect(value(later, 'vidgate_tasks_submitted_total', { team: created.body.id, model: MODEL })).toBe(0);
    expect(value(later, 'vidgate_team_info', { team: created.body.id, name: 'team-c' })).toBe(1);
  });

  it("counts a content-policy failure as the request's fault, never against the provider", async (ctx) => {
    const r = await rig(ctx);
    r.openai.setMode({ kind: 'fail_job', code: 'content_policy_violation' }, { route: 'retrieve' });
    const task = await finished(r.h, await submit(r.h));
    expect(task).toMatchObject({ status: 'failed', error: { code: 'content_policy_violation' } });
    const text = await scrape(r.h);
    expect(value(text, 'vidgate_attempts_total', attempts('openai', 'job', 'failed', 'request'))).toBe(1);
    expect(value(text, 'vidgate_attempts_total', attempts('openai', 'job', 'failed', 'provider'))).toBe(0);
    expect(value(text, 'vidgate_attempts_total', attempts('openai', 'submit', 'failed', 'provider'))).toBe(0);
    expect(value(text, 'vidgate_failovers_total', { provider: 'openai', model: MODEL })).toBe(0);
    expect(value(text, 'vidgate_breaker_state', { provider: 'openai', model: MODEL, state: 'closed' })).toBe(1);
    expect(value(text, 'vidgate_tasks_finished_total', { team: r.defaultTeam, status: 'failed', provider: 'openai', model: MODEL })).toBe(1);
    // Nothing went to the other provider.
    expect(samples(text).filter((s) => s.name === 'vidgate_attempts_total' && s.labels.provider === 'tasks').every((s) => s.value === 0)).toBe(true);
  });

  it("counts a failed accepted job as the provider's fault, its failover, and the dearer attempt that completed", async (ctx) => {
    const r = await rig(ctx);
    r.openai.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve' });
    const task = await finished(r.h, await submit(r.h));
    expect(task).toMatchObject({ status: 'completed', provider: 'tasks' });
    const text = await scrape(r.h);
    const team = r.defaultTeam;
    expect(value(text, 'vidgate_attempts_total', attempts('openai', 'job', 'failed', 'provider'))).toBe(1);
    expect(value(text, 'vidgate_attempts_total', attempts('openai', 'job', 'failed', 'request'))).toBe(0);
    expect(value(text, 'vidgate_failovers_total', { provider: 'openai', model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_failovers_total', { provider: 'tasks', model: MODEL })).toBe(0);
    expect(value(text, 'vidgate_attempts_total', attempts('tasks', 'job', 'succeeded', 'none'))).toBe(1);
    expect(value(text, 'vidgate_tasks_finished_total', { team, status: 'completed', provider: 'tasks', model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_video_seconds_total', { provider: 'tasks', model: MODEL })).toBe(4);
    expect(value(text, 'vidgate_provider_cost_usd_total', { provider: 'tasks', model: MODEL })).toBe(2);
    expect(value(text, 'vidgate_provider_cost_usd_total', { provider: 'openai', model: MODEL })).toBe(0);
    // The reservation grew from the cheap price (100 credits) to the dear one (200).
    expect(value(text, 'vidgate_failover_surcharge_credits_total', { team, provider: 'tasks', model: MODEL })).toBe(100);
    expect(value(text, 'vidgate_credits_total', { kind: 'settled', team, provider: 'tasks', model: MODEL })).toBe(200);
    // One wait in the queue (the first accepted submission), one time to video, at the provider that made it.
    expect(value(text, 'vidgate_task_queue_wait_seconds_count', { model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_task_time_to_video_seconds_count', { provider: 'tasks', model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_task_time_to_video_seconds_bucket', { provider: 'tasks', model: MODEL, le: '3600' })).toBe(1);
  });

  it('labels requests refused before the route handler with the route template, the status poll too', async (ctx) => {
    // Responses unchecked, as in production: a successful GET /v1/tasks/{id} is then answered by the status-poll lane
    // (status-poll.ts), and the refused ones by the general path.
    const r = await rig(ctx, { teams: { default_quotas: { reads_per_minute: 3 } } }, {}, { validateResponses: false });
    expect((await r.h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 42 })).status).toBe(400);
    expect((await r.h.http.get('/v1/tasks/task_whatever')).status).toBe(401);
    expect((await r.h.http.get('/v1/tasks').set(auth('not-a-key-0123456789'))).status).toBe(401);
    expect((await r.h.http.get('/v1/videos/some_video').set(auth(KEY_A))).status).toBe(404);
    expect((await r.h.http.get('/v1/tasks/task_missing?x=1').set(auth(KEY_A))).status).toBe(400); // the general path's validation
    expect((await r.h.http.get('/v1/tasks/task_missing').set(auth(KEY_A))).status).toBe(404);
    expect((await r.h.http.get('/v1/tasks/task_missing').set(auth(KEY_A))).status).toBe(429); // the 4th read this minute
    expect((await r.h.http.get('/no/such/path')).status).toBe(404);
    const text = await scrape(r.h);
    const count = (method: string, route: string, status: string) => value(text, 'vidgate_http_request_duration_seconds_count', { method, route, status });
    expect(count('POST', '/v1/videos/generations', '400')).toBe(1);
    expect(count('GET', '/v1/tasks/{id}', '401')).toBe(1);
    expect(count('GET', '/v1/tasks', '401')).toBe(1);
    expect(count('GET', '/v1/videos/{id}', '404')).toBe(1);
    expect(count('GET', '/v1/tasks/{id}', '404')).toBe(1);
    expect(count('GET', '/v1/tasks/{id}', '429')).toBe(1);
    expect(count('GET', '/v1/tasks/{id}', '400')).toBe(1);
    expect(count('GET', 'unmatched', '404')).toBe(1);
    expect(samples(text).filter((s) => s.name === 'vidgate_http_request_duration_seconds_count' && s.labels.route === 'unmatched')).toHaveLength(1);
  });

  it("counts the server's own 408 for a stalled body under the route's template", async (ctx) => {
    const r = await rig(ctx, { server: { headers_timeout_ms: 1000, request_timeout_ms: 1500 } }, {}, { validateResponses: false });
    const { hostname, port } = new URL(r.h.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () =>
        socket.write(`POST /v1/estimates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":`),
      );
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.setTimeout(15_000, () => reject(new Error(`no answer; got: ${answer}`)));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 408 /);
    const text = await waitFor(async () => {
      const t = await scrape(r.h);
      return value(t, 'vidgate_http_request_duration_seconds_count', { method: 'POST', route: '/v1/estimates', status: '408' }) === 1 ? t : undefined;
    }, 5000);
    expect(value(text, 'vidgate_http_request_duration_seconds_count', { method: 'POST', route: 'unmatched', status: '408' })).toBeUndefined();
  });

  it('reads the gauges from the store after a restart: open tasks, jobs in flight, reservations, budgets', async (ctx) => {
    // One provider whose jobs run for a minute: the tasks stay in flight across the restart.
    const tasks = await startFakeTasksApi({ mp4: MP4, durationMs: 60_000 });
    const dir = tempDir();
    const config = testConfig(dir, {
      teams: { default_quotas: { credits_per_day: 5000, credits_per_month: 20_000 } },
      routing: { health_check: { enabled: false } },
      providers: [tasksProvider(tasks)],
    });
    const open = async () => {
      const gateway = await createGateway(config, { log: createLogger('silent'), env: { FAKE_TASKS_KEY: tasks.apiKey } });
      await gateway.start();
      return { gateway, http: supertest(gateway.app) };
    };
    let g = await open();
    ctx.onTestFinished(async () => {
      await g.gateway.stop();
      await tasks.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const ids = [await submit(g), await submit(g)];
    await waitFor(async () => {
      const statuses = await Promise.all(ids.map(async (id) => (await g.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.status));
      return statuses.every((s) => s === 'processing') ? true : undefined;
    });
    await g.gateway.stop();
    g = await open();

    const text = await scrape(g);
    const team = (await g.gateway.store.findTeamByName('default'))!.id;
    const open_ = await g.gateway.store.listOpenTasks(team);
    const usage = await g.gateway.store.quotaUsage('team', team, Date.now());
    expect(value(text, 'vidgate_tasks_open', { status: 'processing' })).toBe(2);
    expect(value(text, 'vidgate_tasks_open', { status: 'pending' })).toBe(0);
    expect(value(text, 'vidgate_provider_jobs_in_flight', { provider: 'tasks' })).toBe(2);
    expect(value(text, 'vidgate_team_reserved_credits', { team })).toBe(open_.reduce((sum, t) => sum + t.credits_reserved, 0));
    expect(value(text, 'vidgate_team_reserved_credits', { team })).toBe(400);
    expect(value(text, 'vidgate_team_budget_credits', { team, window: 'day' })).toBe(5000);
    expect(value(text, 'vidgate_team_budget_credits', { team, window: 'month' })).toBe(20_000);
    expect(value(text, 'vidgate_team_budget_remaining_credits', { team, window: 'day' })).toBe(5000 - usage.credits_day);
    expect(value(text, 'vidgate_team_budget_remaining_credits', { team, window: 'month' })).toBe(20_000 - usage.credits_month);
    expect(usage.credits_day).toBe(400);
    // The counters of this process started at 0: nothing it did not see, and no gauge below 0.
    expect(value(text, 'vidgate_tasks_submitted_total', { team, model: MODEL })).toBe(0);
    expect(samples(text).filter((s) => s.value < 0)).toEqual([]);
  });

  it('requires the bearer token on /metrics when metrics.bearer_token_env is set, and refuses to start without it', async (ctx) => {
    const token = 'metrics-token-0123456789';
    const r = await rig(ctx, { metrics: { bearer_token_env: 'METRICS_TOKEN' } }, { METRICS_TOKEN: token });
    const none = await r.h.http.get('/metrics');
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: { code: 'invalid_metrics_token', message: expect.any(String), type: 'authentication_error', param: null } });
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect((await r.h.http.get('/metrics').set(auth(`${token}x`))).status).toBe(401);
    expect((await r.h.http.get('/metrics').set(auth(KEY_A))).status).toBe(401);
    const ok = await r.h.http.get('/metrics').set(auth(token));
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('vidgate_attempts_total');
    expect(ok.text).not.toContain(token);

    const dir = tempDir();
    ctx.onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    const unset = createGateway(testConfig(dir, { metrics: { bearer_token_env: 'METRICS_TOKEN' } }), { log: createLogger('silent'), env: {} });
    await expect(unset).rejects.toThrow(StartupError);
    await expect(unset).rejects.toThrow(/METRICS_TOKEN/);
  });

  it('leaves every team label out with metrics.team_label false', async (ctx) => {
    const r = await rig(ctx, { metrics: { team_label: false } });
    await finished(r.h, await submit(r.h));
    const text = await scrape(r.h);
    expect(samples(text).filter((s) => 'team' in s.labels)).toEqual([]);
    expect(text).not.toContain('vidgate_team_info');
    expect(value(text, 'vidgate_tasks_submitted_total', { model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_tasks_finished_total', { status: 'completed', provider: 'openai', model: MODEL })).toBe(1);
    expect(value(text, 'vidgate_tasks_finished_total', { status: 'failed', provider: 'openai', model: MODEL })).toBe(0);
    expect(value(text, 'vidgate_team_reserved_credits')).toBe(0);
  });

  it('passes promtool check metrics, before and after traffic', async (ctx) => {
    expect(fs.existsSync(PROMTOOL), `${PROMTOOL} (Debian's prometheus package)`).toBe(true);
    const r = await rig(ctx, { teams: { default_quotas: { credits_per_day: 1000 } } });
    /** promtool's complaints, less the allowed ones; its exit status is 3 for lint problems only, 1 for an error. */
    const check = (text: string) => {
      const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      const complaints = `${run.stdout}${run.stderr}`.split('\n').filter((l) => l.trim() !== '' && !PROMTOOL_ALLOWED.has(l.trim()));
      return { status: run.status === 3 && complaints.length === 0 ? 0 : run.status, complaints };
    };
    expect(check(await scrape(r.h))).toEqual({ status: 0, complaints: [] });
    r.openai.setMode({ kind: 'fail_job', code: 'internal_error' }, { route: 'retrieve', times: 1 });
    await finished(r.h, await submit(r.h));
    expect((await r.h.http.get('/v1/tasks/nope')).status).toBe(401);
    expect(check(await scrape(r.h))).toEqual({ status: 0, complaints: [] });
  });

  it("maps every path of the spec back to its template, spelled-out segments before parameters", () => {
    const paths = Object.keys((YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8')) as { paths: object }).paths);
    const routeOf = createRouteTemplates(paths);
    for (const template of paths) expect(routeOf(template.replace(/\{[^}]+\}/g, 'some_id-1'))).toBe(template);
    expect(routeOf('/v1/videos/generations')).toBe('/v1/videos/generations');
    expect(routeOf('/v1/videos/video_1/content?variant=thumbnail')).toBe('/v1/videos/{id}/content');
    for (const path of ['/', '', '/v1', '/v1/tasks/', '/v1/tasks//cancel', '/v1/tasks/a/b/c/d', 'v1/tasks']) expect(routeOf(path), path).toBe('unmatched');
  });
});
