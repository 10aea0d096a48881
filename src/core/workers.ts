// The background loops: the dispatcher submits pending tasks to a provider, the poller follows
// processing ones to completion. Both claim tasks through leases in the store, and every transition
// carries the lease token, so a task whose worker died is picked up again and finishes exactly once.
import pLimit from 'p-limit';
import { ProviderError, type CallContext, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { FailureStage } from '../routing/health';
import type { Router } from '../routing/router';
import { creditsFor } from '../routing/quote';
import { QuotaExceededError, type AttemptRecord, type ClaimedTask, type ProviderScope, type Store, type WorkPhase } from '../store/types';
import { verifyVideo } from '../media/probe-video';
import { fitImage } from '../media/fit-image';
import { AssetStoreError, type AssetStore } from '../assets/types';
import { readImage, type ImageReadOptions } from './image-digest';
import type { Config } from './config';
import { createLeasedLoop, type LeasedLoop } from './leased-loop';
import { nextPollDelayMs } from './poll-schedule';
import { taskLog, type Logger } from './logger';
import type { Metrics } from './metrics';
import type { ImageLinks } from './image-links';
import type { ReferenceImages } from './reference-images';
import type { ResultCache } from './result-cache';
import type { ReportSink } from './transition-reports';

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
  /** Jobs polled at once per provider, where a provider sets its own (`providers[].poll_concurrency`). */
  pollConcurrency?: ReadonlyMap<string, number>;
  /** Bounds on reading a reference image's URL to fit it (the same as for checking it at submission). */
  imageReads: ImageReadOptions;
  /** How long a task may wait for any provider to become available. */
  waitForProviderMs: number;
  /** The longest wait before a task goes back to a provider that already failed it. */
  maxRetryBackoffMs: number;
  /** The value of one credit, in whole micro-USD. */
  microUsdPerCredit: number;
  /** Takes what each finishing transition did (metrics, the deliverer's wake-up). */
  report: ReportSink;
  now: () => number;
}

/** A request as one provider takes it, with the image bytes to send where it takes bytes. */
interface PreparedRequest {
  sent: NormalizedRequest;
  image?: CallContext['image'];
}

export interface Workers {
  start(): void;
  /** Run the dispatcher and the pollers once now instead of at their next tick. */
  wake(): void;
  /** Run the dispatcher once now (a task was submitted). */
  wakeDispatcher(): void;
  /** Run the poller of this provider once now (a job of it is due now, e.g. told by a webhook). */
  wakePoller(providerId: string): void;
  /** Stop claiming; wait for the steps under way, up to `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

type TaskError = { code: string; message: string };
/**
 * How an attempt ended in failure, for `vidgate_attempts_total`: where (the create, or the accepted job), and whose
 * fault it was (the adapter's classification: retryable is the provider's, terminal the request's).
 */
type AttemptEnd = { stage: FailureStage; fault: 'provider' | 'request' };
/** The end of an attempt that failed with `error` at `stage`. */
const endedBy = (error: ProviderError, stage: FailureStage): AttemptEnd => ({ stage, fault: error.retryable ? 'provider' : 'request' });

/** Downloads that may fail in a row (reset, truncated) before the task is generated again elsewhere. */
const MAX_DOWNLOAD_FAILURES = 3;
/**
 * Slack around the time a create was sent when searching a provider's job list for it: the two hosts' clocks
 * differ, and OpenAI-shaped hosts give `created_at` in whole seconds.
 */
const CREATE_WINDOW_SLACK_MS = 2000;

/** A submission failure after which the job may well exist upstream: its answer was lost (timeout, reset). */
const answerLost = (error: ProviderError) => error.code === 'timeout' || error.code === 'network_error';

/**
 * What a tenant may see of a failure: a provider's own words about the request (terminal: content
 * policy, invalid parameters) help; its words about itself (hosts, stack traces, masked keys) do not.
 */
function publicError(provider: string, error: ProviderError): TaskError {
  return error.retryable
    ? { code: error.code, message: `${provider} failed on its side (${error.code})` }
    : { code: error.code, message: error.message.slice(0, 500) };
}

/** The gateway's own trouble keeping a video (its disk, its object store), which is no fault of the provider's. */
const isLocalFailure = (err: unknown) => err instanceof AssetStoreError || typeof (err as NodeJS.ErrnoException)?.syscall === 'string';

export function createWorkers(deps: WorkerDeps): Workers {
  const { store, router, assets, metrics, log, config, now } = deps;
  const { health } = router;
  // Per-process counters of consecutive trouble; lost on restart, which only resets their bound.
  const downloadFailures = new Map<string, number>();

  /** Time one call to a provider and record its outcome. */
  async function upstream<T>(adapter: ProviderAdapter, operation: 'submit' | 'poll' | 'download' | 'cancel', call: (signal: AbortSignal) => Promise<T>, graceMs = 0): Promise<T> {
    const end = metrics.upstreamDuration.startTimer({ provider: adapter.id, operation });
    const timeoutMs = operation === 'download' ? config.download_timeout_ms : config.upstream_timeout_ms;
    // Not AbortSignal.timeout: its timer would outlive the call by up to timeoutMs, thousands of them at once when
    // following thousands of jobs.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException('The operation timed out', 'TimeoutError')), timeoutMs + graceMs);
    try {
      const result = await call(deadline.signal);
      end({ outcome: 'ok' });
      return result;
    } catch (err) {
      if (err instanceof AssetStoreError) {
        end({ outcome: 'ok' }); // the provider answered; keeping its video failed here
        throw err;
      }
      const error = asProviderError(err);
      end({ outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      throw error;
    } finally {
      clearTimeout(timer); // every call's result is complete when it returns (a download is stored by then)
    }
  }

  /**
   * A failed attempt where the provider is at fault counts against its health, once; the request's own faults
   * do not. `stage`: whether the submit itself failed or the accepted job did (see FailureStage).
   */
  function blame(t: ClaimedTask, model: string, error: ProviderError, stage: FailureStage) {
    if (!t.provider_id) return;
    // The request's fault says nothing of the provider: a probe that ends so is given back for another task.
    if (!error.retryable) return health.release(t.provider_id, model, t.id);
    taskLog(log, t).warn({ provider: t.provider_id, code: error.code, error: error.message }, 'provider failure');
    health.jobFailed(t.provider_id, model, { reason: error.code, stage, retry_after_ms: error.retryAfterMs });
  }

  /**
   * Why no provider can take this task now, one clause per capable provider, in public words only (codes,
   * never a provider's own message): "openai failed this task (server_error); tasks is unavailable (breaker open)".
   */
  function whyNoProvider(request: NormalizedRequest, attempts: readonly AttemptRecord[], active: ReadonlyMap<string, number>): TaskError {
    const clauses = router.candidates(request).map(({ adapter }) => {
      const failed = attempts.filter((a) => a.provider_id === adapter.id && a.outcome === 'retried').at(-1);
      if (failed) return `${adapter.id} failed this task (${failed.error_code ?? 'error'})`;
      if (!health.allows(adapter.id, request.model)) return `${adapter.id} is unavailable (circuit breaker ${health.snapshot(adapter.id, request.model).state})`;
      const limit = router.maxConcurrent(adapter.id);
      if (limit !== undefined && (active.get(adapter.id) ?? 0) >= limit) return `${adapter.id} is at its concurrency limit`;
      return `${adapter.id} is available`;
    });
    return { code: 'no_provider_available', message: `no provider could serve this request: ${clauses.join('; ')}` };
  }

  /** Every capable provider has failed this task or cannot take a task now. */
  function everyProviderOut(request: NormalizedRequest, failedOn: ReadonlySet<string>, active: ReadonlyMap<string, number>): boolean {
    return !router.choose(request, { exclude: failedOn, active });
  }

  /** Stop an upstream job nobody will collect, where the provider allows. */
  async function abandon(providerId: string | null, upstreamId: string | null) {
    const adapter = providerId ? router.provider(providerId) : undefined;
    const cancel = adapter?.cancel?.bind(adapter);
    if (adapter && cancel && upstreamId) await upstream(adapter, 'cancel', (signal) => cancel(upstreamId, { signal })).catch(() => undefined);
  }

  /** Count the end of the task's current attempt (`vidgate_attempts_total`), once its transition was made. */
  function countFailedAttempt(t: ClaimedTask, ended: AttemptEnd | undefined) {
    if (!ended || !t.provider_id) return;
    metrics.attempts.inc({ provider: t.provider_id, model: t.model, stage: ended.stage, result: 'failed', fault: ended.fault });
  }

  /**
   * `own`: the task's own failure (its quota), which its followers do not share: they carry on under an heir.
   * `ended`: how the current attempt ended, when the failure ends one (counted once the task is failed).
   */
  async function finishFailed(t: ClaimedTask, error: TaskError, jobMayRun = false, own = false, ended?: AttemptEnd): Promise<void> {
    const report = await store.markFailed(t.id, t.lease_token, error, now(), { hand_over: own });
    if ('refused' in report) return;
    countFailedAttempt(t, ended);
    deps.report(report);
    taskLog(log, t).info({ provider: t.provider_id, code: error.code }, 'task failed');
    if (jobMayRun) await abandon(t.provider_id, t.upstream_id);
  }

  /**
   * A retryable failure: abandon this attempt and submit again, to another provider first, with backoff
   * once every capable provider has failed this task, until the attempts run out.
   */
  async function retryOrFail(t: ClaimedTask, request: NormalizedRequest, error: TaskError, ended?: AttemptEnd): Promise<void> {
    const attempts = await store.listAttempts([t.id]);
    const failedOn = new Set(attempts.filter((a) => a.outcome === 'retried').map((a) => a.provider_id));
    if (t.provider_id) failedOn.add(t.provider_id);
    if (t.attempt >= config.max_attempts) {
      // Out of attempts: when several providers could serve it and every one is out, say so for each of them
      // rather than give the last one's error (with a single provider, its own error says it all).
      const active = await store.countActiveByProvider();
      if (router.candidates(request).length < 2 || !everyProviderOut(request, failedOn, active)) return finishFailed(t, error, true, false, ended);
      const current = attempts.map((a) => (a.n === t.attempt ? { ...a, outcome: 'retried' as const, error_code: error.code } : a));
      return finishFailed(t, whyNoProvider(request, current, active), true, false, ended);
    }
    const untried = router.candidates(request).some((c) => !failedOn.has(c.adapter.id));
    const backoffMs = untried ? 0 : Math.min(config.retry_backoff_ms * 2 ** Math.max(0, t.attempt - 1), deps.maxRetryBackoffMs);
    if ((await store.requeue(t.id, t.lease_token, error, now() + backoffMs, now())) !== 'done') return;
    countFailedAttempt(t, ended);
    // A failover: the provider failed it, and the next attempt goes to another one, the next cheapest untried.
    if (ended?.fault === 'provider' && untried && t.provider_id) metrics.failovers.inc({ provider: t.provider_id, model: t.model });
    taskLog(log, t).info({ provider: t.provider_id, code: error.code, attempt: t.attempt }, 'task requeued');
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
      // The pick takes its breaker's gate (the one half-open probe, leased for all replicas) at once; it is given back
      // if the attempt does not start.
      const pick =
        (await router.claim(request, { exclude: new Set([...failedOn, ...full]), active, holder: t.id })) ??
        (await router.claim(request, { exclude: full, active, holder: t.id }));
      if (!pick) break;
      const provider = pick.adapter;
      const giveBack = () => health.release(provider.id, request.model, t.id);
      const credits = creditsFor(pick.micro_usd, deps.microUsdPerCredit);
      const maxConcurrent = router.maxConcurrent(provider.id);
      let outcome: Awaited<ReturnType<Store['startAttempt']>>;
      try {
        outcome = await store.startAttempt(t.id, t.lease_token, provider.id, { micro_usd: pick.micro_usd, credits, ...(maxConcurrent !== undefined && { max_concurrent: maxConcurrent }) }, now());
      } catch (err) {
        giveBack();
        if (!(err instanceof QuotaExceededError)) throw err;
        const message = `${provider.id} costs ${credits} credits, ${credits - t.credits_reserved} more than reserved, over the ${err.scope}'s ${err.quota} (${err.used} of ${err.limit} used)`;
        await finishFailed(t, { code: 'insufficient_quota', message }, false, true);
        return undefined;
      }
      if (outcome !== 'started') giveBack();
      if (outcome === 'provider_full') {
        full.add(provider.id); // another worker took its last slot meanwhile
        continue;
      }
      if (outcome !== 'started') return undefined; // the task is no longer ours to start
      if (credits > t.credits_reserved) {
        metrics.credits.inc({ kind: 'reserved', team: t.owner_id, provider: provider.id, model: t.model }, credits - t.credits_reserved);
        metrics.failoverSurcharge.inc({ team: t.owner_id, provider: provider.id, model: t.model }, credits - t.credits_reserved);
      }
      return { ...t, attempt: t.attempt + 1, provider_id: provider.id, upstream_id: null, credits_reserved: Math.max(credits, t.credits_reserved) };
    }
    // The wait for a provider counts from the end of the last attempt (or from the submission).
    const waitingSince = Math.max(t.created_at_ms, ...attempts.map((a) => a.ended_at_ms ?? 0));
    if (now() - waitingSince < deps.waitForProviderMs) {
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
    } else {
      await finishFailed(t, whyNoProvider(request, attempts, await store.countActiveByProvider()));
    }
    return undefined;
  }

  async function dispatch(claimed: ClaimedTask): Promise<void> {
    const request = JSON.parse(claimed.request_json) as NormalizedRequest;
    const resumed = claimed.provider_id ? router.provider(claimed.provider_id) : undefined;
    if (resumed) return resume(claimed, request, resumed);
    const t = await startAttempt(claimed, request);
    const provider = t && router.provider(t.provider_id!);
    if (t && provider) await submit(t, request, provider);
  }

  /**
   * A pending task with a provider is an attempt started but never confirmed: its worker died around the
   * create. A provider that honours idempotency keys is asked again under the same key (the same job, never
   * a second), unless its breaker is open; one that lists its jobs is searched; otherwise the task moves on
   * rather than risk a second paid job.
   */
  async function resume(t: ClaimedTask, request: NormalizedRequest, provider: ProviderAdapter): Promise<void> {
    if (provider.capabilities.idempotency_keys && health.allows(provider.id, request.model)) return submit(t, request, provider);
    const attempt = (await store.listAttempts([t.id])).find((a) => a.n === t.attempt);
    const upstreamId = await recoverJob(t, request, provider, attempt?.started_at_ms ?? t.updated_at_ms);
    if (upstreamId !== undefined) return adopt(t, provider, upstreamId);
    await retryOrFail(t, request, { code: 'submission_unconfirmed', message: `the submission to ${provider.id} was never confirmed` });
  }

  /**
   * Sends the attempt's create once. Its answer lost (timeout, reset) counts against the provider at once;
   * the job it may have made is then learned (a late answer, or recoverJob), or the task fails over. A hanging
   * provider thus holds a task for one timeout plus at most `lost_answer_grace_ms`.
   */
  async function submit(t: ClaimedTask, request: NormalizedRequest, provider: ProviderAdapter): Promise<void> {
    const started = now();
    // Where nothing could learn the job of a lost answer afterwards, a late answer is awaited for the grace;
    // the timeout counts against the provider at once all the same.
    let late = false;
    const lateAnswer = provider.capabilities.idempotency_keys || provider.findJob ? undefined : {
      grace_ms: config.lost_answer_grace_ms,
      onTimeout: () => {
        late = true;
        blame(t, request.model, new ProviderError('timeout', `${provider.id} did not answer the create in time`, true), 'submit');
      },
    };
    let upstreamId: string | undefined;
    let prepared: PreparedRequest = { sent: request };
    try {
      prepared = await referenceImage(t, request, provider);
      const ctx = { idempotencyKey: idempotencyKey(t), image: prepared.image, lateAnswer };
      ({ upstreamId } = await upstream(provider, 'submit', (signal) => create(provider, prepared.sent, { ...ctx, signal }), lateAnswer?.grace_ms));
      if (late) taskLog(log, t).info({ provider: provider.id, upstream_id: upstreamId }, 'late create answer adopted');
      // The create answer describes a queued job: after an outage of failed submits, that ends the probe.
      else health.jobProgressing(provider.id, request.model);
    } catch (err) {
      const error = asProviderError(err);
      if (!late) blame(t, request.model, error, 'submit');
      if (!error.retryable) return finishFailed(t, publicError(provider.id, error), false, false, endedBy(error, 'submit'));
      if (answerLost(error)) upstreamId = await recoverJob(t, prepared.sent, provider, started, prepared.image);
      if (upstreamId === undefined) return retryOrFail(t, request, publicError(provider.id, error), endedBy(error, 'submit'));
    }
    await adopt(t, provider, upstreamId);
  }

  /** `<task id>.<attempt>`: the same for every send of one attempt, so a provider that honours it makes one job. */
  const idempotencyKey = (t: ClaimedTask) => `${t.id}.${t.attempt}`;

  /**
   * The job a create made when its answer was lost or never confirmed, learned without making a second one,
   * within `lost_answer_grace_ms`: a provider that honours idempotency keys is asked again under the same key
   * (unless its breaker is open); one that lists its jobs (`findJob`) is searched for a job matching this
   * request, created since `sentSinceMs`. Undefined when neither can tell: the task then moves on.
   */
  async function recoverJob(t: ClaimedTask, request: NormalizedRequest, provider: ProviderAdapter, sentSinceMs: number, image?: CallContext['image']): Promise<string | undefined> {
    const signal = AbortSignal.timeout(config.lost_answer_grace_ms);
    try {
      if (provider.capabilities.idempotency_keys) {
        if (!health.allows(provider.id, request.model)) return undefined;
        return (await create(provider, request, { idempotencyKey: idempotencyKey(t), signal, image })).upstreamId;
      }
      if (!provider.findJob) return undefined;
      const window = { from_ms: sentSinceMs - CREATE_WINDOW_SLACK_MS, to_ms: now() + CREATE_WINDOW_SLACK_MS };
      const [upstreamId] = await provider.findJob(request, window, { signal });
      if (upstreamId !== undefined) taskLog(log, t).info({ provider: provider.id, upstream_id: upstreamId }, 'lost create answer reconciled');
      return upstreamId;
    } catch (err) {
      taskLog(log, t).warn({ provider: provider.id, error: asProviderError(err).message }, 'cannot learn the job of a lost create answer');
      return undefined;
    }
  }

  /** One create: a remix of the provider's own earlier job, or a new job. */
  function create(provider: ProviderAdapter, request: NormalizedRequest, ctx: CallContext): Promise<{ upstreamId: string }> {
    return request.remix_of && provider.remix ? provider.remix(request.remix_of.upstream_id, request, ctx) : provider.submit(request, ctx);
  }

  /**
   * The request as this provider takes its reference image. A provider that takes bytes gets the image (an upload
   * from the image store, or a URL's bytes read through the outbound guard) fitted to the request's size (pad, or
   * the request's resize_mode), as a PNG; where a URL's image cannot be read or fitted, the URL is sent as given.
   * A provider that takes URLs gets an upload as a signed link to it.
   * @throws ProviderError `invalid_parameters` (terminal) when an upload is gone, or cannot be linked.
   */
  async function referenceImage(t: ClaimedTask, request: NormalizedRequest, provider: ProviderAdapter): Promise<PreparedRequest> {
    const { image_asset: asset, image_url: url } = request;
    if (!asset && url === undefined) return { sent: request };
    if (provider.capabilities.reference_image === 'url') {
      if (!asset) return { sent: request };
      if (!deps.imageLinks) throw new ProviderError('invalid_parameters', `${provider.id} takes images only by URL and no server.public_url is set`, false);
      return { sent: { ...request, image_url: deps.imageLinks.sign(asset.sha256) } };
    }
    const bytes = asset ? await deps.images.read(asset.sha256) : await readImage(url!, deps.imageReads).then((r) => ('bytes' in r ? r.bytes : undefined));
    if (!bytes) {
      if (asset) throw new ProviderError('invalid_parameters', 'the uploaded reference image is no longer stored', false);
      taskLog(log, t).warn({ provider: provider.id }, 'cannot read the reference image; its URL is sent as it is');
      return { sent: request };
    }
    try {
      return { sent: request, image: { bytes: await fitImage(bytes, request.size, request.resize_mode ?? 'pad'), media_type: 'image/png' } };
    } catch (err) {
      taskLog(log, t).warn({ provider: provider.id, error: (err as Error).message }, 'cannot fit the reference image; it is sent as it is');
      return asset ? { sent: request, image: { bytes, media_type: asset.media_type } } : { sent: request };
    }
  }


  /** The attempt's job is `upstreamId`: record it on the attempt and follow it (pending -> processing). */
  async function adopt(t: ClaimedTask, provider: ProviderAdapter, upstreamId: string): Promise<void> {
    if ((await store.markSubmitted(t.id, t.lease_token, upstreamId, now())) === 'done') {
      // The first submission a provider accepted ends the task's wait in the queue (submitted_at_ms stays set after).
      if (t.submitted_at_ms === null) metrics.queueWait.observe({ model: t.model }, (now() - t.created_at_ms) / 1000);
      return void taskLog(log, t).info({ provider: provider.id, upstream_id: upstreamId, attempt: t.attempt }, 'task sent to provider');
    }
    // Our lease is gone. Cancel the job only if the task ended without it (cancelled while we were
    // submitting); a worker that took the task over may be running this very job.
    const current = await store.getTask(t.id);
    if (current && (current.status === 'cancelled' || current.status === 'failed') && current.upstream_id !== upstreamId) {
      await abandon(provider.id, upstreamId);
    }
  }

  /** Polls one running job; a completed one is downloaded outside the poller's slot (`freeSlot`, see `downloads`). */
  async function poll(t: ClaimedTask, freeSlot: () => void): Promise<void> {
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
      blame(t, request.model, error, 'job');
      return retryOrFail(t, request, publicError(adapter.id, error), endedBy(error, 'job'));
    };
    // Each job by its own clock: see poll-schedule.ts.
    const backlogged = pollers.get(adapter.id)?.backlogged() ?? false;
    // Counted from when this poll was sent, so that its own latency does not stretch the gap to the next one.
    const sentAt = now();
    const nextPollAt = (pollAfterMs?: number) => sentAt + nextPollDelayMs(sentAt - (t.submitted_at_ms ?? sentAt), pollAfterMs, config, backlogged);
    try {
      const result = await upstream(adapter, 'poll', (signal) => adapter.poll(upstreamId, { signal }));
      if (result.state === 'failed') {
        blame(t, request.model, result.error, 'job');
        const ended = endedBy(result.error, 'job');
        if (!result.error.retryable) return finishFailed(t, publicError(adapter.id, result.error), false, false, ended);
        return retryOrFail(t, request, publicError(adapter.id, result.error), ended);
      }
      if (result.state !== 'completed') {
        health.jobProgressing(adapter.id, request.model);
        if (overdue) return timedOut();
        const nextAtMs = nextPollAt(result.poll_after_ms);
        await store.recordProgress(t.id, t.lease_token, result.progress, nextAtMs, now());
        taskLog(log, t).debug({ provider: adapter.id, progress: result.progress, next_poll_in_ms: nextAtMs - sentAt }, 'task polled');
        return;
      }
      freeSlot();
      await downloads.get(adapter.id)!(() => download(t, request, adapter, upstreamId));
    } catch (err) {
      const error = asProviderError(err);
      if (error.code === 'resource_not_found') {
        blame(t, request.model, error, 'job');
        return retryOrFail(t, request, publicError(adapter.id, error), endedBy(error, 'job')); // the provider lost it
      }
      if (!error.retryable) return finishFailed(t, publicError(adapter.id, error), true, false, endedBy(error, 'job'));
      // Transient trouble polling: ask again later, without blaming the provider for one missed answer;
      // the deadline bounds the wait.
      if (overdue) return timedOut();
      await store.releaseLease(t.id, t.lease_token, nextPollAt(), now());
    }
  }

  async function download(t: ClaimedTask, request: NormalizedRequest, adapter: ProviderAdapter, upstreamId: string): Promise<void> {
    try {
      // Probed before it is kept: a video of another shape than asked is the provider's fault (output_mismatch).
      const verify = (file: string) => verifyVideo(file, request);
      await upstream(adapter, 'download', async (signal) => assets.put(t.id, await adapter.download(upstreamId, { signal }), verify));
    } catch (err) {
      if (isLocalFailure(err)) {
        taskLog(log, t).error({ error: (err as Error).message }, 'cannot store video');
        await store.releaseLease(t.id, t.lease_token, now() + config.retry_backoff_ms, now());
        return;
      }
      const error = asProviderError(err);
      const failures = (downloadFailures.get(t.id) ?? 0) + 1;
      downloadFailures.set(t.id, failures);
      // An expired link or a wrong video will not come right by downloading it again: generate anew elsewhere.
      if (error.code === 'result_expired' || error.code === 'output_mismatch' || failures >= MAX_DOWNLOAD_FAILURES) {
        downloadFailures.delete(t.id);
        blame(t, request.model, error, 'job'); // the attempt ends here: one failed job
        return retryOrFail(t, request, publicError(adapter.id, error), endedBy(error, 'job'));
      }
      await store.releaseLease(t.id, t.lease_token, now() + config.poll_interval_ms, now());
      return;
    }
    downloadFailures.delete(t.id);
    health.jobSucceeded(adapter.id, request.model, t.submitted_at_ms === null ? undefined : now() - t.submitted_at_ms);
    const report = await store.markCompleted(t.id, t.lease_token, t.id, now());
    if (!('refused' in report)) {
      deps.report(report);
      const [completed, ...followers] = report.finished.map((f) => f.task);
      deps.cache.followersServed(followers, completed?.credits_settled ?? 0);
      taskLog(log, t).info({ provider: adapter.id, followers: followers.length }, 'task completed');
      await adapter.release?.(upstreamId, {}).catch((err: Error) => taskLog(log, t).warn({ error: err.message }, 'provider copy not released'));
      return;
    }
    // Our lease is gone. Remove the file only if the task ended without a video; a worker that took
    // the task over may be about to complete it with this very file.
    const status = (await store.getTask(t.id))?.status;
    if (status === 'cancelled' || status === 'failed') await assets.remove(t.id);
  }

  /** One leased loop over the due tasks of a phase (of some providers only, with `providers`). */
  const loop = (name: string, phase: WorkPhase, step: (t: ClaimedTask, freeSlot: () => void) => Promise<void>, concurrency: number, providers?: ProviderScope, intervalMs = config.poll_interval_ms) =>
    createLeasedLoop<ClaimedTask>({
      name,
      claim: (limit, leaseMs, nowMs) => store.claimDue(phase, limit, leaseMs, nowMs, providers),
      renew: async (tasks, leaseUntilMs) => void (await store.renewLeases(tasks, leaseUntilMs)),
      step,
      concurrency,
      interval_ms: intervalMs,
      lease_ms: config.lease_ms,
      now,
      log,
      logFields: (t) => ({ task_id: t.id, team_id: t.owner_id }),
    });
  // One poller per provider, each with its own concurrency, so that a slow provider does not hold up the others'
  // polls; and one for the jobs of providers no longer configured (found after a restart with another config:
  // they are failed over, so it rarely has work and ticks once per lease).
  const configured = router.providers.map((p) => p.id);
  const pollConcurrency = (id: string) => deps.pollConcurrency?.get(id) ?? config.poll_concurrency;
  const pollers = new Map<string, LeasedLoop>(configured.map((id) => [id, loop(`poller:${id}`, 'poll', poll, pollConcurrency(id), { only: id })]));
  // A completed job's download, probe and store (hundreds of ms when many finish at once) run outside the poller's
  // slots, so that a burst of completions does not hold up the other jobs' polls; at most as many at once per
  // provider as its polls. The task's lease is renewed by its poller meanwhile.
  const downloads = new Map(configured.map((id) => [id, pLimit(pollConcurrency(id))]));
  const dispatcher = loop('dispatcher', 'dispatch', dispatch, config.batch_size);
  const loops = [
    dispatcher,
    ...pollers.values(),
    loop('poller:unconfigured', 'poll', poll, 1, { except: configured }, config.lease_ms),
  ];

  return {
    start: () => loops.forEach((l) => l.start()),
    wake: () => loops.forEach((l) => l.wake()),
    wakeDispatcher: () => dispatcher.wake(),
    wakePoller: (providerId) => pollers.get(providerId)?.wake(),
    stop: async (timeoutMs) => void (await Promise.all(loops.map((l) => l.stop(timeoutMs)))),
  };
}

function asProviderError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = err as Error;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new ProviderError('timeout', e.message, true);
  return new ProviderError('provider_error', e?.message ?? String(err), true);
}
