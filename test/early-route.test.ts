// The status poll's early route (src/http/early-route.ts) answers as the general path does. On a gateway without
// response validation (production's setting, where the early route is mounted), a request of the common shape takes
// the early route, and the same request with an empty query string (`?`) takes the general path: both must give the
// same status, headers and body, for answers that succeed and for those that fail.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, KEY_B, auth, startTestGateway } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
let taskId: string;

beforeAll(async () => {
  h = await startTestGateway({}, { validateResponses: false });
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a kite over a beach', duration: 4 });
  expect(res.status).toBe(202);
  taskId = res.body.id;
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

describe('the early route of GET /v1/tasks/{id}', () => {
  it('is mounted before the body parsers and the spec validation', () => {
    const stack = (h.gateway.app as unknown as { router: { stack: { name: string; route?: { path: string } }[] } }).router.stack;
    const early = stack.findIndex((l) => l.route?.path === '/v1/tasks/:id');
    expect(early).toBeGreaterThan(-1);
    expect(early).toBeLessThan(stack.findIndex((l) => l.name === 'jsonParser'));
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

  it('leaves a request with a query string to the general path and its validation', async () => {
    const res = await ask('GET', `/v1/tasks/${taskId}?verbose=1`, auth(KEY_A));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: { type: 'invalid_request_error' } });
  });
});
