// Decides how a generation request meets the cache: its key, whether to look for a stored result or a
// running twin, and what the answer was (metrics, and the in-memory index of fresh results). The decision
// itself happens in the store, in the transaction that creates the task (Store.createTask).
import { LRUCache } from 'lru-cache';
import type { NormalizedRequest } from '../providers/types';
import type { CacheLookup, NewTask, TaskRecord } from '../store/types';
import { cacheKey } from './cache-key';
import type { Config } from './config';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

export interface ResultCacheDeps {
  config: Config['cache'];
  /** How long stored videos are kept: no result is served past it, whatever the TTL. */
  retentionMs: number;
  metrics: Metrics;
  log: Logger;
  now: () => number;
}

/** What a new task carries into the store: its key and status, and the lookup to run (none on a bypass). */
export type CachePlan = Pick<NewTask, 'cache_key' | 'cache_status'> & { lookup?: CacheLookup };

export type ResultCache = ReturnType<typeof createResultCache>;

export function createResultCache(deps: ResultCacheDeps) {
  const { config, metrics } = deps;
  const ttlMs = Math.min(config.ttl_ms, deps.retentionMs);
  // cache key -> the id of a task whose stored video serves it, until the entry's TTL runs out. Only a
  // hint: the store checks it (another replica's retention may have deleted the video), and falls back
  // to its own index.
  const fresh = new LRUCache<string, string>({ max: config.memory_entries });

  return {
    /** `imageSha256`: the hex SHA-256 of the request's reference image (checked before), when it has one. */
    async plan(teamId: string, request: NormalizedRequest, wanted: boolean, image?: string): Promise<CachePlan> {
      if (!config.enabled) return { cache_key: null, cache_status: 'disabled' };
      // An image URL is hashed as vidgate read it, but the provider fetches the URL itself and may get other
      // bytes: results with an image are never shared beyond the team, so that nobody can plant a video for others.
      const scope = config.scope === 'global' && image === undefined ? '*' : teamId;
      const key = cacheKey(request, scope, image);
      if (!wanted) return { cache_key: key, cache_status: 'bypassed' };
      const hint = fresh.get(key);
      return {
        cache_key: key,
        cache_status: 'miss',
        lookup: { fresh_since_ms: deps.now() - ttlMs, hit_credits: config.hit_credits, ...(hint && { source_hint: hint }) },
      };
    },

    /** Count how the task was served; remember a hit's source until it is no longer fresh. */
    served(task: TaskRecord, quotedCredits: number): void {
      metrics.cacheRequests.inc({ result: task.cache_status, team: task.owner_id, model: task.model });
      if (task.cache_key === null) return;
      if (task.cache_status === 'hit') {
        metrics.cacheCreditsSaved.inc({ team: task.owner_id, model: task.model }, Math.max(0, quotedCredits - task.credits_reserved));
        const ttl = task.asset_stored_at_ms! + ttlMs - deps.now();
        if (ttl > 0) fresh.set(task.cache_key, task.source_id!, { ttl });
      } else if (task.cache_status !== 'bypassed') {
        fresh.delete(task.cache_key); // a stale hint, if any
      }
    },

    /** Followers that completed with their leader, which cost `generationCredits`. */
    followersServed(followers: readonly TaskRecord[], generationCredits: number): void {
      for (const f of followers) {
        metrics.cacheCreditsSaved.inc({ team: f.owner_id, model: f.model }, Math.max(0, generationCredits - (f.credits_settled ?? 0)));
      }
    },
  };
}
