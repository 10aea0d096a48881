// POST /v1/estimates says how the cache would serve a request now (`cache`: a running twin, then a stored result;
// keyed by team, prompt, size, resize mode and the bytes of an uploaded image via `image_sha256`) and whether the
// tightest credit quota covers it (`quota`). A real gateway with the simulated provider, through the public API.
// The tests run in order: the quota test uses the result the first one stored.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../src/generated/vidgate-api';
import { ADMIN_TOKEN, KEY_A, KEY_B, auth, startTestGateway, waitFor } from './support/gateway';
import { makeImage } from './support/images';

type Estimate = components['schemas']['Estimate'];
type Harness = Awaited<ReturnType<typeof startTestGateway>>;

/** What a hit or a follower costs here; the simulated sora-2 costs $0.10 a second: 40 credits for 4 s. */
const HIT_CREDITS = 3;
const FULL_CREDITS = 40;
const BODY = { model: 'sora-2', prompt: 'A paper boat on a rainy street', aspect_ratio: '1280x720', duration: 4 } as const;

let h: Harness;

beforeAll(async () => {
  h = await startTestGateway({ cache: { enabled: true, hit_credits: HIT_CREDITS }, providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 1500, fps: 4 }] }, {
    // The image URL's host resolves to a public address; only estimated, never fetched: nothing connects to it.
    resolve: async (host) => (host === 'images.example.com' ? [{ address: '93.184.215.14', family: 4 }] : []),
  });
});
afterAll(async () => h?.close());

async function estimate(body: object, key = KEY_A, imageSha256?: string): Promise<Estimate> {
  const res = await h.http.post(`/v1/estimates${imageSha256 ? `?image_sha256=${imageSha256}` : ''}`).set(auth(key)).send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Estimate;
}

const finished = (id: string) =>
  waitFor(async () => {
    const task = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body as { status: string };
    return task.status === 'completed' ? task : undefined;
  });

describe('estimates: cache outlook', () => {
  it('says coalesced while an identical task runs, hit once it is stored, for the same team and request only', async () => {
    const before = await estimate(BODY);
    expect(before).toMatchObject({ provider: 'simulated', credits: FULL_CREDITS });
    expect(before.cache).toBeUndefined();

    const task = (await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(BODY)).body as { id: string };
    expect((await estimate(BODY)).cache).toEqual({ status: 'coalesced', credits: HIT_CREDITS, usd: 0.03 });
    await finished(task.id);
    // The prompt is compared as the cache compares it (case, white space).
    expect((await estimate({ ...BODY, prompt: '  a PAPER boat on a rainy   street ' })).cache).toEqual({ status: 'hit', credits: HIT_CREDITS, usd: 0.03 });
    // What the estimate said is what a submission does.
    const hit = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send(BODY);
    expect(hit.status).toBe(200);
    expect(hit.body).toMatchObject({ cache: 'hit', usage: { credits_reserved: HIT_CREDITS } });

    expect((await estimate(BODY, KEY_B)).cache).toBeUndefined(); // another team's result is not served
    expect((await estimate({ ...BODY, duration: 8 })).cache).toBeUndefined();
    expect((await estimate({ ...BODY, prompt: 'A paper boat on a sunny street' })).cache).toBeUndefined();
  });

  it('knows an uploaded image by the SHA-256 of its bytes, with its resize mode; an image URL alone is never claimed', async () => {
    const png = makeImage('png', 320, 240, 7);
    const sha = createHash('sha256').update(png).digest('hex');
    const created = await h.http
      .post('/v1/videos')
      .set(auth(KEY_A))
      .field('prompt', 'A kite over a beach')
      .field('model', 'sora-2')
      .field('seconds', '4')
      .field('size', '1280x720')
      .field('resize_mode', 'crop')
      .attach('input_reference', png, 'kite.png');
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    await finished(created.body.id);

    const same = { model: 'sora-2', prompt: 'A kite over a beach', aspect_ratio: '1280x720', duration: 4, resize_mode: 'crop' };
    expect((await estimate(same, KEY_A, sha)).cache?.status).toBe('hit');
    expect((await estimate({ ...same, resize_mode: 'pad' }, KEY_A, sha)).cache).toBeUndefined();
    expect((await estimate(same, KEY_A, createHash('sha256').update('other bytes').digest('hex'))).cache).toBeUndefined();
    expect((await estimate(same)).cache).toBeUndefined(); // without the image it is another request
    expect((await estimate({ ...same, image_urls: ['https://images.example.com/kite.png'] })).cache).toBeUndefined();

    const bad = await h.http.post('/v1/estimates?image_sha256=abc').set(auth(KEY_A)).send(same);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: 'invalid_request_error' });
  });
});

describe('estimates: quota outlook', () => {
  it('names the tightest credit quota, what is left of it, and whether that covers the request (the cache price when it serves)', async () => {
    expect((await estimate(BODY, KEY_B)).quota).toBeUndefined(); // team-b has no credit quota
    const usage = (await h.http.get('/v1/usage').set(auth(KEY_B))).body as components['schemas']['Usage'];
    const admin = auth(ADMIN_TOKEN);
    const used = usage.quotas.team.credits_per_month.used;
    await h.http.patch(`/admin/teams/${h.teamB.id}`).set(admin).send({ quotas: { credits_per_day: used + 30, credits_per_month: used + 100 } }).expect(200);
    expect((await estimate(BODY, KEY_B)).quota).toEqual({ quota: 'team.credits_per_day', remaining_credits: 30, covered: false });
    expect((await estimate({ ...BODY, prompt: 'a short one' }, KEY_B)).quota?.covered).toBe(false);
    // What the estimate said is what a submission meets.
    expect((await h.http.post('/v1/videos/generations').set(auth(KEY_B)).send(BODY)).status).toBe(402);

    await h.http.patch(`/admin/teams/${h.teamB.id}`).set(admin).send({ quotas: { credits_per_day: used + 40 } }).expect(200);
    expect((await estimate(BODY, KEY_B)).quota).toEqual({ quota: 'team.credits_per_day', remaining_credits: 40, covered: true });
    await h.http.patch(`/admin/teams/${h.teamB.id}`).set(admin).send({ quotas: { credits_per_day: null, credits_per_month: null } }).expect(200);

    // The default team has BODY's result stored (the first test): a hit costs HIT_CREDITS, which 10 credits cover.
    const teamA = ((await h.http.get('/v1/usage').set(auth(KEY_A))).body as components['schemas']['Usage']);
    await h.http.patch(`/admin/teams/${teamA.team.id}`).set(admin).send({ quotas: { credits_per_day: teamA.quotas.team.credits_per_day.used + 10 } }).expect(200);
    expect(await estimate(BODY)).toMatchObject({ cache: { status: 'hit' }, quota: { remaining_credits: 10, covered: true } });
    expect(await estimate({ ...BODY, duration: 8 })).toMatchObject({ quota: { remaining_credits: 10, covered: false } });
    await h.http.patch(`/admin/teams/${teamA.team.id}`).set(admin).send({ quotas: { credits_per_day: null } }).expect(200);
  });

  it('a key with its own credit quota can be the tightest', async () => {
    const admin = auth(ADMIN_TOKEN);
    const created = await h.http.post(`/admin/teams/${h.teamB.id}/keys`).set(admin).send({ name: 'tight', quotas: { credits_per_month: 5 } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await estimate(BODY, created.body.key)).quota).toEqual({ quota: 'key.credits_per_month', remaining_credits: 5, covered: false });
  });
});
