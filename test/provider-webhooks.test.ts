// A provider's signed webhook makes vidgate learn a finished job at once: the task whose job it names is polled
// now, long before its next scheduled poll. Real HTTP: a fake OpenAI-shaped upstream whose poll-after hint puts
// the next poll 10 minutes away, and webhooks signed per Standard Webhooks with the `standardwebhooks` package.
import { randomBytes } from 'node:crypto';
import { describe, expect, it, type TestContext } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { startFakeOpenAI } from './support/fake-openai';
import { mp4Renderer } from './support/mp4';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

async function rig(ctx: TestContext) {
  const fake = await startFakeOpenAI({ mp4: mp4Renderer(), jobDurationMs: 3600_000, pollAfterMs: 600_000 });
  const h = await startTestGateway(
    {
      workers: { poll_interval_ms: 50, lease_ms: 10_000 },
      providers: [
        {
          id: 'host', kind: 'openai', base_url: fake.url, api_key_env: 'HOST_KEY', webhook_secret_env: 'HOST_WEBHOOK_SECRET',
          models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }],
        },
      ],
    },
    { env: { HOST_KEY: fake.apiKey, HOST_WEBHOOK_SECRET: SECRET } },
  );
  ctx.onTestFinished(async () => {
    for (const close of [() => fake.close(), () => h.close()]) await close().catch(() => undefined);
  });
  const res = await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ model: 'sora-2', prompt: 'a long take', aspect_ratio: '16:9', duration: 4 });
  expect(res.status).toBe(202);
  const id = res.body.id as string;
  // Running, and polled once: the hint puts its next poll 10 minutes away.
  const running = await waitFor(async () => {
    const t = await h.gateway.store.getTask(id);
    return t?.status === 'processing' && t.next_run_at_ms > Date.now() + 60_000 ? t : undefined;
  });
  return { fake, h, id, upstreamId: running.upstream_id! };
}

/** An OpenAI-shaped event, signed as the provider would sign it (or with `secret`). */
function signed(type: string, jobId: string, secret = SECRET, at = new Date()) {
  const body = JSON.stringify({ id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', type, created_at: Math.floor(at.getTime() / 1000), data: { id: jobId } });
  const msgId = `wh_${randomBytes(8).toString('hex')}`;
  const headers = { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(msgId, at, body) };
  return { body, headers };
}

describe('POST /providers/{provider_id}/webhooks', () => {
  it('a signed video.completed makes the job be polled now, and the task completes long before its next poll', async (ctx) => {
    const { fake, h, id, upstreamId } = await rig(ctx);
    const pollsBefore = fake.requestsTo('retrieve').length;
    fake.completeJob(upstreamId);
    const { body, headers } = signed('video.completed', upstreamId);
    const res = await h.http.post('/providers/host/webhooks').set(headers).set('Content-Type', 'application/json').send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(204);
    const done = await waitFor(async () => {
      const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
      return t.status === 'completed' || t.status === 'failed' ? t : undefined;
    }, 30_000);
    expect(done.status).toBe('completed');
    // Learned by one poll, the one the webhook asked for.
    expect(fake.requestsTo('retrieve').length).toBe(pollsBefore + 1);
  });

  it('refuses a wrong, missing or stale signature with 401 in the documented shape, and polls nothing', async (ctx) => {
    const { fake, h, id, upstreamId } = await rig(ctx);
    const pollsBefore = fake.requestsTo('retrieve').length;
    const forged = signed('video.completed', upstreamId, `whsec_${randomBytes(24).toString('base64')}`);
    const stale = signed('video.completed', upstreamId, SECRET, new Date(Date.now() - 10 * 60_000));
    const good = signed('video.completed', upstreamId);
    const tampered = { body: good.body.replace(upstreamId, `${upstreamId}x`), headers: good.headers };
    for (const attempt of [forged, stale, tampered, { body: good.body, headers: {} }]) {
      const res = await h.http.post('/providers/host/webhooks').set(attempt.headers).set('Content-Type', 'application/json').send(attempt.body);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: 'invalid_webhook_signature', message: expect.any(String), type: 'authentication_error', param: null } });
    }
    await new Promise((r) => setTimeout(r, 300)); // several ticks of the poller
    expect(fake.requestsTo('retrieve').length).toBe(pollsBefore);
    expect((await h.gateway.store.getTask(id))?.status).toBe('processing');
  });

  it('answers 404 for a provider without webhooks, 400 for a body that is not an event, and ignores unknown jobs and other events', async (ctx) => {
    const { fake, h, upstreamId } = await rig(ctx);
    const pollsBefore = fake.requestsTo('retrieve').length;
    const event = signed('video.completed', upstreamId);
    const unknown = await h.http.post('/providers/nobody/webhooks').set(event.headers).set('Content-Type', 'application/json').send(event.body);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'provider_not_found', type: 'not_found_error' });
    const noData = signed('video.completed', upstreamId);
    const bad = await h.http.post('/providers/host/webhooks').set(noData.headers).set('Content-Type', 'application/json').send({ type: 'video.completed' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: 'invalid_request_error' });
    for (const ignored of [signed('video.completed', 'video_not_ours'), signed('batch.completed', upstreamId)]) {
      const res = await h.http.post('/providers/host/webhooks').set(ignored.headers).set('Content-Type', 'application/json').send(ignored.body);
      expect(res.status).toBe(204);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.requestsTo('retrieve').length).toBe(pollsBefore);
  });
});
