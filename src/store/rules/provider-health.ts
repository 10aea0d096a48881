// The circuit breakers' shared state (src/core/shared-health.ts syncs the in-process breakers through it): each
// replica records its breakers' transitions, reads the others', and leases the one half-open probe here.
import type { BreakerRecord, Store } from '../types';
import type { Backend } from './sql';

type BreakerRow = Omit<BreakerRecord, 'pinned'> & { pinned: number };

type ProviderHealthMethods = Pick<Store, 'recordBreaker' | 'listBreakers' | 'acquireProbe' | 'releaseProbe'>;

/** The breakers' methods of the Store, over a backend. Each is one statement: atomic on its own. */
export function createProviderHealthMethods({ read }: Backend): ProviderHealthMethods {
  return {
    async recordBreaker(t) {
      const row = await read.get<{ version: number }>(
        `INSERT INTO provider_health (provider, model, state, since_ms, until_ms, reason, opened_by, pinned, probe_holder, probe_until_ms, version)
         VALUES (@provider, @model, @state, @since_ms, @until_ms, @reason, @opened_by, @pinned, NULL, NULL, 1)
         ON CONFLICT (provider, model) DO UPDATE SET
           state = excluded.state, since_ms = excluded.since_ms, until_ms = excluded.until_ms, reason = excluded.reason,
           opened_by = excluded.opened_by, pinned = excluded.pinned, probe_holder = NULL, probe_until_ms = NULL, version = provider_health.version + 1
         WHERE excluded.since_ms >= provider_health.since_ms
         RETURNING version`,
        { ...t, pinned: t.pinned ? 1 : 0 },
      );
      return row?.version;
    },
    async listBreakers() {
      const rows = await read.all<BreakerRow>('SELECT * FROM provider_health ORDER BY provider, model');
      return rows.map((row) => ({ ...row, pinned: row.pinned === 1 }));
    },
    async acquireProbe(provider, model, holder, untilMs, nowMs) {
      const row = await read.get(
        `INSERT INTO provider_health (provider, model, state, since_ms, until_ms, reason, opened_by, pinned, probe_holder, probe_until_ms, version)
         VALUES (@provider, @model, 'closed', 0, NULL, NULL, 'job', 0, @holder, @until, 0)
         ON CONFLICT (provider, model) DO UPDATE SET probe_holder = excluded.probe_holder, probe_until_ms = excluded.probe_until_ms
         WHERE (provider_health.probe_holder IS NULL OR provider_health.probe_until_ms <= @now OR provider_health.probe_holder = excluded.probe_holder)
           AND NOT (provider_health.state = 'open' AND provider_health.until_ms > @now)
         RETURNING probe_holder`,
        { provider, model, holder, until: untilMs, now: nowMs },
      );
      return row !== undefined;
    },
    async releaseProbe(provider, model, holder) {
      const changed = await read.run(
        'UPDATE provider_health SET probe_holder = NULL, probe_until_ms = NULL WHERE provider = @provider AND model = @model AND probe_holder = @holder',
        { provider, model, holder },
      );
      return changed === 1;
    },
  };
}
