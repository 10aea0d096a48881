// The background loops: the dispatcher submits pending tasks to a provider, the poller follows
// processing ones to completion. Both claim tasks through leases in the store, and every transition
// carries the lease token, so a task whose worker died is picked up again and finishes exactly once.
import { ProviderError, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { Router } from '../routing/router';
import { usdToCredits } from '../routing/quote';
import { QuotaExceededError, type ClaimedTask, type Store, type TaskRecord, type WorkPhase } from '../store/types';
import type { AssetStore } from './assets';
import type { Config } from './config';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { ImageLinks } from './image-links';
import type { ReferenceImages } from './reference-images';
import type { ResultCache } from './result-cache';

export interface WorkerDeps {
  store: Store;
  router: Router;
  assets: AssetStore;
  metrics: Metrics;
  log: Logger;
  cache: ResultCache;
  /** Where uploaded reference images are kept, to hand their bytes to the adapter. */
  images: ReferenceImages;
  /** Links to uploaded images, for adapters that take images only by URL; absent without `server.public_url`. */
  imageLinks?: ImageLinks;
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
/**
 * Times a submission whose answer was lost (timeout, connection reset) is sent again under the same
 * idempotency key, to the same provider, before the task moves on: the job may well exist upstream.
 */
const MAX_UNANSWERED_SUBMITS = 2;

/**
 * What a tenant may see of a failure: a provider's own words about the request (terminal: content
 * policy, invalid parameters) help; its words about itself (hosts, stack traces, masked keys) do not.
 */
function publicError(provider: string, error: ProviderError): TaskError {
  return error.retryable
    ? { code: error.code, message: `${provider} failed on its side (${error.code})` }
    : { code: error.code, message: error.message.slice(0, 500) };
}

/** A failure writing the video to our own disk: not the provider's fault. */
const isLocalFailure = (err: unknown) => typeof (err as NodeJS.ErrnoException)?.syscall === 'string';

export function createWorkers(deps: WorkerDeps): Workers {
  const { store, router, assets, metrics, log, config, now } = deps;
  const { health } = router;
  const inFlight = new Set<Promise<void>>();
  // Per-process counters of consecutive trouble; lost on restart, which only resets their bound.
  const downloadFailures = new Map<string, number>();
  const unansweredSubmits = new Map<string, number>();
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
    if (!error.retryable || !t.provider_id) return;
    log.warn('provider failure', { task: t.id, provider: t.provider_id, code: error.code, error: error.message });
    health.failure(t.provider_id, model, { reason: error.code, retry_after_ms: error.retryAfterMs });
  }

  /** Stop an upstream job nobody will collect, where the provider allows. */
  async function abandon(providerId: string | null, upstreamId: string | null) {
    const adapter = providerId ? router.provider(providerId) : undefined;
    if (adapter?.cancel && upstreamId) await adapter.cancel(upstreamId, {}).catch(() => undefined);
  }

  /** Count the tasks that finished with their leader (followers), as the leader is counted. */
  function followersFinished(followers: readonly TaskRecord[], status: 'completed' | 'failed', provider: string) {
    for (const f of followers) {
      const settled = f.credits_settled ?? 0;
      metrics.tasksFinished.inc({ status, provider });
      if (settled > 0) metrics.credits.inc({ kind: 'settled', team: f.owner_id, provider, model: f.model }, settled);
      metrics.credits.inc({ kind: 'released', team: f.owner_id, provider, model: f.model }, f.credits_reserved - settled);
    }
  }

  /** `own`: the task's own failure (its quota), which its followers do not share: they carry on under an heir. */
  async function finishFailed(t: ClaimedTask, error: TaskError, jobMayRun = false, own = false): Promise<void> {
    const followers = await store.markFailed(t.id, t.lease_token, error, now(), { hand_over: own });
    if (followers === false) return;
    metrics.tasksFinished.inc({ status: 'failed', provider: t.provider_id ?? 'none' });
    metrics.credits.inc({ kind: 'released', team: t.owner_id, provider: t.provider_id ?? 'none', model: t.model }, t.credits_reserved);
    followersFinished(followers, 'failed', t.provider_id ?? 'none');
    log.info('task failed', { task: t.id, provider: t.provider_id, code: error.code });
    if (jobMayRun) await abandon(t.provider_id, t.upstream_id);
  }

  /**
   * A retryable failure: abandon this attempt and submit again, to another provider first, with backoff
   * once every capable provider has failed this task, until the attempts run out.
   */
  async function retryOrFail(t: ClaimedTask, request: NormalizedRequest, error: TaskError): Promise<void> {
    if (t.attempt >= config.max_attempts) return finishFailed(t, error, true);
    const failedOn = new Set((await store.listAttempts([t.id])).filter((a) => a.outcome === 'retried').map((a) => a.provider_id));
    if (t.provider_id) failedOn.add(t.provider_id);
    const untried = router.candidates(request).some((c) => !failedOn.has(c.adapter.id));
    const backoffMs = untried ? 0 : config.retry_backoff_ms * 2 ** Math.max(0, t.attempt - 1);
    if (!(await store.requeue(t.id, t.lease_token, error, now() + backoffMs, now()))) return;
    log.info('task requeued', { task: t.id, provider: t.provider_id, code: error.code, attempt: t.attempt });
    await abandon(t.provider_id, t.upstream_id);
  }

  /** Start a new attempt on the cheapest available provider; undefined when the task must wait or ended. */
  async function startAttempt(t: ClaimedTask, request: NormalizedRequest): Promise<ClaimedTask | undefined> {
    if (router.candidates(request).length === 0) {
      await finishFailed(t, { code: 'no_provider_available', message: 'no configured provider can serve this request' });
      return undefined;
    }
    const attempts = await store.listAttempts([t.id]);
    const failedOn = new Set(attempts.filter((a) => a.outcome === 'retried').map((a) => a.provider_id));
    const full = new Set<string>();
    for (;;) {
      const active = await store.countActiveByProvider();
      // Prefer providers that have not failed this task yet; once all have, any of them again.
      const pick =
        router.choose(request, { exclude: new Set([...failedOn, ...full]), active }) ?? router.choose(request, { exclude: full, active });
      if (!pick) break;
      const provider = pick.adapter;
      const credits = usdToCredits(pick.usd, deps.usdPerCredit);
      const maxConcurrent = router.maxConcurrent(provider.id);
      let outcome: Awaited<ReturnType<Store['startAttempt']>>;
      try {
        outcome = await store.startAttempt(t.id, t.lease_token, provider.id, { usd: pick.usd, credits, ...(maxConcurrent !== undefined && { max_concurrent: maxConcurrent }) }, now());
      } catch (err) {
        if (!(err instanceof QuotaExceededError)) throw err;
        const message = `${provider.id} costs ${credits} credits, ${credits - t.credits_reserved} more than reserved, over the ${err.scope}'s ${err.quota} (${err.used} of ${err.limit} used)`;
        await finishFailed(t, { code: 'insufficient_quota', message }, false, true);
        return undefined;
      }
      if (outcome === 'lost') return undefined;
      if (outcome === 'provider_full') {
        full.add(provider.id); // another worker took its last slot meanwhile
        continue;
      }
      if (credits > t.credits_reserved) {
        metrics.credits.inc({ kind: 'reserved', team: t.owner_id, provider: provider.id, model: t.model }, credits - t.credits_reserved);
      }
      health.begin(provider.id, request.model);
      return { ...t, attempt: t.attempt + 1, provider_id: provider.id, upstream_id: null, credits_reserved: Math.max(credits, t.credits_reserved) };
    }
    // The wait for a provider counts from the end of the last attempt (or from the submission).
    const waitingSince = Math.max(t.created_at_ms, ...attempts.map((a) => a.ended_at_ms ?? 0));
    if (now() - waitingSince < deps.waitForProviderMs) {
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
    } else {
      const waitedS = Math.round(deps.waitForProviderMs / 1000);
      await finishFailed(t, { code: 'no_provider_available', message: `no provider able to serve this request was available for ${waitedS} s` });
    }
    return undefined;
  }

  /**
   * An uploaded image as the adapter takes it: its bytes (CallContext.image), or a signed link in `image_url`.
   * A terminal failure once the bytes are gone, or when no link can be made (the router left such providers out).
   */
  async function imageFor(adapter: ProviderAdapter, request: NormalizedRequest): Promise<{ sent: NormalizedRequest; image?: { bytes: Buffer; media_type: string } }> {
    const asset = request.image_asset;
    if (!asset) return { sent: request };
    if (!adapter.image_bytes) {
      if (!deps.imageLinks) throw new ProviderError('invalid_parameters', `${adapter.id} takes images only by URL and no server.public_url is set`, false);
      return { sent: { ...request, image_url: deps.imageLinks.sign(asset.sha256) } };
    }
    const bytes = await deps.images.read(asset.sha256);
    if (!bytes) throw new ProviderError('invalid_parameters', 'the uploaded reference image is no longer stored', false);
    return { sent: request, image: { bytes, media_type: asset.media_type } };
  }

  async function dispatch(claimed: ClaimedTask): Promise<void> {
    const request = JSON.parse(claimed.request_json) as NormalizedRequest;
    // A pending task with a provider is an attempt that was started but not confirmed (its worker
    // died, or the provider's answer was lost): resume it under the same idempotency key rather than
    // start a second job.
    const resumed = claimed.provider_id ? router.provider(claimed.provider_id) : undefined;
    const t = resumed ? claimed : await startAttempt(claimed, request);
    const provider = t && router.provider(t.provider_id!);
    if (!t || !provider) return;
    const key = `${t.id}.${t.attempt}`;
    const started = now();
    try {
      const { remix_of: remixOf } = request;
      const { sent, image } = await imageFor(provider, request);
      const { upstreamId } = await upstream(provider, 'submit', (signal) =>
        remixOf && provider.remix
          ? provider.remix(remixOf.upstream_id, sent, { idempotencyKey: key, signal })
          : provider.submit(sent, { idempotencyKey: key, signal, image }),
      );
      unansweredSubmits.delete(key);
      health.success(provider.id, request.model, now() - started);
      metrics.taskAttempts.inc({ provider: provider.id, outcome: 'submitted' });
      if (await store.markSubmitted(t.id, t.lease_token, upstreamId, now())) return;
      // Our lease is gone. Cancel the job only if the task ended without it (cancelled while we were
      // submitting); a worker that took the task over may be running this very job.
      const current = await store.getTask(t.id);
      if (current && (current.status === 'cancelled' || current.status === 'failed') && current.upstream_id !== upstreamId) {
        await abandon(provider.id, upstreamId);
      }
    } catch (err) {
      const error = asProviderError(err);
      metrics.taskAttempts.inc({ provider: provider.id, outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      blame(t, request.model, error);
      if (!error.retryable) return finishFailed(t, publicError(provider.id, error));
      const unanswered = (unansweredSubmits.get(key) ?? 0) + 1;
      if ((error.code === 'timeout' || error.code === 'network_error') && unanswered <= MAX_UNANSWERED_SUBMITS) {
        // The job may exist: ask again under the same key (the task keeps its provider and attempt).
        unansweredSubmits.set(key, unanswered);
        await store.releaseLease(t.id, t.lease_token, now() + config.retry_backoff_ms, now());
        return;
      }
      unansweredSubmits.delete(key);
      await retryOrFail(t, request, publicError(provider.id, error));
    }
  }

  async function poll(t: ClaimedTask): Promise<void> {
    const request = JSON.parse(t.request_json) as NormalizedRequest;
    const adapter = t.provider_id ? router.provider(t.provider_id) : undefined;
    const upstreamId = t.upstream_id;
    if (!adapter || !upstreamId) {
      return retryOrFail(t, request, { code: 'provider_unavailable', message: `provider '${t.provider_id}' is no longer configured` });
    }
    // The deadline is judged on the provider's answer: a job that finished while we were late to ask is collected.
    const overdue = t.submitted_at_ms !== null && now() - t.submitted_at_ms > config.upstream_deadline_ms;
    const timedOut = () => {
      const error = new ProviderError('generation_timeout', `${adapter.id} did not finish within ${config.upstream_deadline_ms} ms`, true);
      blame(t, request.model, error);
      return retryOrFail(t, request, publicError(adapter.id, error));
    };
    try {
      const result = await upstream(adapter, 'poll', (signal) => adapter.poll(upstreamId, { signal }));
      if (result.state === 'failed') {
        blame(t, request.model, result.error);
        if (!result.error.retryable) return finishFailed(t, publicError(adapter.id, result.error));
        return retryOrFail(t, request, publicError(adapter.id, result.error));
      }
      if (result.state !== 'completed') {
        if (overdue) return timedOut();
        await store.recordProgress(t.id, t.lease_token, result.progress, now() + config.poll_interval_ms, now());
        return;
      }
      await download(t, request, adapter, upstreamId);
    } catch (err) {
      const error = asProviderError(err);
      if (error.code === 'resource_not_found') {
        blame(t, request.model, error);
        return retryOrFail(t, request, publicError(adapter.id, error)); // the provider lost it
      }
      if (!error.retryable) return finishFailed(t, publicError(adapter.id, error), true);
      // Transient trouble polling: ask again later, without blaming the provider for one missed answer;
      // the deadline bounds the wait.
      if (overdue) return timedOut();
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
    }
  }

  async function download(t: ClaimedTask, request: NormalizedRequest, adapter: ProviderAdapter, upstreamId: string): Promise<void> {
    try {
      await upstream(adapter, 'download', async (signal) => assets.put(t.id, await adapter.download(upstreamId, { signal })));
    } catch (err) {
      if (isLocalFailure(err)) {
        log.error('cannot store video', { task: t.id, error: (err as Error).message });
        await store.releaseLease(t.id, t.lease_token, now() + config.retry_backoff_ms, now());
        return;
      }
      const error = asProviderError(err);
      blame(t, request.model, error);
      const failures = (downloadFailures.get(t.id) ?? 0) + 1;
      downloadFailures.set(t.id, failures);
      if (error.code === 'result_expired' || failures >= MAX_DOWNLOAD_FAILURES) {
        downloadFailures.delete(t.id);
        return retryOrFail(t, request, publicError(adapter.id, error));
      }
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
      return;
    }
    downloadFailures.delete(t.id);
    health.success(adapter.id, request.model);
    const followers = await store.markCompleted(t.id, t.lease_token, t.id, now());
    if (followers !== false) {
      const settled = (await store.getTask(t.id))?.credits_settled ?? 0;
      metrics.tasksFinished.inc({ status: 'completed', provider: adapter.id });
      metrics.credits.inc({ kind: 'settled', team: t.owner_id, provider: adapter.id, model: t.model }, settled);
      metrics.credits.inc({ kind: 'released', team: t.owner_id, provider: adapter.id, model: t.model }, t.credits_reserved - settled);
      followersFinished(followers, 'completed', adapter.id);
      deps.cache.followersServed(followers, settled);
      log.info('task completed', { task: t.id, provider: adapter.id, followers: followers.length });
      return;
    }
    // Our lease is gone. Remove the file only if the task ended without a video; a worker that took
    // the task over may be about to complete it with this very file.
    const status = (await store.getTask(t.id))?.status;
    if (status === 'cancelled' || status === 'failed') await assets.remove(t.id);
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
