// The upstream deadline is judged on the provider's answer: a job that finished while the gateway was
// late to ask (paused, backlogged) is collected, not abandoned and paid for again elsewhere; a job
// still running past the deadline is moved on.
import { expect, it } from 'vitest';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

/**
 * Submits, and once the task runs upstream jumps the gateway's clock 5 s ahead (past the deadline), as after a long
 * pause. With `pauseUntilDone` the gateway's loops are paused meanwhile and resumed only once the upstream job has
 * finished, so the first poll after the jump finds it done, however slow the machine renders.
 */
async function runWithClockJump(overrides: Parameters<typeof startTestGateway>[0], pauseUntilDone = false) {
  let offsetMs = 0;
  const h = await startTestGateway(overrides, { now: () => Date.now() + offsetMs });
  try {
    const id = (await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'late' })).body.id as string;
    const running = await waitFor(async () => {
      const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
      return t.status === 'processing' ? t : undefined;
    });
    if (pauseUntilDone) {
      await h.gateway.workers.stop(30_000);
      const adapter = h.gateway.router.provider(running.provider)!;
      const upstreamId = running.attempts[0].upstream_id as string;
      await waitFor(async () => ((await adapter.poll(upstreamId, {})).state === 'completed' ? true : undefined), 60_000, 50);
    }
    offsetMs = 5000;
    if (pauseUntilDone) h.gateway.workers.start();
    return await waitFor(async () => {
      const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
      return ['completed', 'failed'].includes(t.status) ? t : undefined;
    }, 30_000);
  } finally {
    await h.close();
  }
}

it('collects a job that finished while the gateway was late to ask', async () => {
  const done = await runWithClockJump({ workers: { poll_interval_ms: 200, upstream_deadline_ms: 1000 } }, true);
  expect(done.status).toBe('completed');
  expect(done.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['completed']);
});

it('moves a job still running past the deadline, and fails the task when the attempts run out', async () => {
  const done = await runWithClockJump({
    workers: { poll_interval_ms: 50, retry_backoff_ms: 50, upstream_deadline_ms: 1000, max_attempts: 2 },
    providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 60_000, fps: 4 }],
  });
  expect(done.status).toBe('failed');
  expect(done.error.code).toBe('generation_timeout');
  expect(done.attempts.map((a: { outcome: string; error?: { code: string } }) => [a.outcome, a.error?.code])).toEqual([
    ['retried', 'generation_timeout'],
    ['failed', 'generation_timeout'],
  ]);
});
