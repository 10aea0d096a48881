// The upstream deadline is judged on the provider's answer: a job that finished while the gateway was
// late to ask (paused, backlogged) is collected, not abandoned and paid for again elsewhere; a job
// still running past the deadline is moved on.
import { expect, it } from 'vitest';
import { KEY_A, auth, startTestGateway, waitFor } from './support/gateway';

async function runWithClockJump(overrides: Parameters<typeof startTestGateway>[0]) {
  let offsetMs = 0;
  const h = await startTestGateway(overrides, { now: () => Date.now() + offsetMs });
  try {
    const id = (await h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'late' })).body.id as string;
    await waitFor(async () => ((await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body.status === 'processing' ? true : undefined));
    offsetMs = 5000; // the gateway's clock jumps past the deadline, as after a long pause
    return await waitFor(async () => {
      const t = (await h.http.get(`/v1/tasks/${id}`).set(auth(KEY_A))).body;
      return ['completed', 'failed'].includes(t.status) ? t : undefined;
    }, 30_000);
  } finally {
    await h.close();
  }
}

it('collects a job that finished while the gateway was late to ask', async () => {
  // Polls every 2 s: the 300 ms job is done upstream long before the first poll after the jump.
  const done = await runWithClockJump({ workers: { poll_interval_ms: 2000, upstream_deadline_ms: 1000 } });
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
