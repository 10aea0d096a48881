// The task use cases behind the front doors: submit, read, list, cancel, locate the stored video.
import crypto from 'node:crypto';
import type { NormalizedRequest } from '../providers/types';
import type { Router } from '../routing/router';
import { creditsFor } from '../routing/quote';
import { IdempotencyConflictError, QuotaExceededError, TERMINAL_STATUSES, type AttemptRecord, type Door, type Store, type TaskRecord, type TaskStatus } from '../store/types';
import { AssetMissing, type AssetRef, type AssetStat, type AssetStore } from '../assets/types';
import type { Caller } from './teams';
import { ApiError, conflict, forbidden, gone, invalidRequest, quotaError, taskNotFound } from './errors';
import { taskLog, type Logger } from './logger';
import type { ImageUpload, ReferenceImages } from './reference-images';
import type { ResultCache } from './result-cache';
import type { ReportSink } from './transition-reports';
import type { ImageVariant, VideoVariants } from './video-variants';

/** A submission, whichever front door it came through. */
export interface NormalizedGeneration {
  request: NormalizedRequest;
  callback_url: string | null;
  /** false when the caller asked for a fresh generation. */
  cache: boolean;
  /** The client's `Idempotency-Key` header, when it sent one. */
  idempotency_key?: string;
  /** An uploaded reference image (the request then has no `image_url`). */
  image_upload?: ImageUpload;
  /** The field of `request.image_url` in the door's wire format, for errors; `image_urls` by default. */
  image_param?: string;
  /** The door it came through, which shapes its webhook body; `native` by default. */
  door?: Door;
}

/** A stored file to send: which one, and its size. */
export interface StoredFile extends AssetStat {
  ref: AssetRef;
}

const videoExpired = (id: string) => gone('video_expired', `the video of task '${id}' has passed its retention and was deleted`);

/** How long an `Idempotency-Key` is honoured, as payment APIs do (Stripe: 24 hours). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export interface TaskServiceDeps {
  store: Store;
  router: Router;
  assets: AssetStore;
  log: Logger;
  cache: ResultCache;
  /** The value of one credit, in whole micro-USD. */
  microUsdPerCredit: number;
  images: ReferenceImages;
  variants: VideoVariants;
  upstreamTimeoutMs: number;
  now: () => number;
  /** Called after a task is created, so the dispatcher picks it up without waiting for its next tick. */
  onSubmitted: () => void;
  /** Takes what each transition did (metrics, the deliverer's wake-up). */
  report: ReportSink;
}

export interface ListQuery {
  status?: TaskStatus;
  limit: number;
  /** A cursor returned by an earlier page (`nextCursor`). */
  after?: string;
  /** Or the id of a task of the caller's: the page starts past it (the OpenAI door's `after`). */
  afterId?: string;
  order?: 'asc' | 'desc';
}

export type TaskService = ReturnType<typeof createTaskService>;

export function createTaskService(deps: TaskServiceDeps) {
  const { store, router, assets, log } = deps;

  async function ownTask(caller: Caller, id: string): Promise<TaskRecord> {
    const task = await store.getTask(id);
    // Another owner's task, or a deleted one, answers exactly like one that does not exist.
    if (!task || task.owner_id !== caller.owner_id || task.deleted_at_ms !== null) throw taskNotFound(id);
    return task;
  }

  /**
   * Where a page that starts after task `id` begins. A task of the caller's deleted since the last page still marks
   * its place, so paging goes on; any other id is a bad cursor (400), never a hint that another team's task exists.
   */
  async function pagePosition(caller: Caller, id: string): Promise<TaskRecord> {
    const task = await store.getTask(id);
    if (!task || task.owner_id !== caller.owner_id) throw invalidRequest('invalid_cursor', `'after' is not the id of one of your videos: pass the previous page's last_id`, 'after');
    return task;
  }

  /** The task whose upstream job made this task's video: itself, or the source of a hit or follower. */
  async function generationOf(task: TaskRecord): Promise<TaskRecord> {
    let t = task;
    for (let source = t.source_id; source !== null; source = t.source_id) {
      const next = await store.getTask(source);
      if (!next) break;
      t = next;
    }
    return t;
  }

  /**
   * Checks the reference image (400 `invalid_image`); answers the original task for a repeated Idempotency-Key
   * (409 `idempotency_key_reused` when the body differs); serves an identical request's stored result, or follows
   * its running generation; else reserves the quote on the cheapest capable provider and queues the task.
   * Refuses over quota (402, 429).
   */
  /**
   * How the cache would serve this request of the caller's now, for an estimate (nothing changes): `hit` or
   * `coalesced` with what it would charge in credits, or null (generated; or the cache is off). `imageSha256` is
   * the hex SHA-256 of the reference image's bytes, as `submit` keys an uploaded one; an image URL without it is
   * not read here, so its outlook is unknown (null).
   */
  async function cacheOutlook(caller: Caller, request: NormalizedRequest, imageSha256?: string): Promise<{ status: 'hit' | 'coalesced'; credits: number } | null> {
    if (request.image_url !== undefined && imageSha256 === undefined) return null;
    const { cache_key: key, lookup } = await deps.cache.plan(caller.owner_id, request, true, imageSha256);
    if (key === null || !lookup) return null;
    const status = await store.cacheOutlook(key, lookup.fresh_since_ms);
    return status && { status, credits: lookup.hit_credits };
  }

  async function submit(caller: Caller, generation: NormalizedGeneration): Promise<TaskRecord> {
    const { callback_url: callbackUrl, cache: wantsCache, idempotency_key: idempotencyKey } = generation;
    assertModelAllowed(caller, generation.request.model);
    const { request, sha256: imageSha256 } = await deps.images.prepare(generation.request, generation.image_upload, generation.image_param ?? 'image_urls');
    // The quote is what an estimate shows: the provider that would serve it now, else the cheapest capable.
    const quote = router.choose(request, { active: await store.countActiveByProvider() }) ?? router.candidates(request)[0];
    if (!quote) throw invalidRequest('unsupported_combination', 'no provider can serve this request');
    const quotedCredits = creditsFor(quote.micro_usd, deps.microUsdPerCredit);
    const { lookup, ...cachePlan } = await deps.cache.plan(caller.owner_id, request, wantsCache, imageSha256);
    const nowMs = deps.now();
    const id = `task_${crypto.randomBytes(12).toString('hex')}`;
    let task: TaskRecord;
    try {
      let report;
      ({ task, report } = await store.createTask({
        id,
        owner_id: caller.owner_id,
        key_id: caller.key.id,
        model: request.model,
        request_json: JSON.stringify(request),
        callback_url: callbackUrl,
        door: generation.door ?? 'native',
        credits_reserved: quotedCredits,
        created_at_ms: nowMs,
        ...cachePlan,
        ...(idempotencyKey !== undefined && {
          idempotency: { key: idempotencyKey, request_hash: requestHash({ ...generation, request }, imageSha256), since_ms: nowMs - IDEMPOTENCY_WINDOW_MS },
        }),
      }, lookup));
      deps.report(report);
    } catch (err) {
      if (err instanceof QuotaExceededError) throw quotaError(err, nowMs);
      if (err instanceof IdempotencyConflictError) {
        const why = err.reason === 'another_request' ? `was used within 24 hours for another request (task '${err.task_id}')` : `belongs to task '${err.task_id}', which was deleted`;
        throw new ApiError(409, 'conflict_error', 'idempotency_key_reused', `this Idempotency-Key ${why}; use a new key for a new request`, 'Idempotency-Key');
      }
      throw err;
    }
    if (task.id !== id) return task; // a retry under an Idempotency-Key: the original, charged once
    deps.cache.served(task, quotedCredits);
    taskLog(log, task).info({ key_id: caller.key.id, model: request.model, door: task.door, cache: task.cache_status, credits_reserved: task.credits_reserved }, 'task accepted');
    if (task.cache_status !== 'hit' && task.cache_status !== 'coalesced') deps.onSubmitted();
    return task;
  }

  async function cancel(caller: Caller, id: string): Promise<TaskRecord> {
    const cancelled = await store.cancel(id, caller.owner_id, deps.now());
    if (!cancelled) {
      const task = await ownTask(caller, id);
      throw conflict('task_finished', `task '${id}' is already ${task.status}`);
    }
    const { task: before, abandon_job: abandonJob, report } = cancelled;
    deps.report(report);
    const adapter = before.provider_id ? router.provider(before.provider_id) : undefined;
    deps.onSubmitted(); // a follower may have been queued to generate anew
    if (abandonJob && adapter?.cancel && before.upstream_id) {
      await adapter
        .cancel(before.upstream_id, { signal: AbortSignal.timeout(deps.upstreamTimeoutMs) })
        .catch((err: Error) => taskLog(log, before).warn({ provider: adapter.id, error: err.message }, 'upstream cancel failed'));
    }
    return ownTask(caller, id);
  }

  /**
   * The caller's task, once it has a video. 409 `task_failed` / `task_cancelled` for one that never will, and
   * `task_not_completed` while it runs; `needed` says what waits for the video.
   */
  async function completedTask(caller: Caller, id: string, needed: string): Promise<TaskRecord & { asset_key: string }> {
    const task = await ownTask(caller, id);
    if (task.status === 'failed' || task.status === 'cancelled') {
      throw conflict(`task_${task.status}`, `task '${id}' ${task.status === 'failed' ? 'failed' : 'was cancelled'} and will never have a video; submit it again`);
    }
    if (task.status !== 'completed' || !task.asset_key) throw conflict('task_not_completed', `task '${id}' is ${task.status}; ${needed} once it completes`);
    return task as TaskRecord & { asset_key: string };
  }

  /** The stored MP4, once the task has completed and while it is retained. */
  async function videoFile(caller: Caller, id: string): Promise<StoredFile> {
    return (await storedVideo(caller, id)).file;
  }

  /** The completed task with its stored MP4; 410 `video_expired` once retention has deleted it. */
  async function storedVideo(caller: Caller, id: string): Promise<{ task: TaskRecord & { asset_key: string }; file: StoredFile }> {
    const task = await completedTask(caller, id, 'its video is available');
    const ref = { key: task.asset_key };
    const stat = task.asset_expired ? undefined : await assets.stat(ref);
    if (!stat) throw videoExpired(id);
    return { task, file: { ref, ...stat } };
  }

  return {
    submit,
    cacheOutlook,

    get: ownTask,

    /** The attempts of these tasks, by task id. */
    async attemptsOf(tasks: readonly TaskRecord[]): Promise<Map<string, AttemptRecord[]>> {
      const byTask = new Map<string, AttemptRecord[]>(tasks.map((t) => [t.id, []]));
      for (const a of await store.listAttempts(tasks.map((t) => t.id))) byTask.get(a.task_id)?.push(a);
      return byTask;
    },

    async list(caller: Caller, query: ListQuery): Promise<{ tasks: TaskRecord[]; nextCursor: string | null }> {
      const rows = await store.listTasks({
        owner_id: caller.owner_id,
        status: query.status,
        limit: query.limit + 1,
        order: query.order,
        before: query.afterId !== undefined ? await pagePosition(caller, query.afterId) : query.after === undefined ? undefined : decodeCursor(query.after),
      });
      const tasks = rows.slice(0, query.limit);
      const last = tasks.at(-1);
      const nextCursor = rows.length > query.limit && last ? encodeCursor(last) : null;
      return { tasks, nextCursor };
    },

    cancel,
    videoFile,

    /** A JPEG made from the stored video (see video-variants.ts), once the task has completed. */
    async imageFile(caller: Caller, id: string, variant: ImageVariant): Promise<StoredFile> {
      const { task } = await storedVideo(caller, id);
      const { duration_s: durationS } = JSON.parse(task.request_json) as NormalizedRequest;
      const ref = await deps.variants.ensure(task.asset_key, variant, durationS).catch((err: unknown) => {
        throw err instanceof AssetMissing ? videoExpired(id) : err; // removed since it was found
      });
      const stat = await assets.stat(ref);
      if (!stat) throw videoExpired(id);
      return { ref, ...stat };
    },

    /**
     * Cancels the task if it runs, then hides it from every read and list; its video is deleted unless
     * another live task serves it. The ledger keeps every row (the cancel released the reservation).
     */
    async delete(caller: Caller, id: string): Promise<TaskRecord> {
      const task = await ownTask(caller, id);
      if (!TERMINAL_STATUSES.includes(task.status)) {
        await cancel(caller, id).catch((err: unknown) => {
          // It finished meanwhile: delete it as it is.
          if (!(err instanceof ApiError && err.code === 'task_finished')) throw err;
        });
      }
      const deleted = await store.deleteTask(id, caller.owner_id, deps.now());
      if (!deleted) throw taskNotFound(id); // deleted by a concurrent call
      if (deleted.asset_orphaned && deleted.task.asset_key) {
        await store.markAssetExpired(deleted.task.asset_key);
        await assets.remove(deleted.task.asset_key);
      }
      return deleted.task;
    },

    /**
     * A new task that remixes the caller's completed task `id` with `prompt`, on the provider and upstream job
     * that made its video. 409 while it is not completed; 400 `remix_not_supported` where that provider cannot remix.
     */
    async remix(caller: Caller, id: string, prompt: string, idempotencyKey?: string): Promise<TaskRecord> {
      const original = await completedTask(caller, id, 'it can be remixed');
      const made = await generationOf(original);
      const adapter = made.provider_id ? router.provider(made.provider_id) : undefined;
      if (!adapter?.remix || !made.upstream_id) {
        throw invalidRequest('remix_not_supported', `the provider that made '${id}' (${made.provider_id ?? 'unknown'}) cannot remix videos`, 'id');
      }
      const { image_url: _url, image_asset: _upload, remix_of: _remix, ...base } = JSON.parse(original.request_json) as NormalizedRequest;
      const request: NormalizedRequest = { ...base, prompt, remix_of: { video_id: id, provider_id: adapter.id, upstream_id: made.upstream_id } };
      return submit(caller, { request, callback_url: null, cache: true, ...(idempotencyKey !== undefined && { idempotency_key: idempotencyKey }) });
    },
  };
}

export function assertModelAllowed(caller: Caller, model: string): void {
  const allowed = caller.key.allowed_models;
  if (allowed && !allowed.includes(model)) {
    throw forbidden('model_not_allowed', `this API key may use only: ${allowed.join(', ')}`, 'model');
  }
}

function encodeCursor(t: TaskRecord): string {
  return Buffer.from(JSON.stringify([t.created_at_ms, t.id])).toString('base64url');
}

function decodeCursor(cursor: string): { created_at_ms: number; id: string } {
  try {
    const [created_at_ms, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof created_at_ms === 'number' && typeof id === 'string') return { created_at_ms, id };
  } catch {
    // fall through to the error below
  }
  throw invalidRequest('invalid_cursor', 'after is not a cursor returned by this API', 'after');
}

/** What an Idempotency-Key promises to repeat: the normalized request, its options and its image's bytes, hashed (SHA-256, hex). */
function requestHash({ request, callback_url, cache }: NormalizedGeneration, imageSha256: string | undefined): string {
  return crypto.createHash('sha256').update(JSON.stringify([request, callback_url, cache, imageSha256 ?? null])).digest('hex');
}
