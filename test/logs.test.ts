// The log as an operator reads it: a real gateway (SQLite file, simulated provider, a real HTTPS webhook receiver)
// logging through the real pino logger into memory, and the real server process logging on its stderr. Every
// request has an id (the client's when sane, returned) and one access line; lines about a task carry its id; admin
// changes leave audit lines; keys, webhook secrets and prompts appear in no line.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli';
import { createLogger, REDACTED, taskLog } from '../src/core/logger';
import { ADMIN_TOKEN, KEY_A, auth, startTestGateway, tempDir, waitFor } from './support/gateway';
import { captureLogger, type LogEntry } from './support/log-capture';
import { startServerProcess } from './support/process';
import { startWebhookReceiver, type Receiver } from './support/webhook-receiver';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** A prompt no log line may repeat, whole or in part. */
const PROMPT = 'A secret-recipe lighthouse painted by Zyxwvut at dusk';
const PROMPT_WORD = 'Zyxwvut';

let h: Harness;
let receiver: Receiver;
const captured = captureLogger('debug');
const entries = () => captured.entries();
/** The access line of the request with this id. */
const accessLine = (requestId: string) => waitFor(async () => entries().find((e) => e.msg === 'request' && e.request_id === requestId));

/** One raw HTTP exchange on the gateway's listener; resolves with all the server wrote before it closed. */
function rawExchange(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(20_000, () => reject(new Error(`no answer; got: ${answer}`)));
  });
}
const headerOf = (raw: string, name: string) => new RegExp(`\\r\\n${name}: ([^\\r]*)\\r\\n`, 'i').exec(raw)?.[1];

beforeAll(async () => {
  receiver = await startWebhookReceiver({
    secrets: async () => {
      const teams = await h.gateway.store.listTeams();
      const current = await Promise.all(teams.map((t) => h.gateway.secrets.current(t.id)));
      return current.flatMap((s) => (s === undefined ? [] : [s.secret]));
    },
  });
  // As in production: responses unchecked, so the status poll may be answered by the status-poll lane (src/http/status-poll.ts).
  h = await startTestGateway(
    { outbound: { trusted_origins: [receiver.origin], ca_file: receiver.caFile }, webhooks: { poll_interval_ms: 50 } },
    { log: captured.log, validateResponses: false },
  );
});

afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

describe('request ids', () => {
  it('one is made when the client sends none, returned in X-Request-Id and on the access line', async () => {
    const res = await h.http.get('/v1/models').set(auth(KEY_A));
    expect(res.status).toBe(200);
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(UUID);
    expect(await accessLine(id)).toMatchObject({ level: 'info', request_id: id });
  });

  it("the client's id is kept when it is a sane token", async () => {
    const given = 'client-42.retry:1_A';
    const res = await h.http.get('/v1/models').set(auth(KEY_A)).set('X-Request-Id', given);
    expect(res.headers['x-request-id']).toBe(given);
    expect(await accessLine(given)).toMatchObject({ path: '/v1/models', status: 200 });
  });

  it('an id that is not a sane token (spaces, quotes, markup, over 128 characters, empty) is replaced by a new one', async () => {
    for (const bad of ['two words', '"quoted"', '<script>alert(1)</script>', 'a'.repeat(129), '', 'id;drop', 'ünïcode']) {
      const res = await h.http.get('/v1/models').set(auth(KEY_A)).set('X-Request-Id', bad);
      const id = res.headers['x-request-id'] as string;
      expect(id, bad).toMatch(UUID);
      await accessLine(id);
    }
    expect(captured.lines.filter((l) => l.includes('<script>') || l.includes('two words'))).toEqual([]);
  });

  it("a 429's access line names the team whose key was over its rate", async () => {
    const team = await h.gateway.teams.createTeam('rate-limited team', { reads_per_minute: 1 });
    const { key } = await h.gateway.teams.addKey(team.id, {});
    // Three reads at once against one a minute: whichever UTC minute they straddle, at least one is refused.
    const ids = ['over-rate-1', 'over-rate-2', 'over-rate-3'];
    const answers: { status: number }[] = [];
    for (const id of ids) answers.push(await h.http.get('/v1/models').set(auth(key)).set('X-Request-Id', id));
    const refused = ids.filter((_, i) => answers[i]!.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const id of refused) expect(await accessLine(id)).toMatchObject({ status: 429, route: '/v1/models', team_id: team.id });
  });

  it('an API key pasted as a request id or into a path never reaches a line', async () => {
    const key = 'vg_' + 'K'.repeat(32);
    const asId = await h.http.get('/v1/models').set(auth(KEY_A)).set('X-Request-Id', key);
    expect(asId.headers['x-request-id']).toMatch(UUID);
    await accessLine(asId.headers['x-request-id'] as string);
    const inPath = await h.http.get(`/v1/tasks/${key}`).set(auth(KEY_A)).set('X-Request-Id', 'key-in-path');
    expect(inPath.status).toBe(404);
    expect(await accessLine('key-in-path')).toMatchObject({ path: `/v1/tasks/${REDACTED}`, route: '/v1/tasks/{id}' });
    expect(captured.lines.filter((l) => l.includes(key))).toEqual([]);
  });

  it('errors carry it too: 401, a validation 400, an unknown route, and the raw 431 answered before Express', async () => {
    const unauthorized = await h.http.get('/v1/models').set('X-Request-Id', 'no-key-1');
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['x-request-id']).toBe('no-key-1');
    expect(await accessLine('no-key-1')).toMatchObject({ status: 401, path: '/v1/models', route: '/v1/models', method: 'GET' });
    expect((await accessLine('no-key-1')).team_id).toBeUndefined();

    const invalid = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).set('X-Request-Id', 'invalid-1').send({ prompt: PROMPT, colour: 1 });
    expect(invalid.status).toBe(400);
    expect(invalid.headers['x-request-id']).toBe('invalid-1');
    expect(await accessLine('invalid-1')).toMatchObject({ status: 400, method: 'POST', path: '/v1/videos/generations', route: '/v1/videos/generations', team_id: expect.stringMatching(/^team_/) });

    const missing = await h.http.get('/v1/no-such-route').set(auth(KEY_A)).set('X-Request-Id', 'missing-1');
    expect(missing.status).toBe(404);
    expect(await accessLine('missing-1')).toMatchObject({ status: 404, path: '/v1/no-such-route', route: 'unmatched' });

    const raw = await rawExchange(h.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 431 /);
    const rawId = headerOf(raw, 'X-Request-Id')!;
    expect(rawId).toMatch(UUID);
    expect(await accessLine(rawId)).toMatchObject({ level: 'info', status: 431, code: 'headers_too_large' });
  });
});

describe('access lines', () => {
  it('one per request with method, path, route, status, latency and team; never the key or the query string', async () => {
    const listed = await h.http.get('/v1/tasks?limit=3&status=completed').set(auth(KEY_A)).set('X-Request-Id', 'list-1');
    expect(listed.status).toBe(200);
    const line = await accessLine('list-1');
    expect(line).toMatchObject({ level: 'info', msg: 'request', method: 'GET', path: '/v1/tasks', route: '/v1/tasks', status: 200, team_id: expect.stringMatching(/^team_/) });
    expect(line.latency_ms).toBeGreaterThanOrEqual(0);
    const text = captured.lines.find((l) => l.includes('"list-1"'))!;
    expect(text).not.toContain('limit=');
    expect(text).not.toContain(KEY_A);
    expect(text).not.toMatch(/authorization/i);
    expect(captured.lines.filter((l) => l.includes('"request_id":"list-1"') && l.includes('"msg":"request"'))).toHaveLength(1);
  });

  it('the status poll, answered by the status-poll lane, has its access line with the route and the team', async () => {
    const task = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a short one', aspect_ratio: '16:9', duration: 4 });
    const res = await h.http.get(`/v1/tasks/${task.body.id}`).set(auth(KEY_A)).set('X-Request-Id', 'poll-1');
    expect(res.status).toBe(200);
    expect(await accessLine('poll-1')).toMatchObject({ level: 'info', method: 'GET', path: `/v1/tasks/${task.body.id}`, route: '/v1/tasks/{id}', status: 200, team_id: expect.stringMatching(/^team_/) });
  });

  it('HEAD is logged as HEAD; the probes are logged at debug', async () => {
    await h.http.head('/v1/models').set(auth(KEY_A)).set('X-Request-Id', 'head-1');
    expect(await accessLine('head-1')).toMatchObject({ method: 'HEAD', status: 200 });
    await h.http.get('/healthz').set('X-Request-Id', 'probe-1');
    expect(await accessLine('probe-1')).toMatchObject({ level: 'debug', path: '/healthz', status: 200 });
  });
});

describe('audit lines', () => {
  it('every admin change leaves one, with who, what and which fields, and never a key or a secret', async () => {
    const admin = auth(ADMIN_TOKEN);
    const team = (await h.http.post('/admin/teams').set(admin).send({ name: 'audited', quotas: { credits_per_day: 100, max_concurrent: 2 } })).body;
    await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ quotas: { credits_per_month: 1000 } });
    const key = (await h.http.post(`/admin/teams/${team.id}/keys`).set(admin).send({ name: 'ci', quotas: { submits_per_minute: 10 } })).body;
    await h.http.patch(`/admin/keys/${key.id}`).set(admin).send({ name: 'ci-2', allowed_models: ['sora-2'] });
    const rotated = (await h.http.post(`/admin/keys/${key.id}/rotate`).set(admin).send({ grace_seconds: 60 })).body;
    await h.http.post(`/admin/keys/${rotated.id}/revoke`).set(admin);
    const secret = (await h.http.post(`/admin/teams/${team.id}/webhook-secret`).set(admin).send({ grace_s: 30 })).body;
    await h.http.post(`/admin/teams/${team.id}/adjustments`).set(admin).set('X-Request-Id', 'adjust-1').send({ credits: -5, note: 'goodwill refund for ticket 7' });
    await h.http.post('/admin/ledger/verify').set(admin);
    // Reads change nothing: no audit line.
    await h.http.get(`/admin/teams/${team.id}/keys`).set(admin);
    await h.http.get(`/admin/teams/${team.id}/webhook-secret`).set(admin);

    const audits = entries().filter((e) => e.audit === true && (e.team_id === team.id || e.action === 'ledger.verified'));
    const byAction = (action: string) => audits.filter((e) => e.action === action);
    expect(audits.map((e) => e.action)).toEqual([
      'team.created', 'team.updated', 'key.created', 'key.updated', 'key.rotated', 'key.revoked', 'webhook_secret.rotated', 'credits.adjusted', 'ledger.verified',
    ]);
    for (const e of audits) expect(e).toMatchObject({ level: 'info', actor: 'admin_token', request_id: expect.any(String) });
    expect(byAction('team.created')[0]).toMatchObject({ fields: ['name', 'credits_per_day', 'max_concurrent'], quotas: { credits_per_day: 100, max_concurrent: 2 } });
    expect(byAction('team.updated')[0]).toMatchObject({ fields: ['credits_per_month'], quotas: { credits_per_month: 1000 } });
    expect(byAction('key.created')[0]).toMatchObject({ key_id: key.id, quotas: { submits_per_minute: 10 } });
    expect(byAction('key.updated')[0]).toMatchObject({ key_id: key.id, fields: ['name', 'allowed_models'] });
    expect(byAction('key.rotated')[0]).toMatchObject({ key_id: key.id, detail: { new_key_id: rotated.id, grace_s: 60 } });
    expect(byAction('key.revoked')[0]).toMatchObject({ key_id: rotated.id });
    expect(byAction('webhook_secret.rotated')[0]).toMatchObject({ detail: { grace_s: 30 } });
    expect(byAction('credits.adjusted')[0]).toMatchObject({ request_id: 'adjust-1', fields: ['credits', 'note'], detail: { credits: -5 } });

    for (const line of captured.lines) {
      for (const material of [key.key, rotated.key, secret.secret, ADMIN_TOKEN, 'goodwill refund']) expect(line).not.toContain(material);
    }
  });

  it('changes made with the CLI say so', async () => {
    const out: string[] = [];
    const code = await runCli(['teams', 'create', 'from-cli', '--credits-per-day', '50', '--json'], { VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN, VIDGATE_URL: h.url }, { out: (t) => out.push(t), err: (t) => out.push(t) });
    expect(code, out.join('')).toBe(0);
    const id = (JSON.parse(out.join('')) as { id: string }).id;
    expect(entries().find((e) => e.audit === true && e.team_id === id)).toMatchObject({ action: 'team.created', actor: 'admin_token', via: 'cli', quotas: { credits_per_day: 50 } });
  });
});

describe('a task from submission to webhook', () => {
  it('its lines carry task_id and team_id, and no line has the API key, the webhook secret or the prompt', async () => {
    const team = (await h.gateway.store.findTeamByName('default'))!.id;
    const secret = (await h.http.post(`/admin/teams/${team}/webhook-secret`).set(auth(ADMIN_TOKEN)).send({})).body.secret as string;
    expect(secret).toMatch(/^whsec_/);
    const submitted = await h.http
      .post('/v1/videos/generations')
      .set(auth(KEY_A))
      .set('X-Request-Id', 'submit-1')
      .send({ model: 'sora-2', prompt: PROMPT, aspect_ratio: '16:9', duration: 4, callback_url: `${receiver.origin}/hook` });
    expect(submitted.status).toBe(202);
    const taskId = submitted.body.id as string;
    await waitFor(async () => (receiver.deliveries.some((d) => (d.body as { id?: string }).id === taskId) ? true : undefined), 30_000);
    const about = await waitFor(async () => {
      const lines = entries().filter((e) => e.task_id === taskId);
      return lines.some((e) => e.msg === 'webhook delivered') ? lines : undefined;
    });
    expect(about.map((e) => e.msg)).toEqual(expect.arrayContaining(['task accepted', 'task sent to provider', 'task completed', 'webhook delivered']));
    for (const e of about) expect(e.team_id, e.msg).toBe(team);
    expect(await accessLine('submit-1')).toMatchObject({ status: 202, team_id: team });

    // The whole log so far: a full run, errors, admin changes.
    expect(captured.lines.length).toBeGreaterThan(50);
    for (const line of captured.lines) {
      expect(line).not.toContain(KEY_A);
      expect(line).not.toContain(secret);
      expect(line).not.toContain(secret.slice('whsec_'.length));
      expect(line).not.toContain(PROMPT_WORD);
    }
  });
});

describe('levels and redaction', () => {
  it('info hides the debug lines that debug shows', async () => {
    const info = captureLogger('info');
    const debug = captureLogger('debug');
    for (const { log } of [info, debug]) {
      log.debug({ detail: 1 }, 'a debug line');
      log.info('an info line');
    }
    expect(info.entries().map((e) => e.msg)).toEqual(['an info line']);
    expect(debug.entries().map((e) => [e.level, e.msg])).toEqual([['debug', 'a debug line'], ['info', 'an info line']]);
    expect(debug.entries()[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('fields named like credentials or prompts are redacted, at the top and one level down', () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (l: string) => void lines.push(l) });
    log.info({ authorization: 'Bearer s3cr3t', prompt: 'p1', nested: { api_key: 'k1', secret: 'w1', prompt: 'p2' } }, 'careless');
    const e = JSON.parse(lines[0]!) as LogEntry;
    expect(e).toMatchObject({ authorization: REDACTED, prompt: REDACTED, nested: { api_key: REDACTED, secret: REDACTED, prompt: REDACTED } });
    expect(lines[0]).not.toMatch(/s3cr3t|p1|k1|w1|p2/);
  });

  it("a provider's error text that quotes the prompt (as written or JSON-escaped) is logged without it", () => {
    const { log, lines } = captureLogger('info');
    const prompt = 'SECRET PROMPT: a "red" kite\nover the sea';
    const task = { id: 'task_1', owner_id: 'team_1', request_json: JSON.stringify({ model: 'sora-2', prompt }) };
    const quoted = `HTTP 500: upstream exploded on '${prompt}'; body {"object":"video","prompt":${JSON.stringify(prompt)}}`;
    taskLog(log, task).warn({ provider: 'p', code: 'http_500', error: quoted }, 'provider failure');
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('SECRET PROMPT');
    expect(JSON.parse(lines[0]!)).toMatchObject({ task_id: 'task_1', error: `HTTP 500: upstream exploded on '${REDACTED}'; body {"object":"video","prompt":"${REDACTED}"}` });
  });
});

describe('the real server process', () => {
  it('writes JSON lines on stderr at VIDGATE_LOG_LEVEL: debug shows the probes; a body cut at the timeout keeps its id', async () => {
    const dir = tempDir();
    const server = await startServerProcess({
      VIDGATE_DATA_DIR: dir,
      VIDGATE_SERVER__PORT: '0',
      VIDGATE_AUTH__API_KEYS: KEY_A,
      VIDGATE_LOG_LEVEL: 'debug',
      VIDGATE_SERVER__HEADERS_TIMEOUT_MS: '1000',
      VIDGATE_SERVER__REQUEST_TIMEOUT_MS: '1500',
    });
    try {
      const res = await fetch(`${server.url}/healthz`, { headers: { 'X-Request-Id': 'proc-probe-1' } });
      expect(res.headers.get('x-request-id')).toBe('proc-probe-1');
      const models = await fetch(`${server.url}/v1/models?signature=0badc0ffee`, { headers: auth(KEY_A) });
      const modelsId = models.headers.get('x-request-id')!;
      const parsed = () => server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogEntry);
      const probe = await waitFor(async () => parsed().find((e) => e.request_id === 'proc-probe-1'));
      expect(probe).toMatchObject({ level: 'debug', msg: 'request', method: 'GET', path: '/healthz', status: 200, pid: server.child.pid });
      expect(await waitFor(async () => parsed().find((e) => e.request_id === modelsId))).toMatchObject({ level: 'info', path: '/v1/models', status: 400 });

      // Node answers the stalled body (408) on the socket, under the id Express gave the request, logged once.
      const stalled = await rawExchange(
        server.url,
        `POST /v1/estimates HTTP/1.1\r\nHost: x\r\nX-Request-Id: stalled-1\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
      );
      expect(stalled).toMatch(/^HTTP\/1\.1 408 /);
      expect(headerOf(stalled, 'X-Request-Id')).toBe('stalled-1');
      expect(await waitFor(async () => parsed().find((e) => e.request_id === 'stalled-1' && e.msg === 'request'))).toMatchObject({ status: 408, path: '/v1/estimates', aborted: true });
      expect(parsed().filter((e) => e.request_id === 'stalled-1' && e.msg === 'request')).toHaveLength(1);

      expect(server.output()).not.toContain(KEY_A);
      expect(server.output()).not.toContain('0badc0ffee');
      expect(parsed().find((e) => e.msg === 'vidgate started')).toMatchObject({ level: 'info', url: server.url, store: 'sqlite', providers: ['simulated'] });

      // The start, the drain and the stop each leave a line.
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
      expect(parsed().map((e) => e.msg).filter((m) => m.startsWith('vidgate '))).toEqual(['vidgate started', 'vidgate draining', 'vidgate stopped']);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
