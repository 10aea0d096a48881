// The task use cases behind the front doors: submit, read, list, cancel, locate the stored video.
import crypto from 'node:crypto';
import type { NormalizedRequest } from '../providers/types';
import type { Router } from '../routing/router';
import { creditsFor } from '../routing/quote';
import { QuotaExceededError, type AttemptRecord, type Store, type TaskRecord, type TaskStatus } from '../store/types';
import type { AssetStore } from './assets';
import type { Caller } from './teams';
import { conflict, forbidden, gone, invalidRequest, quotaError, taskNotFound } from './errors';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { ResultCache } from './result-cache';

/** A submission, whichever front door it came through. */
export interface NormalizedGeneration {
  request: NormalizedRequest;
  callback_url: string | null;
  /** false when the caller asked for a fresh generation. */
  cache: boolean;
}

export interface TaskServiceDeps {
  store: Store;
  router: Router;
  assets: AssetStore;
  metrics: Metrics;
  log: Logger;
  cache: ResultCache;
  /** The value of one credit, in whole micro-USD. */
  microUsdPerCredit: number;
  upstreamTimeoutMs: number;
  now: () => number;
  /** Called after a task is created, so the dispatcher picks it up without waiting for its next tick. */
  onSubmitted: () => void;
}

export interface ListQuery {
  status?: TaskStatus;
  limit: number;
  after?: string;
}

export type TaskService = ReturnType<typeof createTaskService>;

export function createTaskService(deps: TaskServiceDeps) {
  const { store, router, assets, metrics, log } = deps;

  async function ownTask(caller: Caller, id: string): Promise<TaskRecord> {
    const task = await store.getTask(id);
    // Another owner's task answers exactly like one that does not exist.
    if (!task || task.owner_id !== caller.owner_id) throw taskNotFound(id);
    return task;
  }

  return {
    /**
     * Serve an identical request's stored result, or follow its running generation; else reserve the quote
     * on the cheapest capable provider and queue the task. Refuses over quota.
     */
    async submit(caller: Caller, { request, callback_url: callbackUrl, cache: wantsCache }: NormalizedGeneration): Promise<TaskRecord> {
      assertModelAllowed(caller, request.model);
      // The quote is what an estimate shows: the provider that would serve it now, else the cheapest capable.
      const quote = router.choose(request, { active: await store.countActiveByProvider() }) ?? router.candidates(request)[0];
      if (!quote) throw invalidRequest('unsupported_combination', 'no provider can serve this request');
      const quotedCredits = creditsFor(quote.micro_usd, deps.microUsdPerCredit);
      const { lookup, ...cachePlan } = await deps.cache.plan(caller.owner_id, request, wantsCache);
      const nowMs = deps.now();
      let task: TaskRecord;
      try {
        task = await store.createTask({
          id: `task_${crypto.randomBytes(12).toString('hex')}`,
          owner_id: caller.owner_id,
          key_id: caller.key.id,
          model: request.model,
          request_json: JSON.stringify(request),
          callback_url: callbackUrl,
          credits_reserved: quotedCredits,
          created_at_ms: nowMs,
          ...cachePlan,
        }, lookup);
      } catch (err) {
        if (err instanceof QuotaExceededError) throw quotaError(err, nowMs);
        throw err;
      }
      metrics.tasksSubmitted.inc({ model: request.model });
      metrics.credits.inc({ kind: 'reserved', team: caller.owner_id, provider: 'none', model: request.model }, task.credits_reserved);
      deps.cache.served(task, quotedCredits);
      if (task.cache_status === 'hit') {
        metrics.tasksFinished.inc({ status: 'completed', provider: 'cache' });
        metrics.credits.inc({ kind: 'settled', team: caller.owner_id, provider: 'cache', model: request.model }, task.credits_reserved);
      } else if (task.cache_status !== 'coalesced') {
        deps.onSubmitted();
      }
      return task;
    },

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
        before: query.after === undefined ? undefined : decodeCursor(query.after),
      });
      const tasks = rows.slice(0, query.limit);
      const last = tasks.at(-1);
      const nextCursor = rows.length > query.limit && last ? encodeCursor(last) : null;
      return { tasks, nextCursor };
    },

    async cancel(caller: Caller, id: string): Promise<TaskRecord> {
      const cancelled = await store.cancel(id, caller.owner_id, deps.now());
      if (!cancelled) {
        const task = await ownTask(caller, id);
        throw conflict('task_finished', `task '${id}' is already ${task.status}`);
      }
      const { task: before, abandon_job: abandonJob, heir } = cancelled;
      if (heir && heir.reserved_more > 0) {
        const { owner_id: team, provider_id: provider, model } = heir.task;
        metrics.credits.inc({ kind: 'reserved', team, provider: provider ?? 'none', model }, heir.reserved_more);
      }
      metrics.tasksFinished.inc({ status: 'cancelled', provider: before.provider_id ?? 'none' });
      metrics.credits.inc({ kind: 'released', team: before.owner_id, provider: before.provider_id ?? 'none', model: before.model }, before.credits_reserved);
      const adapter = before.provider_id ? router.provider(before.provider_id) : undefined;
      deps.onSubmitted(); // a follower may have been queued to generate anew
      if (abandonJob && adapter?.cancel && before.upstream_id) {
        await adapter
          .cancel(before.upstream_id, { signal: AbortSignal.timeout(deps.upstreamTimeoutMs) })
          .catch((err: Error) => log.warn('upstream cancel failed', { task: id, provider: adapter.id, error: err.message }));
      }
      return ownTask(caller, id);
    },

    /** The stored MP4's path, once the task has completed and while it is retained. */
    async videoPath(caller: Caller, id: string): Promise<string> {
      const task = await ownTask(caller, id);
      if (task.status === 'failed' || task.status === 'cancelled') {
        throw conflict(`task_${task.status}`, `task '${id}' ${task.status === 'failed' ? 'failed' : 'was cancelled'} and will never have a video; submit it again`);
      }
      if (task.status !== 'completed' || !task.asset_key) {
        throw conflict('task_not_completed', `task '${id}' is ${task.status}; its video is available once it completes`);
      }
      const file = task.asset_expired ? undefined : assets.pathOf(task.asset_key);
      if (!file) throw gone('video_expired', `the video of task '${id}' has passed its retention and was deleted`);
      return file;
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
