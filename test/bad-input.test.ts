// No input gets a 500 or an HTML page: each kind of fault a fuzzer found, over every route of the spec that it can
// reach, so that routes added later are covered too. HTTP-level through the app, and raw sockets to the listening
// server for what Node answers before Express (oversized headers, stalled bodies, garbage).
import net from 'node:net';
import zlib from 'node:zlib';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { SPEC_PATH } from '../src/http/app';
import { captureLogger } from './support/log-capture';
import { ADMIN_TOKEN, KEY_A, auth, startTestGateway, tempDir, waitFor } from './support/gateway';
import { startServerProcess } from './support/process';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- free-form spec
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const spec: Json = YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8'));
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const resolve = (node: Json | undefined): Json | undefined =>
  node?.$ref ? resolve((node.$ref as string).slice(2).split('/').reduce<Json>((n, k) => n[k], spec)) : node;

/** Every operation of the spec, with a concrete URL (path parameters from their examples) and the credentials it needs. */
const operations = Object.entries<Json>(spec.paths).flatMap(([template, item]) =>
  METHODS.filter((m) => item[m]).map((method) => {
    const op = item[method] as Json;
    const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) => resolve(p)!);
    const url = template.replace(/\{(\w+)\}/g, (_, name) => String(params.find((p) => p.name === name)?.example ?? 'x'));
    const credentials = template.startsWith('/admin') ? auth(ADMIN_TOKEN) : template.startsWith('/v1') ? auth(KEY_A) : {};
    return { template, method, op, params, url, credentials, body: resolve(op.requestBody?.content?.['application/json']?.schema) };
  }),
);
const credentialsOf = (template: string) => (template.startsWith('/admin') ? auth(ADMIN_TOKEN) : template.startsWith('/v1') ? auth(KEY_A) : {});

/** The smallest valid body of a schema: its required properties, from their examples. */
function exampleBody(schema: Json): Json {
  return Object.fromEntries((schema.required ?? []).map((name: string) => [name, resolve(schema.properties[name])!.example]));
}

/** Every integer or number property of a body schema, one level into nested objects: `['quotas', 'credits_per_day']`. */
function numericFields(schema: Json, path: string[] = []): string[][] {
  return Object.entries<Json>(schema.properties ?? {}).flatMap(([name, prop]) => {
    const p = resolve(prop)!;
    const types = [p.type].flat();
    if (types.includes('integer') || types.includes('number')) return [[...path, name]];
    return p.properties && path.length === 0 ? numericFields(p, [name]) : [];
  });
}

function expectErrorShape(res: { status: number; headers: Record<string, string>; body: Json }, status: number, code?: string) {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body).toEqual({ error: { code: code ?? expect.any(String), message: expect.any(String), type: expect.any(String), param: res.body.error?.param ?? null } });
  expect(['string', 'object']).toContain(typeof res.body.error.param);
}

/** Sends raw bytes to the listening server and resolves with everything it answers before closing. */
function rawExchange(url: string, write: (socket: net.Socket) => void, timeoutMs = 20_000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect(Number(port), hostname, () => write(socket));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
    socket.on('close', () => resolvePromise(answer));
    socket.on('error', reject);
    socket.setTimeout(timeoutMs, () => reject(new Error(`no answer within ${timeoutMs} ms; got: ${answer}`)));
  });
}

const jsonOf = (raw: string) => JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));

let h: Harness;
const captured = captureLogger();
const log = captured.log;

beforeAll(async () => {
  // As in production: without the check of responses, so the status poll may be answered by the status-poll lane (src/http/status-poll.ts).
  h = await startTestGateway({ server: { headers_timeout_ms: 1000, request_timeout_ms: 1500 } }, { log, validateResponses: false });
});
afterAll(async () => {
  await h.close();
});

describe('bodies', () => {
  const bodyRoutes = operations.filter((o) => o.method !== 'get');

  it('a body that is not the gzip its Content-Encoding says answers 400 on every route that takes one', async () => {
    expect(bodyRoutes.length).toBeGreaterThanOrEqual(11);
    for (const route of bodyRoutes) {
      const res = await h.http[route.method as 'post'](route.url)
        .set(route.credentials)
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', 'gzip')
        .send('{"this": "is not gzip"}');
      expectErrorShape(res, 400, 'invalid_encoding');
      expect(res.body.error.param).toBe('Content-Encoding');
    }
  });

  it('a multipart body that cannot be read, or is compressed, answers 4xx on every route that takes multipart', async () => {
    const multipartRoutes = bodyRoutes.filter((r) => r.op.requestBody?.content?.['multipart/form-data']);
    expect(multipartRoutes.map((r) => r.template)).toEqual(expect.arrayContaining(['/v1/videos', '/v1/videos/{id}/remix']));
    const part = (name: string, value: string) => `--XX\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const file = `--XX\r\nContent-Disposition: form-data; name="input_reference"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nxx\r\n`;
    const cases: { body: string | Buffer; encoding?: string; status: number; code: string }[] = [
      { body: `${part('prompt', 'hello')}`, status: 400, code: 'invalid_multipart' }, // no closing boundary
      { body: '--XX\r\nno header here\r\n\r\nx\r\n--XX--\r\n', status: 400, code: 'invalid_multipart' },
      { body: '{"prompt": "json in a multipart body"}', status: 400, code: 'invalid_multipart' },
      { body: `${part('prompt', 'two files')}${file}${file}--XX--\r\n`, status: 400, code: 'invalid_multipart' },
      { body: zlib.gzipSync(`${part('prompt', 'gzip')}--XX--\r\n`), encoding: 'gzip', status: 415, code: 'unsupported_media_type' },
      { body: `${part('prompt', 'claims gzip')}--XX--\r\n`, encoding: 'gzip', status: 415, code: 'unsupported_media_type' },
    ];
    for (const route of multipartRoutes) {
      for (const c of cases) {
        // Over the socket, so that the bytes are sent as they are.
        const res = await fetch(`${h.url}${route.url}`, {
          method: 'POST',
          headers: { ...route.credentials, 'Content-Type': 'multipart/form-data; boundary=XX', ...(c.encoding && { 'Content-Encoding': c.encoding }) },
          body: c.body,
        });
        const body = (await res.json()) as Json;
        expect({ route: route.template, body: String(c.body).slice(0, 30), status: res.status, code: body.error?.code }).toEqual({
          route: route.template, body: String(c.body).slice(0, 30), status: c.status, code: c.code,
        });
      }
    }
  });

  it('a body that is gzip is read', async () => {
    const body = zlib.gzipSync(JSON.stringify({ prompt: 'a lighthouse at night' }));
    // Over the socket: supertest would serialize a Buffer as JSON.
    const res = await fetch(`${h.url}/v1/estimates`, {
      method: 'POST',
      headers: { ...auth(KEY_A), 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      body,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ object: 'estimate' });
  });

  it('a number that is not finite or not exact answers 400 naming the field, in every body of the spec', async () => {
    const withNumbers = bodyRoutes.filter((r) => r.body && numericFields(r.body).length > 0);
    expect(withNumbers.map((r) => r.template)).toEqual(expect.arrayContaining(['/admin/teams', '/admin/teams/{team_id}/keys', '/admin/keys/{key_id}']));
    for (const route of withNumbers) {
      for (const field of numericFields(route.body!)) {
        // 1e400 parses as Infinity; 1e300 and 2^63 as integers SQLite cannot take; 2^53 + 1 arrives rounded.
        for (const raw of ['1e400', '-1e400', '1e300', '9223372036854775808', '9007199254740993']) {
          const body: Json = exampleBody(route.body!);
          if (field.length === 2) body[field[0]!] = { [field[1]!]: '__BAD__' };
          else body[field[0]!] = '__BAD__';
          const res = await h.http[route.method as 'post'](route.url)
            .set(route.credentials)
            .set('Content-Type', 'application/json')
            .send(JSON.stringify(body).replace('"__BAD__"', raw));
          expectErrorShape(res, 400);
          expect({ route: route.template, raw, param: res.body.error.param }).toEqual({ route: route.template, raw, param: field.join('.') });
        }
      }
    }
  });

  it('the largest prompt the spec allows fits the default body limit on every route that takes one, raw or escaped', async () => {
    // 32 000 code points of 4 UTF-8 bytes (128 000 bytes), and the same written as JSON escapes (384 000 bytes).
    const maxLength = resolve(spec.components.schemas.GenerationRequest)!.properties.prompt.maxLength as number;
    const raw = '😀'.repeat(maxLength);
    const escaped = (body: Json) => JSON.stringify({ ...body, prompt: 'PROMPT' }).replace('PROMPT', '\\ud83d\\ude00'.repeat(maxLength));
    const routes = [
      { url: '/v1/estimates', status: 200, body: { model: 'sora-2', duration: 4 } },
      { url: '/v1/videos/generations', status: 202, body: { model: 'sora-2', duration: 4, cache: false } },
      { url: '/v1/videos', status: 200, body: { model: 'sora-2', seconds: '4' } },
    ];
    for (const route of routes) {
      for (const body of [JSON.stringify({ ...route.body, prompt: raw }), escaped(route.body)]) {
        const res = await h.http.post(route.url).set(auth(KEY_A)).set('Content-Type', 'application/json').send(body);
        expect(res.status, `${route.url} (${Buffer.byteLength(body)} bytes): ${JSON.stringify(res.body).slice(0, 300)}`).toBe(route.status);
      }
      // One code point more is refused by the spec's limit, not by the body's size.
      const over = await h.http.post(route.url).set(auth(KEY_A)).send({ ...route.body, prompt: `${raw}😀` });
      expectErrorShape(over, 400, 'invalid_value');
      expect(over.body.error.param).toBe('prompt');
    }
  });

  it('refuses integers beyond 2^53 instead of rounding them, and stores the largest allowed exactly', async () => {
    const res = await h.http.post('/admin/teams').set(auth(ADMIN_TOKEN)).send({ name: 'big-quota', quotas: { credits_per_day: 1_000_000_000_000 } });
    expect(res.status).toBe(201);
    expect(res.body.quotas.credits_per_day).toBe(1_000_000_000_000);
    const tooBig = await h.http.post('/admin/teams').set(auth(ADMIN_TOKEN)).send({ name: 'too-big', quotas: { credits_per_day: 1_000_000_000_001 } });
    expectErrorShape(tooBig, 400, 'invalid_value');
    const far = await h.http.post(`/admin/teams/${res.body.id}/keys`).set(auth(ADMIN_TOKEN)).send({ expires_at: 253402300800 });
    expectErrorShape(far, 400, 'invalid_value');
    expect(far.body.error.param).toBe('expires_at');
  });
});

describe('query parameters', () => {
  it('a numeric query parameter that is not finite or not exact answers 400, on every route of the spec', async () => {
    const numeric = operations.flatMap((o) =>
      o.params.filter((p) => p.in === 'query' && ['integer', 'number'].includes(resolve(p.schema)!.type)).map((p) => ({
        ...o,
        name: p.name as string,
        // The other required query parameters at their documented examples, so that only this one is at fault.
        others: o.params.filter((q) => q.in === 'query' && q.required && q.name !== p.name).map((q) => `&${q.name}=${encodeURIComponent(String(q.example))}`).join(''),
      })),
    );
    expect(numeric.map((n) => `${n.template}?${n.name}`)).toContain('/v1/tasks?limit');
    for (const { url, credentials, name, others } of numeric) {
      for (const raw of ['Infinity', '-Infinity', '1e309', '1e400', 'NaN', '9007199254740993', '1e300']) {
        const res = await h.http.get(`${url}?${name}=${raw}${others}`).set(credentials);
        expectErrorShape(res, 400);
        expect({ raw, param: res.body.error.param }).toEqual({ raw, param: name });
      }
    }
  });
});

describe('methods and paths', () => {
  it('HEAD answers as GET without a body, on every GET route of the spec', async () => {
    const gets = operations.filter((o) => o.method === 'get' && !o.template.includes('{'));
    expect(gets.map((o) => o.template)).toEqual(expect.arrayContaining(['/v1/models', '/healthz', '/openapi.json']));
    for (const route of gets) {
      const [head, get] = [await h.http.head(route.url).set(route.credentials), await h.http.get(route.url).set(route.credentials)];
      expect({ route: route.template, status: head.status, type: head.headers['content-type'] }).toEqual({ route: route.template, status: get.status, type: get.headers['content-type'] });
      expect(head.text ?? '').toBe('');
    }
  });

  it('a method a path does not offer answers 405 in the error shape, with Allow listing those it does', async () => {
    for (const [template, item] of Object.entries<Json>(spec.paths)) {
      const offered = METHODS.filter((m) => item[m]);
      const url = operations.find((o) => o.template === template)!.url;
      for (const method of METHODS.filter((m) => !item[m])) {
        const res = await h.http[method](url).set(credentialsOf(template));
        expectErrorShape(res, 405, 'method_not_allowed');
        const allow = res.headers.allow?.split(', ').sort();
        expect({ template, method, allow }).toEqual({ template, method, allow: offered.map((m) => m.toUpperCase()).sort() });
      }
    }
  });

  it('unknown paths and malformed URLs answer JSON, never an HTML page', async () => {
    for (const [method, url, credentials] of [
      ['get', '/nope', {}],
      ['post', '/nope', {}],
      ['get', '/v1/nope', auth(KEY_A)],
      ['delete', '/admin/nope', auth(ADMIN_TOKEN)],
      ['get', '/docs/nope.js', {}],
    ] as const) {
      expectErrorShape(await h.http[method](url).set(credentials), 404, 'route_not_found');
    }
    // Malformed percent-encoding in a path parameter, on every route that has one, with a key and without.
    for (const url of ['/v1/tasks/%E0%A4%A', '/v1/tasks/%ZZ', '/v1/tasks/%ZZ/content', '/v1/videos/%ZZ', '/v1/videos/%ZZ/content']) {
      const res = await h.http.get(url).set(auth(KEY_A));
      expectErrorShape(res, 400, 'invalid_value');
      expect(res.body.error, url).toMatchObject({ message: 'a path parameter is not valid percent-encoding', param: null });
      expect((await h.http.head(url).set(auth(KEY_A))).status).toBe(400);
      expect([400, 401]).toContain((await h.http.get(url)).status);
    }
  });
});

describe('backend errors', () => {
  it('two concurrent creations of one team name: one 201, the others 409 team_exists', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => h.http.post('/admin/teams').set(auth(ADMIN_TOKEN)).send({ name: 'racers' })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const a of answers.filter((x) => x.status === 409)) expectErrorShape(a, 409, 'team_exists');
  });

  it('the race is closed by the store: a unique violation reaches the domain as one, and the client as 409', async () => {
    // Both check the name before either writes: the second write is refused by the store's unique constraint.
    const results = await Promise.allSettled([h.gateway.teams.createTeam('twins'), h.gateway.teams.createTeam('twins')]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ status: 409, code: 'team_exists' });
    const renamed = await Promise.allSettled([
      h.gateway.teams.createTeam('one').then((t) => h.gateway.teams.updateTeam(t.id, { name: 'taken' })),
      h.gateway.teams.createTeam('two').then((t) => h.gateway.teams.updateTeam(t.id, { name: 'taken' })),
    ]);
    expect(renamed.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((renamed.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ status: 409, code: 'team_exists' });
  });
});

describe('what Node answers before Express', () => {
  it('request headers over 16 KB answer 431 in the error shape', async () => {
    const raw = await rawExchange(h.url, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    expect(raw).toMatch(/^HTTP\/1\.1 431 /);
    expect(raw).toMatch(/\r\nContent-Type: application\/json/i);
    expect(jsonOf(raw).error).toMatchObject({ code: 'headers_too_large', type: 'invalid_request_error' });
  });

  it('a request that is not HTTP answers 400 in the error shape', async () => {
    const raw = await rawExchange(h.url, (s) => s.write('HELLO THERE\r\n\r\n'));
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(jsonOf(raw).error.code).toBe('malformed_request');
  });

  it('a stalled body is cut at server.request_timeout_ms with 408 in the error shape', async () => {
    const started = Date.now();
    const raw = await rawExchange(h.url, (s) =>
      s.write(`POST /v1/estimates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":`),
    );
    expect(raw).toMatch(/^HTTP\/1\.1 408 /);
    expect(jsonOf(raw).error.code).toBe('request_timeout');
    // 1.5 s configured, checked every second: far below Node's default of 300 s, with room for a busy machine.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a client that hangs up mid-body is logged at info, not as an error', async () => {
    const before = captured.lines.length;
    await rawExchange(h.url, (s) => {
      s.write(`POST /v1/estimates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pro`);
      setTimeout(() => s.destroy(), 100);
    });
    const entry = await waitFor(async () => captured.entries().slice(before).find((e) => e.msg === 'client closed the connection'));
    expect(entry.level).toBe('info');
    expect(captured.entries().slice(before).filter((e) => e.level === 'error')).toEqual([]);
  });
});

describe('the video of a task that will never have one', () => {
  it('a failed task answers 409 task_failed, saying it will never have a video', async () => {
    const g = await startTestGateway({ providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 100, fps: 4, failure_rate: 1, failure_kind: 'terminal' }] });
    try {
      const id = (await g.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'doomed' })).body.id as string;
      await waitFor(async () => ((await g.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.status === 'failed' ? true : undefined));
      const res = await g.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A));
      expectErrorShape(res, 409, 'task_failed');
      expect(res.body.error.message).toMatch(/never have a video/);
    } finally {
      await g.close();
    }
  });
});

describe('the real server process', () => {
  it('takes its timeouts from the environment and answers oversized headers, stalled bodies and wrong methods in JSON', async () => {
    const dataDir = tempDir();
    const server = await startServerProcess({
      VIDGATE_DATA_DIR: dataDir,
      VIDGATE_SERVER__PORT: '0',
      VIDGATE_AUTH__API_KEYS: KEY_A,
      VIDGATE_LOG_LEVEL: 'info',
      VIDGATE_SERVER__HEADERS_TIMEOUT_MS: '1000',
      VIDGATE_SERVER__REQUEST_TIMEOUT_MS: '2000',
    });
    try {
      const big = await rawExchange(server.url, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
      expect(big).toMatch(/^HTTP\/1\.1 431 /);
      expect(jsonOf(big).error.code).toBe('headers_too_large');

      const started = Date.now();
      const stalled = await rawExchange(server.url, (s) =>
        s.write(`POST /v1/estimates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`),
      );
      expect(stalled).toMatch(/^HTTP\/1\.1 408 /);
      expect(jsonOf(stalled).error.code).toBe('request_timeout');
      expect(Date.now() - started).toBeLessThan(20_000);

      const post = await fetch(`${server.url}/healthz`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET');
      expect(((await post.json()) as Json).error.code).toBe('method_not_allowed');

      // The stalled client was cut off by the server: not an error of the server's.
      const levels = server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).level);
      expect(levels).not.toContain('error');
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
