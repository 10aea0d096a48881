// One core, two doors: a task made on either door reads, lists, cancels, downloads and deletes through the
// other; another team sees none of it through either; a remix goes only where the original was made.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { checkTeamLedger } from './support/ledger-check';
import { startFakeTasksApi } from './support/fake-tasks-api';
import { mp4Renderer } from './support/mp4';
import { auth, KEY_A, KEY_B, startTestGateway, waitFor } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;

beforeAll(async () => {
  h = await startTestGateway({ providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 400, fps: 4 }] });
});
afterAll(() => h.close());

const native = (body: object = {}) =>
  h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'native door', aspect_ratio: '16:9', duration: 4, ...body });
/** A multipart create, as the official SDK sends it. */
const openai = (fields: Record<string, string> = {}) => {
  let req = h.http.post('/v1/videos').set(auth(KEY_A));
  for (const [k, v] of Object.entries({ prompt: 'openai door', seconds: '4', size: '1280x720', ...fields })) req = req.field(k, v);
  return req;
};
const video = (id: string, key = KEY_A) => h.http.get(`/v1/videos/${id}`).set(auth(key));
const task = (id: string, key = KEY_A) => h.http.get(`/v1/tasks/${id}`).set(auth(key));
const completed = (id: string) => waitFor(async () => ((await task(id)).body.status === 'completed' ? true : undefined), 30_000, 200);
async function allIds(door: 'tasks' | 'videos', key = KEY_A): Promise<string[]> {
  const res = await h.http.get(`/v1/${door}?limit=100`).set(auth(key));
  expect(res.status).toBe(200);
  return (res.body.data as { id: string }[]).map((t) => t.id);
}
async function defaultTeam(g: Harness = h): Promise<string> {
  return (await g.gateway.store.findTeamByName('default'))!.id;
}

describe('one core, two doors', () => {
  it('a task made on the native door reads, lists and downloads as a Video', async () => {
    const made = await native({ prompt: 'made natively' });
    expect(made.status).toBe(202);
    const id = made.body.id as string;
    const v = await video(id);
    expect(v.status).toBe(200);
    expect(v.body).toMatchObject({ id, object: 'video', status: 'queued', size: '1280x720', seconds: '4', prompt: 'made natively' });
    expect(await allIds('videos')).toContain(id);
    await completed(id);
    expect((await video(id)).body).toMatchObject({ status: 'completed', progress: 100, error: null });
    const mp4 = await h.http.get(`/v1/videos/${id}/content`).set(auth(KEY_A)).buffer(true);
    const viaNative = await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_A)).buffer(true);
    expect(mp4.status).toBe(200);
    expect(Buffer.compare(mp4.body as Buffer, viaNative.body as Buffer)).toBe(0);
    const ranged = await h.http.get(`/v1/videos/${id}/content`).set(auth(KEY_A)).set('Range', 'bytes=0-7').buffer(true);
    expect(ranged.status).toBe(206);
    expect((ranged.body as Buffer).toString('latin1', 4, 8)).toBe('ftyp');
  });

  it('a video made on the OpenAI door reads and lists as a Task, and is cancelled there; the Video then reads failed/cancelled', async () => {
    const made = await openai({ prompt: 'made the OpenAI way', seconds: '12' });
    expect(made.status).toBe(200);
    const id = made.body.id as string;
    expect((await task(id)).body).toMatchObject({ id, object: 'video.generation.task', task_info: { video_duration: 12, size: '1280x720' } });
    expect(await allIds('tasks')).toContain(id);
    const cancelled = await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(KEY_A));
    expect(cancelled.body.status).toBe('cancelled');
    const v = await video(id);
    expect(v.body).toMatchObject({ status: 'failed', error: { code: 'cancelled' } });
    expect(v.body.completed_at).not.toBeNull();
    // The video is not there to download: 409 on both doors.
    expect((await h.http.get(`/v1/videos/${id}/content`).set(auth(KEY_A))).status).toBe(409);
    expect((await h.http.get(`/v1/videos/${id}/content?variant=thumbnail`).set(auth(KEY_A))).status).toBe(409);
  });

  it("another team sees none of a team's videos, through either door (404, as for an unknown id)", async () => {
    const id = (await openai({ prompt: 'private' })).body.id as string;
    await completed(id);
    for (const res of [
      await video(id, KEY_B),
      await task(id, KEY_B),
      await h.http.get(`/v1/videos/${id}/content`).set(auth(KEY_B)),
      await h.http.get(`/v1/videos/${id}/content?variant=spritesheet`).set(auth(KEY_B)),
      await h.http.get(`/v1/tasks/${id}/content`).set(auth(KEY_B)),
      await h.http.delete(`/v1/videos/${id}`).set(auth(KEY_B)),
      await h.http.post(`/v1/videos/${id}/remix`).set(auth(KEY_B)).send({ prompt: 'steal' }),
      await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(KEY_B)),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'task_not_found', type: 'not_found_error' });
    }
    // As a cursor, it reads as an unknown id does (400 invalid_cursor, see the paging test).
    const asCursor = await h.http.get(`/v1/videos?after=${id}`).set(auth(KEY_B));
    const unknown = await h.http.get('/v1/videos?after=task_unknown').set(auth(KEY_B));
    expect([asCursor.status, asCursor.body]).toEqual([400, unknown.body]);
    expect(await allIds('videos', KEY_B)).not.toContain(id);
    expect(await allIds('tasks', KEY_B)).not.toContain(id);
    expect((await video(id)).status).toBe(200); // still there for its owner
  });

  it('DELETE cancels a running video, removes a stored one, hides both from both doors, and keeps the ledger exact', async () => {
    const done = (await openai({ prompt: 'completed, then deleted' })).body.id as string;
    await completed(done);
    const thumbnail = await h.http.get(`/v1/videos/${done}/content?variant=thumbnail`).set(auth(KEY_A));
    expect(thumbnail.status).toBe(200);
    const videosDir = h.config.assets.dir;
    expect(fs.readdirSync(videosDir).filter((f) => f.startsWith(done))).toHaveLength(2);
    // With the loops paused, this video cannot finish before its DELETE, however slow or fast the machine.
    await h.gateway.workers.stop(30_000);
    const running = (await native({ prompt: 'running, then deleted', duration: 12 })).body.id as string;

    for (const id of [running, done]) {
      const res = await h.http.delete(`/v1/videos/${id}`).set(auth(KEY_A));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id, object: 'video.deleted', deleted: true });
      expect((await video(id)).status).toBe(404);
      expect((await task(id)).status).toBe(404);
      expect(await allIds('videos')).not.toContain(id);
      expect(await allIds('tasks')).not.toContain(id);
      expect((await h.http.delete(`/v1/videos/${id}`).set(auth(KEY_A))).status).toBe(404);
    }
    h.gateway.workers.start();
    expect(fs.readdirSync(videosDir).filter((f) => f.startsWith(done))).toEqual([]);
    const stored = await h.gateway.store.getTask(running);
    expect(stored).toMatchObject({ status: 'cancelled' });
    expect(stored!.deleted_at_ms).not.toBeNull();

    // Every task of the team, deleted ones included, is settled or released exactly once.
    await waitFor(async () => ((await h.gateway.store.listOpenTasks(await defaultTeam())).length === 0 ? true : undefined));
    const ledger = await checkTeamLedger(h.gateway.store, await defaultTeam());
    expect(ledger.problems).toEqual([]);
    expect(ledger.tasks.map((t) => t.id)).toEqual(expect.arrayContaining([running, done]));
  });

  it("paging goes on after a video deleted between pages; an id that is not the caller's is a bad cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await openai({ prompt: `paged ${i}` })).body.id as string);
    const first = await h.http.get('/v1/videos?limit=2&order=asc').set(auth(KEY_A));
    const lastId = first.body.last_id as string;
    expect((await h.http.delete(`/v1/videos/${lastId}`).set(auth(KEY_A))).status).toBe(200);
    const next = await h.http.get(`/v1/videos?limit=100&order=asc&after=${lastId}`).set(auth(KEY_A));
    expect(next.status).toBe(200);
    expect((next.body.data as { id: string }[]).map((v) => v.id)).toEqual(expect.arrayContaining(ids.filter((id) => id !== lastId && !first.body.data.some((v: { id: string }) => v.id === id))));
    for (const [after, key] of [[ids[2]!, KEY_B], ['task_does_not_exist', KEY_A]] as const) {
      const res = await h.http.get(`/v1/videos?after=${after}`).set(auth(key));
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_cursor', param: 'after' });
    }
  });

  it('a remix needs a completed original (409 before)', async () => {
    const id = (await openai({ prompt: 'still running', seconds: '12' })).body.id as string;
    const res = await h.http.post(`/v1/videos/${id}/remix`).set(auth(KEY_A)).send({ prompt: 'too early' });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('task_not_completed');
    // Cancelled, it will never have a video: said so, as /content says it.
    expect((await h.http.post(`/v1/tasks/${id}/cancel`).set(auth(KEY_A))).status).toBe(200);
    const never = await h.http.post(`/v1/videos/${id}/remix`).set(auth(KEY_A)).send({ prompt: 'never' });
    expect([never.status, never.body.error.code]).toEqual([409, 'task_cancelled']);
  });
});

describe('where a remix goes', () => {
  it('answers 400 remix_not_supported for a video made by the task API', async (ctx: TestContext) => {
    const tasksApi = await startFakeTasksApi({ mp4: mp4Renderer(), durationMs: 200 });
    const g = await startTestGateway(
      {
        providers: [{ id: 'tasks', kind: 'tasks-api', base_url: tasksApi.url, api_key_env: 'FAKE_TASKS_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.2 } }] }],
        outbound: { trusted_origins: [tasksApi.url] },
      },
      { env: { FAKE_TASKS_KEY: tasksApi.apiKey } },
    );
    ctx.onTestFinished(async () => {
      await g.close();
      await tasksApi.close();
    });
    const id = (await g.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'made by the task API', seconds: 4, size: '1280x720' })).body.id as string;
    await waitFor(async () => ((await g.http.get(`/v1/videos/${id}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined), 30_000, 200);
    const res = await g.http.post(`/v1/videos/${id}/remix`).set(auth(KEY_A)).send({ prompt: 'again' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'remix_not_supported', type: 'invalid_request_error', param: 'id' });
    expect(res.body.error.message).toContain('tasks');
    expect(await g.gateway.store.listTasks({ owner_id: await defaultTeam(g), limit: 10 })).toHaveLength(1);
  });

  it('a remix of a video served from the cache goes to the provider and upstream job of the original', async (ctx: TestContext) => {
    const g = await startTestGateway({ cache: { enabled: true }, providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 200, fps: 4 }] });
    ctx.onTestFinished(() => g.close());
    const create = () => g.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'cached original', seconds: '4', size: '1280x720' });
    const original = (await create()).body.id as string;
    await waitFor(async () => ((await g.http.get(`/v1/videos/${original}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined), 30_000, 200);
    const hit = (await create()).body.id as string;
    expect((await g.http.get(`/v1/tasks/${hit}`).set(auth(KEY_A))).body.cache).toBe('hit');
    // As on the native door, Cache-Control: no-cache asks for a fresh take (the SDK's extra headers).
    const fresh = await create().set('Cache-Control', 'no-cache');
    expect((await g.http.get(`/v1/tasks/${fresh.body.id}`).set(auth(KEY_A))).body.cache).toBe('bypassed');
    const remix = await g.http.post(`/v1/videos/${hit}/remix`).set(auth(KEY_A)).send({ prompt: 'cached original, remixed' });
    expect(remix.status).toBe(200);
    expect(remix.body.remixed_from_video_id).toBe(hit);
    const request = JSON.parse((await g.gateway.store.getTask(remix.body.id))!.request_json);
    expect(request.remix_of).toEqual({ video_id: hit, provider_id: 'simulated', upstream_id: (await g.gateway.store.getTask(original))!.upstream_id });
  });
});
