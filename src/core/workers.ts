// The background loops: the dispatcher submits pending tasks to a provider, the poller follows
// processing ones to completion. Both claim tasks through leases in the store, and every transition
// carries the lease token, so a task whose worker died is picked up again and finishes exactly once.
import { ProviderError, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { Router } from '../routing/router';
import type { ClaimedTask, Store, WorkPhase } from '../store/types';
import type { AssetStore } from './assets';
import type { Config } from './config';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

export interface WorkerDeps {
  store: Store;
  router: Router;
  assets: AssetStore;
  metrics: Metrics;
  log: Logger;
  config: Config['workers'];
  now: () => number;
}

export interface Workers {
  start(): void;
  /** Run the dispatcher and the poller once now instead of at their next tick. */
  wake(): void;
  /** Stop claiming; wait for the steps under way, up to `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

type TaskError = { code: string; message: string };

export function createWorkers(deps: WorkerDeps): Workers {
  const { store, router, assets, metrics, log, config, now } = deps;
  const inFlight = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;

  /** Time one call to a provider and record its outcome. */
  async function upstream<T>(adapter: ProviderAdapter, operation: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const end = metrics.upstreamDuration.startTimer({ provider: adapter.id, operation });
    try {
      const result = await call(AbortSignal.timeout(config.upstream_timeout_ms));
      end({ outcome: 'ok' });
      return result;
    } catch (err) {
      const error = asProviderError(err);
      end({ outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      throw error;
    }
  }

  async function finishFailed(t: ClaimedTask, error: TaskError): Promise<void> {
    if (await store.markFailed(t.id, t.lease_token, error, now())) {
      metrics.tasksFinished.inc({ status: 'failed', provider: t.provider_id ?? 'none' });
      log.info('task failed', { task: t.id, provider: t.provider_id, code: error.code });
    }
  }

  /** A retryable failure: submit again (another provider first), until the attempts run out. */
  async function retryOrFail(t: ClaimedTask, error: TaskError, untriedProviders: boolean): Promise<void> {
    if (t.attempt >= config.max_attempts) return finishFailed(t, error);
    const backoffMs = untriedProviders ? 0 : config.retry_backoff_ms * 2 ** Math.max(0, t.attempt - 1);
    await store.requeue(t.id, t.lease_token, error, now() + backoffMs, now());
    log.info('task requeued', { task: t.id, provider: t.provider_id, code: error.code, attempt: t.attempt });
  }

  async function dispatch(t: ClaimedTask): Promise<void> {
    const request = JSON.parse(t.request_json) as NormalizedRequest;
    const candidates = router.candidates(request);
    // A pending task with a provider is an attempt that was started but not confirmed (its worker
    // died): resume it under the same idempotency key rather than start a second job.
    let adapter = t.provider_id ? router.provider(t.provider_id) : undefined;
    if (!adapter) {
      const pick = candidates[t.attempt % Math.max(1, candidates.length)];
      if (!pick) return finishFailed(t, { code: 'no_provider_available', message: 'no configured provider can serve this request' });
      adapter = pick.adapter;
      if (!(await store.startAttempt(t.id, t.lease_token, adapter.id, now()))) return;
      t = { ...t, attempt: t.attempt + 1, provider_id: adapter.id };
    }
    const provider = adapter;
    try {
      const { upstreamId } = await upstream(provider, 'submit', (signal) =>
        provider.submit(request, { idempotencyKey: `${t.id}.${t.attempt}`, signal }),
      );
      metrics.taskAttempts.inc({ provider: provider.id, outcome: 'submitted' });
      if (!(await store.markSubmitted(t.id, t.lease_token, upstreamId, now()))) {
        // Cancelled while we were submitting: nobody wants this job any more.
        await provider.cancel?.(upstreamId, {}).catch(() => undefined);
      }
    } catch (err) {
      const error = asProviderError(err);
      metrics.taskAttempts.inc({ provider: provider.id, outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      if (!error.retryable) return finishFailed(t, error);
      await retryOrFail(t, error, t.attempt < candidates.length);
    }
  }

  async function poll(t: ClaimedTask): Promise<void> {
    const adapter = t.provider_id ? router.provider(t.provider_id) : undefined;
    const upstreamId = t.upstream_id;
    if (!adapter || !upstreamId) {
      return retryOrFail(t, { code: 'provider_unavailable', message: `provider '${t.provider_id}' is no longer configured` }, true);
    }
    if (t.submitted_at_ms !== null && now() - t.submitted_at_ms > config.upstream_deadline_ms) {
      return retryOrFail(t, { code: 'generation_timeout', message: `${adapter.id} did not finish in time` }, true);
    }
    try {
      const result = await upstream(adapter, 'poll', (signal) => adapter.poll(upstreamId, { signal }));
      if (result.state === 'failed') {
        if (!result.error.retryable) return finishFailed(t, result.error);
        return retryOrFail(t, result.error, true);
      }
      if (result.state !== 'completed') {
        await store.recordProgress(t.id, t.lease_token, result.progress, now() + config.poll_interval_ms, now());
        return;
      }
      const video = await upstream(adapter, 'download', (signal) => adapter.download(upstreamId, { signal }));
      await assets.put(t.id, video);
      if (await store.markCompleted(t.id, t.lease_token, t.id, now())) {
        metrics.tasksFinished.inc({ status: 'completed', provider: adapter.id });
        log.info('task completed', { task: t.id, provider: adapter.id });
      } else if ((await store.getTask(t.id))?.status !== 'completed') {
        await assets.remove(t.id); // cancelled meanwhile
      }
    } catch (err) {
      const error = asProviderError(err);
      if (error.code === 'resource_not_found') return retryOrFail(t, error, true); // the provider lost it
      if (!error.retryable) return finishFailed(t, error);
      // Transient trouble talking to the provider: ask again later; the deadline bounds the wait.
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
    }
  }

  /** Run one step on a claimed task, keeping its lease alive while the step runs. */
  function run(t: ClaimedTask, step: (t: ClaimedTask) => Promise<void>): void {
    const heartbeat = setInterval(
      () => void store.renewLease(t.id, t.lease_token, now() + config.lease_ms).catch(() => undefined),
      Math.max(100, config.lease_ms / 3),
    );
    const p = step(t)
      .catch((err: Error) => log.error('worker step failed', { task: t.id, error: err.message }))
      .finally(() => {
        clearInterval(heartbeat);
        inFlight.delete(p);
      });
    inFlight.add(p);
  }

  async function claimAndRun(phase: WorkPhase, step: (t: ClaimedTask) => Promise<void>): Promise<void> {
    const room = config.batch_size - inFlight.size;
    if (stopping || room <= 0) return;
    for (const t of await store.claimDue(phase, room, config.lease_ms, now())) run(t, step);
  }

  async function tick(): Promise<void> {
    try {
      await claimAndRun('dispatch', dispatch);
      await claimAndRun('poll', poll);
    } catch (err) {
      log.error('worker tick failed', { error: (err as Error).message });
    }
  }

  let ticking: Promise<void> | undefined;
  const tickOnce = () => (ticking ??= tick().finally(() => (ticking = undefined)));

  return {
    start() {
      const loop = async () => {
        await tickOnce();
        if (!stopping) timer = setTimeout(loop, config.poll_interval_ms);
      };
      void loop();
    },
    wake() {
      if (!stopping) void tickOnce();
    },
    async stop(timeoutMs) {
      stopping = true;
      clearTimeout(timer);
      await ticking;
      const drained = Promise.allSettled([...inFlight]);
      await Promise.race([drained, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
  };
}

function asProviderError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = err as Error;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new ProviderError('timeout', e.message, true);
  return new ProviderError('provider_error', e?.message ?? String(err), true);
}
