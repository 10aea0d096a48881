// Active health checks: while a provider has a breaker that is not closed, call its adapter's `checkHealth` (a
// cheap authenticated call that creates no job) on a schedule, so that its recovery is learnt without risking a
// customer's task, and a task never probes a provider that the checks see down. The first check comes
// `min_interval_ms` after the breaker opened; each failed check lengthens the interval by half (or sets it to the
// provider's Retry-After), within [min_interval_ms, max_interval_ms], so a recovery is seen within
// `max_interval_ms` (plus one check's time).
import type { Router } from '../routing/router';
import { ProviderError } from '../providers/types';
import type { Config } from './config';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

export interface HealthCheckerDeps {
  router: Router;
  log: Logger;
  /** Counts each check (`vidgate_health_checks_total`) and times it (`vidgate_upstream_request_duration_seconds`). */
  metrics: Pick<Metrics, 'healthChecks' | 'upstreamDuration'>;
  config: Config['routing']['health_check'];
  /** Called when a check passed for a provider that had an open breaker (wakes the dispatcher). */
  onRecovery: () => void;
  now: () => number;
}

export interface HealthChecker {
  start(): void;
  stop(): Promise<void>;
  /** Run the checks that are due now (the loop calls it; tests with an injected clock call it directly). */
  checkDue(): Promise<void>;
}

/** How often the loop looks for due checks; well under any sensible interval. */
const LOOP_MS = 100;

export function createHealthChecker(deps: HealthCheckerDeps): HealthChecker {
  const { router, log, config, now } = deps;
  const { health } = router;
  /** Per provider under watch: when its next check is due and the interval after that. */
  const schedule = new Map<string, { due_ms: number; interval_ms: number }>();
  const running = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function check(providerId: string, entry: { due_ms: number; interval_ms: number }): Promise<void> {
    const adapter = router.provider(providerId);
    if (!adapter?.checkHealth) return;
    const end = deps.metrics.upstreamDuration.startTimer({ provider: providerId, operation: 'health_check' });
    try {
      await adapter.checkHealth({ signal: AbortSignal.timeout(config.timeout_ms) });
      end({ outcome: 'ok' });
      deps.metrics.healthChecks.inc({ provider: providerId, result: 'success' });
      health.checkSucceeded(providerId);
      entry.interval_ms = config.min_interval_ms;
      log.debug({ provider: providerId }, 'provider health check passed');
      deps.onRecovery();
    } catch (err) {
      const error = err instanceof ProviderError ? err : new ProviderError('health_check_failed', (err as Error).message, true);
      end({ outcome: error.retryable ? 'retryable_error' : 'terminal_error' });
      deps.metrics.healthChecks.inc({ provider: providerId, result: 'failure' });
      // The provider's own Retry-After times the next check; otherwise the interval grows by half.
      const next_ms = error.retryAfterMs ?? entry.interval_ms * 1.5;
      entry.interval_ms = Math.round(Math.min(Math.max(next_ms, config.min_interval_ms), config.max_interval_ms));
      // Until the next check says otherwise, no task probes it.
      health.checkFailed(providerId, entry.interval_ms);
    } finally {
      entry.due_ms = now() + entry.interval_ms;
    }
  }

  async function checkDue(): Promise<void> {
    const watched = health.unhealthyProviders();
    for (const id of schedule.keys()) if (!watched.has(id)) schedule.delete(id);
    const batch: Promise<void>[] = [];
    for (const id of watched) {
      if (!router.provider(id)?.checkHealth) continue;
      let entry = schedule.get(id);
      if (!entry) schedule.set(id, (entry = { due_ms: now() + config.min_interval_ms, interval_ms: config.min_interval_ms }));
      if (entry.due_ms > now()) continue;
      entry.due_ms = Infinity; // in flight
      batch.push(check(id, entry));
    }
    await Promise.all(batch);
  }

  return {
    start() {
      if (!config.enabled) return;
      const loop = () => {
        const p = checkDue()
          .catch((err: Error) => log.error({ error: err.message }, 'health checks failed'))
          .finally(() => running.delete(p));
        running.add(p);
        if (!stopped) timer = setTimeout(loop, LOOP_MS);
      };
      timer = setTimeout(loop, LOOP_MS);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.allSettled([...running]);
    },
    checkDue,
  };
}
