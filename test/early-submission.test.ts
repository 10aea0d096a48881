// The early submission route (src/http/early-submission.ts) answers as the general path does. On a gateway without
// response validation (production's setting, where the route is mounted), a create of the common shape may take the
// early route, and the same request with an empty query string (`?`) always takes the general path: both must give
// the same status, headers and body (a new task's own id and times apart), for answers that succeed and for those
// that fail. Which requests reached express-openapi-validator is counted at its route matching (path-to-regexp as
// the library loads it), so the test knows which way each one went.
import { createRequire } from 'node:module';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';
import { checkTeamLedger } from './support/ledger-check';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
/** Route matchings made by express-openapi-validator (each request it sees matches the spec's routes). */
let libraryMatches = 0;
const KEY_SLOW = 'test-key-two-submits-a-minute-01';
const PATH = '/v1/videos/generations';

beforeAll(async () => {
  const midMinuteMs = Math.floor(Date.now() / 60_000) * 60_000 + 30_000;
  h = await startTestGateway({}, { validateResponses: false, now: () => midMinuteMs });
  await h.gateway.teams.addKey(h.teamB.id, { name: 'slow', submits_per_minute: 2 }, KEY_SLOW);
  const fromValidator = createRequire(createRequire(import.meta.url).resolve('express-openapi-validator'));
  const module = fromValidator('path-to-regexp') as { pathToRegexp: (...args: unknown[]) => unknown };
  const match = module.pathToRegexp;
  module.pathToRegexp = (...args) => (libraryMatches++, match(...args));
});
afterAll(async () => {
  await h.close();
});

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** The answer to a raw request, without the headers that differ between two answers; `libraryMatches` before and after. */
function ask(path: string, headers: Record<string, string>, body?: string): Promise<Answer & { tookLibrary: boolean }> {
  const before = libraryMatches;
  return new Promise((resolve, reject) => {
    const length = body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) };
    const req = http.request(h.url + '/', { method: 'POST', path, headers: { ...headers, ...length } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const { date: _d, 'x-ratelimit-remaining': _left, 'keep-alive': _ka, connection: _c, 'x-request-id': id, 'content-length': _len, ...rest } = res.headers;
        resolve({ status: res.statusCode!, headers: { ...rest, 'x-request-id': typeof id === 'string' && id.length > 0 }, body: text, tookLibrary: libraryMatches > before });
      });
    });
    req.on('error', reject).end(body);
  });
}

/** A new task's body with what differs from one task to the next (its id and times) blanked. */
const sameShape = ({ status, headers, body: text }: Answer) => {
  const a = { status, headers, body: text };
  if (a.status >= 300) return { ...a, body: JSON.parse(a.body) as unknown };
  const task = JSON.parse(a.body) as Record<string, unknown>;
  return { ...a, body: { ...task, id: 'task', created: 0, task_info: { ...(task.task_info as object), created_at: 0, updated_at: 0 } } };
};

const json = (key: string, extra: Record<string, string> = {}) => ({ ...auth(key), 'Content-Type': 'application/json', ...extra });

describe('the early submission route of POST /v1/videos/generations', () => {
  it('answers a valid create without the library, and leaves every other request to the general path', async () => {
    const ok = await ask(PATH, json(KEY_A), JSON.stringify({ prompt: 'a red kite', duration: 4 }));
    expect(ok.status).toBe(202);
    expect(ok.tookLibrary).toBe(false);
    expect(JSON.parse(ok.body)).toMatchObject({ object: 'video.generation.task', model: 'sora-2', status: 'pending' });
    const general = [
      await ask(`${PATH}?`, json(KEY_A), JSON.stringify({ prompt: 'a red kite', duration: 4 })),
      await ask(PATH, json(KEY_A), JSON.stringify({ prompt: 'a red kite', duration: 5 })), // the spec refuses it
      await ask(PATH, json(KEY_A, { 'Idempotency-Key': 'k'.repeat(256) }), JSON.stringify({ prompt: 'a red kite' })),
      await ask(`${PATH}/`, json(KEY_A), JSON.stringify({ prompt: 'a red kite' })),
      await ask(PATH.toUpperCase(), json(KEY_A), JSON.stringify({ prompt: 'a red kite' })),
      await ask(PATH, { ...auth(KEY_A), 'Content-Type': 'text/plain' }, 'a red kite'),
    ];
    expect(general.map((a) => a.tookLibrary)).toEqual(general.map(() => true));
  });

  it('answers every case as the general path does', async () => {
    const cases: [Record<string, string>, string | undefined][] = [
      [json(KEY_A), JSON.stringify({ prompt: 'a lighthouse at dawn', aspect_ratio: '16:9', duration: 8 })],
      [json(KEY_A), JSON.stringify({ prompt: 'defaults only' })],
      [json(KEY_A, { 'Cache-Control': 'no-cache' }), JSON.stringify({ prompt: 'fresh, please', cache: false })],
      [json(KEY_A), JSON.stringify({ prompt: 'x', duration: 5 })], // enum
      [json(KEY_A), JSON.stringify({ prompt: 'x', colour: 'red' })], // unknown field
      [json(KEY_A), JSON.stringify({ model: 'sora-2' })], // no prompt
      [json(KEY_A), JSON.stringify({ prompt: '   ' })], // blank: the door's own check
      [json(KEY_A), JSON.stringify({ prompt: 'x', model: 'no-such-model' })],
      [json(KEY_A), JSON.stringify({ prompt: 'x', image_urls: ['not a url'] })],
      [json(KEY_A), JSON.stringify({ prompt: 'x', callback_url: 'http://127.0.0.1:9/hook' })], // internal address
      [json(KEY_A), '{"prompt": "x",'], // not JSON
      [json(KEY_A), JSON.stringify({ prompt: 'x'.repeat(40_000) })], // over maxLength
      [json(KEY_A, { 'Idempotency-Key': 'k'.repeat(256) }), JSON.stringify({ prompt: 'x' })],
      [json(KEY_A), JSON.stringify([1, 2])],
      [json(KEY_A), ''],
      [{ 'Content-Type': 'application/json' }, JSON.stringify({ prompt: 'no key' })],
      [json('not-a-key-0123456789'), JSON.stringify({ prompt: 'bad key' })],
      [{ ...auth(KEY_A), 'Content-Type': 'text/plain' }, 'a red kite'],
    ];
    for (const [headers, body] of cases) {
      const early = sameShape(await ask(PATH, headers, body));
      const general = sameShape(await ask(`${PATH}?`, headers, body));
      expect({ sent: body, ...early }).toEqual({ sent: body, ...general });
      expect(early.status, body).toBeLessThan(500);
    }
  });

  it('answers a retry under one Idempotency-Key with the first task, whichever way each came', async () => {
    const body = JSON.stringify({ prompt: 'the same retry', duration: 4 });
    const first = await ask(PATH, json(KEY_A, { 'Idempotency-Key': 'retry-1' }), body);
    const again = await ask(`${PATH}?`, json(KEY_A, { 'Idempotency-Key': 'retry-1' }), body);
    expect(first.status).toBe(202);
    expect(JSON.parse(again.body).id).toBe(JSON.parse(first.body).id);
  });

  it('counts a create against the per-minute limit once, also when the general path refuses its body', async () => {
    const refused = await ask(PATH, json(KEY_SLOW), JSON.stringify({ prompt: 'x', duration: 5 })); // 1 of 2, then the library's 400
    expect(refused.status).toBe(400);
    expect(refused.headers['x-ratelimit-limit']).toBe('2');
    const second = await ask(PATH, json(KEY_SLOW), JSON.stringify({ prompt: 'a slow one' })); // 2 of 2
    expect(second.status).toBe(202);
    const third = await ask(PATH, json(KEY_SLOW), JSON.stringify({ prompt: 'one too many' }));
    const thirdGeneral = await ask(`${PATH}?`, json(KEY_SLOW), JSON.stringify({ prompt: 'one too many' }));
    expect(third.status).toBe(429);
    expect(sameShape(third)).toEqual(sameShape(thirdGeneral));
  });
});

describe('the early submission route under concurrency against a budget', () => {
  it('60 creates at once against a team budget of 7 tasks: exactly 7 accepted, the rest 402, none through the library; the ledger adds up', async () => {
    const g = await startTestGateway({}, { validateResponses: false });
    try {
      const team = await g.gateway.teams.createTeam('budget of 7', { credits_per_day: 7 * 40 });
      const { key } = await g.gateway.teams.addKey(team.id, { name: 'racer' });
      const before = libraryMatches;
      const answers = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          fetch(`${g.url}${PATH}`, { method: 'POST', headers: json(key), body: JSON.stringify({ prompt: `race ${i}`, aspect_ratio: '16:9', duration: 4 }) }),
        ),
      );
      expect(libraryMatches).toBe(before);
      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 202)).toHaveLength(7);
      expect(statuses.filter((s) => s === 402)).toHaveLength(53);
      await waitFor(async () => {
        const tasks = await g.gateway.store.listTasks({ owner_id: team.id, limit: 100 });
        return tasks.length === 7 && tasks.every((t) => t.status === 'completed') ? true : undefined;
      });
      expect((await checkTeamLedger(g.gateway.store, team.id)).problems).toEqual([]);
    } finally {
      await g.close();
    }
  });
});
