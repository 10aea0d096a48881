// Deletes stored videos once they pass their retention (the task keeps saying what it was), and
// forgets old per-minute request counters.
import type { Store } from '../store/types';
import type { AssetStore } from '../assets/types';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

export interface RetentionDeps {
  store: Store;
  assets: AssetStore;
  metrics: Metrics;
  log: Logger;
  retentionMs: number;
  intervalMs: number;
  now: () => number;
}

export function createRetentionSweeper(deps: RetentionDeps) {
  let timer: NodeJS.Timeout | undefined;

  async function sweep(): Promise<number> {
    let removed = 0;
    for (;;) {
      const batch = await deps.store.listAssetsStoredBefore(deps.now() - deps.retentionMs, 100);
      for (const task of batch) {
        // Expired first: no hit may be served from a video that is about to go.
        await deps.store.markAssetExpired(task.asset_key!);
        await deps.assets.remove(task.asset_key!);
        deps.metrics.assetsExpired.inc({});
        removed++;
      }
      if (batch.length < 100) return removed;
    }
  }

  return {
    sweep,
    start() {
      const run = () => sweep().catch((err: Error) => deps.log.error({ error: err.message }, 'retention sweep failed'));
      void run();
      timer = setInterval(run, deps.intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
