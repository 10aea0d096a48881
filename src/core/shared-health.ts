// Circuit breakers shared by the replicas on one store. Each replica keeps its own breakers (src/routing/health.ts,
// read in memory on every request) and syncs them through the store's `provider_health` rows:
// - each local transition (closed/open, or an open breaker's end moved) is recorded, unless a newer one is stored;
// - every `sync_interval_ms` the rows are read, and a row whose version this replica has not seen is adopted, so an
//   outage one replica learns is known to all within one interval, and so is a recovery;
// - a half-open probe taken in process must also take the store's lease (`acquireProbe`), so of all replicas exactly
//   one probes; a probe given back, or ended by its outcome's transition, frees the lease; a dead holder's lease
//   expires after `max_cooldown_ms` (as an unreported probe does in process).
// Every store call of a replica runs in order, one at a time, so a read never overtakes this replica's own writes.
import { createHealth, type BreakerConfig, type Health, type SharedBreakerState } from '../routing/health';
import type { BreakerRecord, Store } from '../store/types';
import type { Logger } from './logger';

export interface SharedHealthDeps {
  store: Pick<Store, 'recordBreaker' | 'listBreakers' | 'acquireProbe' | 'releaseProbe'>;
  /** The breakers' settings; `max_cooldown_ms` is also the probe lease's length. */
  breaker: BreakerConfig;
  /** How often the stored rows are read (ms). */
  syncIntervalMs: number;
  log: Pick<Logger, 'warn' | 'info'>;
  now: () => number;
}

export interface SharedHealth {
  /** The replica's breakers, reporting their transitions to the store. */
  readonly health: Health;
  /**
   * Takes the store's lease of a half-open probe for `holder` (the router's `probeLease`); false when refused (or the
   * store failed), and the caller then gives the probe back in process (`health.release`).
   */
  acquireProbe(provider: string, model: string, holder: string): Promise<boolean>;
  /** Reads the stored rows and adopts those not seen yet (the loop calls it; tests with an injected clock too). */
  sync(): Promise<void>;
  /** Resolves once every store call asked for so far has run (tests). */
  flush(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

const pairKey = (provider: string, model: string) => `${provider}\u0000${model}`;

export function createSharedHealth(deps: SharedHealthDeps): SharedHealth {
  const { store, log, now } = deps;
  /** Per pair, the newest row version this replica wrote or adopted. */
  const seen = new Map<string, number>();
  /** Probes the store refused, about to be given back in process: nothing to give back in the store. */
  const refused = new Set<string>();
  let chain: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  /** Runs `fn` after every store call queued before it. */
  function inOrder<T>(fn: () => Promise<T>): Promise<T> {
    const run = chain.then(fn);
    chain = run.catch(() => undefined);
    return run;
  }
  const noteSeen = (key: string, version: number) => seen.set(key, Math.max(seen.get(key) ?? 0, version));

  /** Per pair, the state last logged: a line when a breaker opens or closes, not when an open one is extended. */
  const logged = new Map<string, SharedBreakerState['state']>();
  function logChange(s: SharedBreakerState, learned: boolean) {
    const key = pairKey(s.provider, s.model);
    if ((logged.get(key) ?? 'closed') === s.state) return;
    logged.set(key, s.state);
    const fields = { provider: s.provider, model: s.model, reason: s.reason, until_ms: s.until_ms, learned_from_store: learned };
    if (s.state === 'open') log.warn(fields, 'breaker opened');
    else log.info(fields, 'breaker closed');
  }

  function record(state: SharedBreakerState) {
    logChange(state, false);
    inOrder(async () => {
      const version = await store.recordBreaker(state);
      if (version !== undefined) noteSeen(pairKey(state.provider, state.model), version);
    }).catch((err: Error) => log.warn({ provider: state.provider, model: state.model, error: err.message }, 'breaker transition not shared'));
  }

  function releaseProbe(provider: string, model: string, holder: string) {
    if (refused.delete(`${pairKey(provider, model)}\u0000${holder}`)) return;
    inOrder(() => store.releaseProbe(provider, model, holder)).catch((err: Error) =>
      log.warn({ provider, model, error: err.message }, 'probe lease not given back (it expires)'),
    );
  }

  const health = createHealth(deps.breaker, now, { onTransition: record, onProbeReleased: releaseProbe });

  function adopt(row: BreakerRecord) {
    const key = pairKey(row.provider, row.model);
    if (row.version <= (seen.get(key) ?? 0)) return;
    noteSeen(key, row.version);
    const { provider, model, state, reason, since_ms, until_ms, opened_by, pinned } = row;
    const adopted = { provider, model, state, reason, since_ms, until_ms, opened_by, pinned };
    health.adopt(adopted);
    logChange(adopted, true);
  }

  const sync = () => inOrder(async () => (await store.listBreakers()).forEach(adopt));

  return {
    health,
    async acquireProbe(provider, model, holder) {
      let granted = false;
      try {
        granted = await inOrder(() => store.acquireProbe(provider, model, holder, now() + deps.breaker.max_cooldown_ms, now()));
      } catch (err) {
        // Without the store nobody can be sure to be the only prober: no probe (the task waits, as for an open breaker).
        log.warn({ provider, model, error: (err as Error).message }, 'probe lease not taken');
      }
      if (!granted) refused.add(`${pairKey(provider, model)}\u0000${holder}`);
      return granted;
    },
    sync,
    flush: () => inOrder(async () => undefined),
    start() {
      const loop = () => {
        sync()
          .catch((err: Error) => log.warn({ error: err.message }, 'breakers not synced'))
          .finally(() => {
            if (timer) timer = setTimeout(loop, deps.syncIntervalMs);
          });
      };
      timer = setTimeout(loop, deps.syncIntervalMs);
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await chain;
    },
  };
}
