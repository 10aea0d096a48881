// The status-poll lane (src/http/status-poll.ts) answers as the general path does. On a gateway without response
// validation (production's setting, where the lane is in front of Express), a poll of the common shape may be
// answered by the lane, and the same request with an empty query string (`?`) always takes the general path: both
// must give the same status, headers and body, for answers that succeed and for those that fail. Which requests
// reached Express is counted at Express's own entry (`app.handle`), so the test knows which way each one went.
import http from 'node:http';
import net from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { createSqliteStore } from '../src/store/sqlite';
import type { Store } from '../src/store/types';
import { KEY_A, KEY_B, auth, startTestGateway, tempDir, waitFor } from './support/gateway';
import { captureLogger } from './support/log-capture';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
let taskId: string;
/** Requests that reached the Express app, by URL. */
const reachedExpress: string[] = [];
const KEY_SLOW = 'test-key-two-reads-a-minute-0123';

beforeAll(async () => {
  // Every Express app made from here on copies `handle` from this prototype (Express's mixin).
  type Handle = (this: unknown, req: http.IncomingMessage, ...rest: unknown[]) => unknown;
  const application = express.application as unknown as { handle: Handle };
  const handle = application.handle;
  application.handle = function (req, ...rest) {
    reachedExpress.push(req.url!);
    return handle.call(this, req, ...rest);
  };
  // The real clock until the task below has finished, then one that stands still: the per-minute counts and their
  // headers do not move between the two ways of a request.
  let frozenMs: number | undefined;
  h = await startTestGateway({}, { validateResponses: false, now: () => frozenMs ?? Date.now() });
  await h.gateway.teams.addKey(h.teamB.id, { name: 'slow', reads_per_minute: 2 }, KEY_SLOW);
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a kite over a beach', duration: 4 });
  expect(res.status).toBe(202);
  taskId = res.body.id;
  // A finished task, whose answer no longer changes between two polls.
  await waitFor(async () => ((await h.http.get(`/v1/tasks/${taskId}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined));
  frozenMs = Date.now();
});
afterAll(async () => {
  await h.close();
});

/** The answer to a raw request (the path sent as given), with the headers that may differ between two removed. */
function ask(method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const length = body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) };
    const req = http.request(h.url + '/', { method, path, headers: { ...headers, ...length } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        // Each answer has its own request id: that it has one is what both ways share.
        const { date: _date, 'x-ratelimit-remaining': _left, 'keep-alive': _ka, connection: _c, 'x-request-id': id, ...rest } = res.headers;
        resolve({ status: res.statusCode!, headers: { ...rest, 'x-request-id': typeof id === 'string' && id.length > 0 }, body: text });
      });
    });
    req.on('error', reject).end(body);
  });
}

describe('the status-poll lane of GET /v1/tasks/{id} and GET /v1/videos/{id}', () => {
  it('answers a successful poll without Express, and hands every other case to it', async () => {
    const polls = async (method: string) => {
      const text = await (await fetch(`${h.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`vidgate_http_request_duration_seconds_count{method="${method}",route="/v1/tasks/{id}",status="200"}`));
      return Number(line?.split(' ')[1] ?? 0);
    };
    const [gets, heads] = [await polls('GET'), await polls('HEAD')];
    const before = reachedExpress.length;
    expect((await ask('GET', `/v1/tasks/${taskId}`, auth(KEY_A))).status).toBe(200);
    expect((await ask('HEAD', `/v1/tasks/${taskId}`, auth(KEY_A))).status).toBe(200);
    const video = await ask('GET', `/v1/videos/${taskId}`, auth(KEY_A));
    expect([video.status, video.headers['openai-poll-after-ms'], JSON.parse(video.body).object]).toEqual([200, '1000', 'video']);
    const named = await fetch(`${h.url}/v1/tasks/${taskId}`, { headers: { ...auth(KEY_A), 'X-Request-Id': 'poll-7' } });
    expect(named.headers.get('x-request-id')).toBe('poll-7');
    expect(reachedExpress.length).toBe(before);
    // Timed like every other request, HEAD as HEAD.
    expect([await polls('GET'), await polls('HEAD')]).toEqual([gets + 2, heads + 1]);
    for (const [path, headers] of [
      [`/v1/tasks/${taskId}`, auth(KEY_B)], // another team's
      ['/v1/tasks/task_unknown', auth(KEY_A)],
      [`/v1/tasks/${taskId}`, {}],
      [`/v1/tasks/${taskId}?`, auth(KEY_A)],
      [`/v1/tasks/${taskId}/`, auth(KEY_A)],
      ['/v1/tasks/task%5Fx', auth(KEY_A)],
      ['/v1/tasks', auth(KEY_A)],
      [`/v1/videos/${taskId}/content`, auth(KEY_A)],
      ['/v1/videos', auth(KEY_A)],
    ] as const) {
      await ask('GET', path, headers);
      expect(reachedExpress.at(-1), path).toBe(path);
    }
  });

  it('answers every case as the general path does', async () => {
    const cases: [string, string, Record<string, string>, string?][] = [
      ['GET', `/v1/tasks/${taskId}`, auth(KEY_A)],
      ['HEAD', `/v1/tasks/${taskId}`, auth(KEY_A)],
      ['GET', `/v1/tasks/${taskId}`, auth(KEY_B)], // another team's: 404
      ['GET', '/v1/tasks/task_unknown', auth(KEY_A)],
      ['GET', `/v1/tasks/${taskId}`, {}], // no key: 401
      ['GET', `/v1/tasks/${taskId}`, { Authorization: 'Bearer not-a-key' }],
      ['GET', `/v1/tasks/${'x'.repeat(101)}`, auth(KEY_A)], // over the spec's maxLength: 400
      ['GET', '/v1/tasks/%E0%A4%A', auth(KEY_A)], // malformed percent-encoding: 400
      ['GET', `/v1/tasks/${taskId}`, { ...auth(KEY_A), 'Content-Type': 'application/json' }, '{"not json'],
      ['GET', `/v1/tasks/${taskId}`, { ...auth(KEY_A), 'X-Request-Id': 'poll-7' }],
      // The OpenAI door's poll (the SDK's videos.retrieve), with its openai-poll-after-ms header.
      ['GET', `/v1/videos/${taskId}`, auth(KEY_A)],
      ['HEAD', `/v1/videos/${taskId}`, auth(KEY_A)],
      ['GET', `/v1/videos/${taskId}`, auth(KEY_B)],
      ['GET', '/v1/videos/video_unknown', auth(KEY_A)],
      ['GET', `/v1/videos/${taskId}`, {}],
    ];
    for (const [method, path, headers, body] of cases) {
      const early = await ask(method, path, headers, body);
      const general = await ask(method, `${path}?`, headers, body);
      expect({ method, path, ...early }).toEqual({ method, path, ...general });
      expect(early.status, `${method} ${path}`).toBeLessThan(500);
    }
    const ok = await ask('GET', `/v1/tasks/${taskId}`, auth(KEY_A));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ id: taskId, object: 'video.generation.task' });
    expect(ok.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(ok.headers['content-length']).toBe(String(Buffer.byteLength(ok.body)));
  });

  it('counts a poll against the per-minute limit once, whichever way it goes, and refuses past it alike', async () => {
    const own = await h.http.post('/v1/videos/generations').set(auth(KEY_B)).send({ model: 'sora-2', prompt: 'a lantern in fog', duration: 4 });
    const path = `/v1/tasks/${own.body.id}`;
    const first = await ask('GET', path, auth(KEY_SLOW)); // the lane: 1 of 2
    const second = await ask('GET', `${path}?`, auth(KEY_SLOW)); // the general path: 2 of 2
    expect([first.status, second.status]).toEqual([200, 200]);
    expect([first.headers['x-ratelimit-limit'], second.headers['x-ratelimit-limit']]).toEqual(['2', '2']);
    const refused = await ask('GET', path, auth(KEY_SLOW));
    const refusedGeneral = await ask('GET', `${path}?`, auth(KEY_SLOW));
    expect(refused.status).toBe(429);
    expect(refused).toEqual(refusedGeneral);
    expect(JSON.parse(refused.body).error.code).toBe('reads_per_minute_exceeded');
  });

  it('leaves a request with a query string to the general path and its validation', async () => {
    const res = await ask('GET', `/v1/tasks/${taskId}?verbose=1`, auth(KEY_A));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: { type: 'invalid_request_error' } });
  });
});

describe('the status-poll lane over a store that answers slowly (as a remote database does)', () => {
  type Gate = { held: boolean; release: () => void; wait: Promise<void> };
  const gate: Gate = { held: false, release: () => {}, wait: Promise.resolve() };
  const hold = () => {
    gate.held = true;
    gate.wait = new Promise((resolve) => (gate.release = resolve));
  };
  let callerReads = 0;
  let s: Harness;
  const captured = captureLogger('info');
  let id: string;

  beforeAll(async () => {
    const dir = tempDir();
    const store = createSqliteStore(path.join(dir, 'vidgate.db'));
    // The key lookup waits for the test while it is held; every lookup is counted.
    const slow: Store = { ...store, findCaller: async (hash) => (callerReads++, gate.held && (await gate.wait), store.findCaller(hash)) };
    s = await startTestGateway({}, { validateResponses: false, store: slow, log: captured.log });
    id = (await s.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'a slow store', duration: 4 })).body.id;
  });
  afterAll(async () => {
    gate.release();
    await s.close();
  });

  const accessLines = (requestId: string) => captured.entries().filter((e) => e.msg === 'request' && e.request_id === requestId);

  it('logs a poll whose client leaves while the lane reads, once, as aborted', async () => {
    callerReads = 0;
    hold();
    const req = http.request(`${s.url}/v1/tasks/${id}`, { headers: { ...auth(KEY_A), 'X-Request-Id': 'left-early' } });
    req.on('error', () => undefined).end();
    await waitFor(async () => (callerReads > 0 ? true : undefined));
    req.destroy();
    await waitFor(async () => (accessLines('left-early').length > 0 ? true : undefined));
    gate.release();
    gate.held = false;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(accessLines('left-early')).toEqual([expect.objectContaining({ path: `/v1/tasks/${id}`, route: '/v1/tasks/{id}', aborted: true })]);
  });

  it('hands a poll it declines to the general path without reading the key again, timed from its arrival', async () => {
    for (const [requestId, path, key, status] of [
      ['declined-404', '/v1/tasks/task_missing', KEY_A, 404],
      ['declined-401', `/v1/tasks/${id}`, 'not-a-key-0123456789', 401],
    ] as const) {
      callerReads = 0;
      hold();
      const answer = fetch(`${s.url}${path}`, { headers: { ...auth(key), 'X-Request-Id': requestId } });
      await waitFor(async () => (callerReads > 0 ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 150)); // the lane waits on the key for 150 ms at least
      gate.release();
      gate.held = false;
      expect((await answer).status).toBe(status);
      expect(callerReads, requestId).toBe(1);
      const [line] = accessLines(requestId);
      expect(line).toMatchObject({ status, route: '/v1/tasks/{id}' });
      expect(line!.latency_ms as number).toBeGreaterThanOrEqual(150);
    }
  });
});

describe('links of an HTTP/1.0 poll without a Host header', () => {
  it('name the address the request reached, on both ways', async () => {
    const h10 = await startTestGateway({}, { validateResponses: false });
    try {
      const created = await h10.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'no host', duration: 4 });
      await waitFor(async () => ((await h10.http.get(`/v1/tasks/${created.body.id}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined));
      const { port } = new URL(h10.url);
      for (const target of [`/v1/tasks/${created.body.id}`, `/v1/tasks/${created.body.id}?`]) {
        const raw = await new Promise<string>((resolve, reject) => {
          // Written, not ended: the server closes the connection after an HTTP/1.0 answer.
          const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.0\r\nAuthorization: Bearer ${KEY_A}\r\n\r\n`));
          let text = '';
          socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
        });
        const task = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { results?: string[] };
        expect(task.results?.[0], target).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/v1/tasks/`));
      }
    } finally {
      await h10.close();
    }
  });
});
