// The background loops: the dispatcher submits pending tasks to a provider, the poller follows
// processing ones to completion. Both claim tasks through leases in the store, and every transition
// carries the lease token, so a task whose worker died is picked up again and finishes exactly once.
import { ProviderError, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { Router } from '../routing/router';
import { usdToCredits } from '../routing/quote';
import { QuotaExceededError, type ClaimedTask, type Store, type WorkPhase } from '../store/types';
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
  /** How long a task may wait for any provider to become available. */
  waitForProviderMs: number;
  usdPerCredit: number;
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

/** Downloads that may fail in a row (reset, truncated) before the task is generated again elsewhere. */
const MAX_DOWNLOAD_FAILURES = 3;

export function createWorkers(deps: WorkerDeps): Workers {
  const { store, router, assets, metrics, log, config, now } = deps;
  const { health } = router;
  const inFlight = new Set<Promise<void>>();
  const downloadFailures = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;

  /** Time one call to a provider and record its outcome. */
  async function upstream<T>(adapter: ProviderAdapter, operation: 'submit' | 'poll' | 'download', call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const end = metrics.upstreamDuration.startTimer({ provider: adapter.id, operation });
    const timeoutMs = operation === 'download' ? config.download_timeout_ms : config.upstream_timeout_ms;
    try {
      const result = await call(AbortSignal.timeout(timeoutMs));
      end({ outcome: 'ok' });
      return result;
    } catch (err) {
      const error = asProviderError(err);
      end({ outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      throw error;
    }
  }

  /** A failure where the provider is at fault counts against its health; the request's own faults do not. */
  function blame(t: ClaimedTask, model: string, error: ProviderError) {
    if (error.retryable && t.provider_id) {
      health.failure(t.provider_id, model, { reason: `${error.code}: ${error.message}`, retry_after_ms: error.retryAfterMs });
    }
  }

  async function finishFailed(t: ClaimedTask, error: TaskError): Promise<void> {
    if (await store.markFailed(t.id, t.lease_token, { code: error.code, message: error.message }, now())) {
      metrics.tasksFinished.inc({ status: 'failed', provider: t.provider_id ?? 'none' });
      metrics.credits.inc({ kind: 'released', team: t.owner_id, provider: t.provider_id ?? 'none', model: t.model }, t.credits_reserved);
      log.info('task failed', { task: t.id, provider: t.provider_id, code: error.code });
    }
  }

  /**
   * A retryable failure: abandon this attempt and submit again, to another provider first, with backoff
   * once every capable provider has failed this task, until the attempts run out.
   */
  async function retryOrFail(t: ClaimedTask, request: NormalizedRequest, error: TaskError): Promise<void> {
    if (t.attempt >= config.max_attempts) return finishFailed(t, error);
    const failedOn = await providersThatFailed(t.id);
    if (t.provider_id) failedOn.add(t.provider_id);
    const untried = router.candidates(request).some((c) => !failedOn.has(c.adapter.id));
    const backoffMs = untried ? 0 : config.retry_backoff_ms * 2 ** Math.max(0, t.attempt - 1);
    if (!(await store.requeue(t.id, t.lease_token, { code: error.code, message: error.message }, now() + backoffMs, now()))) return;
    log.info('task requeued', { task: t.id, provider: t.provider_id, code: error.code, attempt: t.attempt });
    // The abandoned job can no longer bill or deliver here; stop it where the provider allows.
    const abandoned = t.provider_id ? router.provider(t.provider_id) : undefined;
    if (abandoned?.cancel && t.upstream_id) await abandoned.cancel(t.upstream_id, {}).catch(() => undefined);
  }

  async function providersThatFailed(taskId: string): Promise<Set<string>> {
    const attempts = await store.listAttempts([taskId]);
    return new Set(attempts.filter((a) => a.outcome === 'retried').map((a) => a.provider_id));
  }

  async function dispatch(t: ClaimedTask): Promise<void> {
    const request = JSON.parse(t.request_json) as NormalizedRequest;
    // A pending task with a provider is an attempt that was started but not confirmed (its worker
    // died): resume it under the same idempotency key rather than start a second job.
    let adapter = t.provider_id ? router.provider(t.provider_id) : undefined;
    if (!adapter) {
      if (router.candidates(request).length === 0) {
        return finishFailed(t, { code: 'no_provider_available', message: 'no configured provider can serve this request' });
      }
      const active = await store.countActiveByProvider();
      // Prefer providers that have not failed this task yet; once all have, any of them again.
      const pick = router.choose(request, { exclude: await providersThatFailed(t.id), active }) ?? router.choose(request, { active });
      if (!pick) {
        if (now() - t.created_at_ms < deps.waitForProviderMs) {
          await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
          return;
        }
        const waitedS = Math.round(deps.waitForProviderMs / 1000);
        return finishFailed(t, { code: 'no_provider_available', message: `no provider able to serve this request was available for ${waitedS} s` });
      }
      adapter = pick.adapter;
      const credits = usdToCredits(pick.usd, deps.usdPerCredit);
      try {
        if (!(await store.startAttempt(t.id, t.lease_token, adapter.id, { usd: pick.usd, credits }, now()))) return;
      } catch (err) {
        if (!(err instanceof QuotaExceededError)) throw err;
        return finishFailed(t, {
          code: 'insufficient_quota',
          message: `failing over to ${adapter.id} costs ${credits} credits, ${credits - t.credits_reserved} more than reserved, over the ${err.scope}'s ${err.quota} (${err.used} of ${err.limit} used)`,
        });
      }
      if (credits > t.credits_reserved) {
        metrics.credits.inc({ kind: 'reserved', team: t.owner_id, provider: adapter.id, model: t.model }, credits - t.credits_reserved);
      }
      health.begin(adapter.id, request.model);
      t = { ...t, attempt: t.attempt + 1, provider_id: adapter.id, credits_reserved: Math.max(credits, t.credits_reserved) };
    }
    const provider = adapter;
    const started = now();
    try {
      const { upstreamId } = await upstream(provider, 'submit', (signal) =>
        provider.submit(request, { idempotencyKey: `${t.id}.${t.attempt}`, signal }),
      );
      health.success(provider.id, request.model, now() - started);
      metrics.taskAttempts.inc({ provider: provider.id, outcome: 'submitted' });
      if (!(await store.markSubmitted(t.id, t.lease_token, upstreamId, now()))) {
        // Cancelled while we were submitting: nobody wants this job any more.
        await provider.cancel?.(upstreamId, {}).catch(() => undefined);
      }
    } catch (err) {
      const error = asProviderError(err);
      metrics.taskAttempts.inc({ provider: provider.id, outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      blame(t, request.model, error);
      if (!error.retryable) return finishFailed(t, error);
      await retryOrFail(t, request, error);
    }
  }

  async function poll(t: ClaimedTask): Promise<void> {
    const request = JSON.parse(t.request_json) as NormalizedRequest;
    const adapter = t.provider_id ? router.provider(t.provider_id) : undefined;
    const upstreamId = t.upstream_id;
    if (!adapter || !upstreamId) {
      return retryOrFail(t, request, { code: 'provider_unavailable', message: `provider '${t.provider_id}' is no longer configured` });
    }
    if (t.submitted_at_ms !== null && now() - t.submitted_at_ms > config.upstream_deadline_ms) {
      const error = new ProviderError('generation_timeout', `${adapter.id} did not finish within ${config.upstream_deadline_ms} ms`, true);
      blame(t, request.model, error);
      return retryOrFail(t, request, error);
    }
    try {
      const result = await upstream(adapter, 'poll', (signal) => adapter.poll(upstreamId, { signal }));
      if (result.state === 'failed') {
        blame(t, request.model, result.error);
        if (!result.error.retryable) return finishFailed(t, result.error);
        return retryOrFail(t, request, result.error);
      }
      if (result.state !== 'completed') {
        await store.recordProgress(t.id, t.lease_token, result.progress, now() + config.poll_interval_ms, now());
        return;
      }
      await download(t, request, adapter, upstreamId);
    } catch (err) {
      const error = asProviderError(err);
      blame(t, request.model, error);
      if (error.code === 'resource_not_found') return retryOrFail(t, request, error); // the provider lost it
      if (!error.retryable) return finishFailed(t, error);
      // Transient trouble talking to the provider: ask again later; the deadline bounds the wait.
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
    }
  }

  async function download(t: ClaimedTask, request: NormalizedRequest, adapter: ProviderAdapter, upstreamId: string): Promise<void> {
    try {
      await upstream(adapter, 'download', async (signal) => assets.put(t.id, await adapter.download(upstreamId, { signal })));
    } catch (err) {
      const error = asProviderError(err);
      blame(t, request.model, error);
      const failures = (downloadFailures.get(t.id) ?? 0) + 1;
      downloadFailures.set(t.id, failures);
      if (error.code === 'result_expired' || failures >= MAX_DOWNLOAD_FAILURES) {
        downloadFailures.delete(t.id);
        return retryOrFail(t, request, error);
      }
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
      return;
    }
    downloadFailures.delete(t.id);
    health.success(adapter.id, request.model);
    if (await store.markCompleted(t.id, t.lease_token, t.id, now())) {
      const settled = (await store.getTask(t.id))?.credits_settled ?? 0;
      metrics.tasksFinished.inc({ status: 'completed', provider: adapter.id });
      metrics.credits.inc({ kind: 'settled', team: t.owner_id, provider: adapter.id, model: t.model }, settled);
      metrics.credits.inc({ kind: 'released', team: t.owner_id, provider: adapter.id, model: t.model }, t.credits_reserved - settled);
      log.info('task completed', { task: t.id, provider: adapter.id });
    } else if ((await store.getTask(t.id))?.status !== 'completed') {
      await assets.remove(t.id); // cancelled meanwhile
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
