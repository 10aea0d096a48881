// HTTP-level tests of the routes around the tasks: catalog, health, metrics, spec, reference page, retention.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { SPEC_PATH } from '../src/http/app';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;

beforeAll(async () => {
  // A retention of about a second, swept often, so that expiry can be observed.
  h = await startTestGateway({ assets: { retention_days: 1.5 / 86400, sweep_interval_ms: 100 } });
});
afterAll(async () => {
  await h.close();
});

describe('catalog', () => {
  it('lists each model with sizes, durations and price ranges', async () => {
    const res = await h.http.get('/v1/models').set(auth(KEY_A));
    expect(res.status).toBe(200);
    expect(res.body.usd_per_credit).toBe(0.01);
    const byId = Object.fromEntries(res.body.data.map((m: { id: string }) => [m.id, m]));
    expect(byId['sora-2']).toEqual({
      id: 'sora-2',
      object: 'model',
      sizes: ['1280x720', '720x1280'],
      qualities: ['720p'],
      durations: [4, 8, 12],
      image_input: true,
      providers: ['simulated'],
      price_usd_per_second: { '720p': { min: 0.1, max: 0.1 } },
    });
    expect(byId['sora-2-pro'].qualities).toEqual(['720p', '1080p']);
    expect(byId['sora-2-pro'].price_usd_per_second).toEqual({ '720p': { min: 0.3, max: 0.3 }, '1080p': { min: 0.5, max: 0.5 } });
  });

  it('needs a key', async () => {
    expect((await h.http.get('/v1/models')).status).toBe(401);
  });
});

describe('operations', () => {
  it('healthz and readyz', async () => {
    expect((await h.http.get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await h.http.get('/readyz')).body).toEqual({ status: 'ok' });
  });

  it('serves the spec it validates with', async () => {
    const spec = await h.http.get('/openapi.json');
    expect(spec.body).toEqual(YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8')));
  });

  it('serves the reference page with Redoc from its npm package, loading nothing from another origin', async () => {
    const page = await h.http.get('/docs');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    // Every URL the page names (scripts, styles, the spec) is a path on this gateway, and each answers.
    const urls = [...page.text.matchAll(/\b(?:src|href|spec-url)="([^"]+)"/g)].map((m) => m[1]!);
    expect([...new Set(urls)].sort()).toEqual(['/docs/redoc.standalone.js', '/openapi.json']);
    expect(page.text).not.toMatch(/https?:\/\//);
    for (const url of urls) expect((await h.http.get(url)).status).toBe(200);
    // The browser is told so too: the page may load scripts, styles, fonts and data only from this origin.
    const csp = page.headers['content-security-policy'] as string;
    expect(csp).toContain("default-src 'none'");
    for (const directive of ['script-src', 'style-src', 'connect-src', 'font-src', 'img-src']) {
      expect(csp).toMatch(new RegExp(`${directive} 'self'`));
    }
    expect(csp).not.toMatch(/https?:|\*/);

    const script = await h.http.get('/docs/redoc.standalone.js').buffer(true).parse((res, done) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done(null, Buffer.concat(chunks)));
    });
    expect(script.headers['content-type']).toMatch(/javascript/);
    const bundle = fs.readFileSync(createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js'));
    expect((script.body as Buffer).equals(bundle)).toBe(true);
  });

  it('exports request latency by route template, tasks by status and provider, upstream calls', async () => {
    const id = (await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'metrics' })).body.id;
    await waitFor(async () => ((await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined));
    const text = (await h.http.get('/metrics')).text;
    expect(text).toMatch(/vidgate_http_request_duration_seconds_count\{method="POST",route="\/v1\/videos\/generations",status="202"\} [1-9]/);
    expect(text).toMatch(/vidgate_http_request_duration_seconds_count\{method="GET",route="\/v1\/tasks\/\{id\}",status="200"\} [1-9]/);
    expect(text).toMatch(/vidgate_tasks_finished_total\{team="[^"]+",status="completed",provider="simulated",model="[^"]+"\} [1-9]/);
    expect(text).toMatch(/vidgate_upstream_request_duration_seconds_count\{provider="simulated",operation="submit",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/vidgate_upstream_request_duration_seconds_count\{provider="simulated",operation="download",outcome="ok"\} [1-9]/);
    expect(text).not.toContain(KEY_A);
  });
});

describe('retention', () => {
  it('deletes a stored video after its retention; the task then answers 410 for the content', async () => {
    const id = (await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'short-lived' })).body.id;
    const done = await waitFor(async () => {
      const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
      return t.status === 'completed' ? t : undefined;
    });
    expect(done.results).toHaveLength(1);
    const expired = await waitFor(async () => {
      const res = await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A));
      return res.status === 410 ? res : undefined;
    }, 10_000);
    expect(expired.body.error).toMatchObject({ type: 'gone_error', code: 'video_expired' });
    expect((await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.results).toEqual([]);
  });
});
