// The usage report: spend by day, model and provider, remaining quotas, open reservations.
import type { components } from '../generated/vidgate-api';
import type { ApiKeyRecord, QuotaUsage, Quotas, Store, TeamRecord } from '../store/types';
import { usdOf } from '../routing/quote';
import { invalidRequest } from './errors';

type Usage = components['schemas']['Usage'];
type QuotaStatuses = components['schemas']['QuotaStatuses'];

const DAY_MS = 24 * 3600 * 1000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10); // the UTC day

function statuses(limits: Quotas, used: QuotaUsage): QuotaStatuses {
  const status = (limit: number | null, n: number) => ({ limit, used: n, remaining: limit === null ? null : Math.max(0, limit - n) });
  return {
    credits_per_day: status(limits.credits_per_day, used.credits_day),
    credits_per_month: status(limits.credits_per_month, used.credits_month),
    max_concurrent: status(limits.max_concurrent, used.active_tasks),
    reads_per_minute: status(limits.reads_per_minute, used.reads_minute),
    submits_per_minute: status(limits.submits_per_minute, used.submits_minute),
  };
}

export interface UsageQuery {
  from?: string;
  to?: string;
}

/** The usage report of a team (and of the calling key); `microUsdPerCredit` values a credit in whole micro-USD. */
export async function usageReport(store: Store, team: TeamRecord, key: ApiKeyRecord | undefined, query: UsageQuery, nowMs: number, microUsdPerCredit: number): Promise<Usage> {
  const to = query.to ?? isoDay(nowMs);
  const from = query.from ?? isoDay(nowMs - 30 * DAY_MS);
  if (from > to) throw invalidRequest('invalid_value', 'from must not be after to', 'from');
  const spend = (await store.usageByDay(team.id, from, to)).map((r) => ({
    day: r.day,
    model: r.model,
    provider: r.provider_id ?? 'cache', // hits were served by no provider
    tasks: r.tasks,
    credits: r.credits,
    usd: usdOf(r.credits * microUsdPerCredit),
  }));
  const credits = spend.reduce((n, r) => n + r.credits, 0);
  return {
    object: 'usage',
    team: { id: team.id, name: team.name },
    day: isoDay(nowMs),
    month: isoDay(nowMs).slice(0, 7),
    quotas: {
      team: statuses(team, await store.quotaUsage('team', team.id, nowMs)),
      ...(key && { key: statuses(key, await store.quotaUsage('key', key.id, nowMs)) }),
    },
    spend,
    totals: { credits, usd: usdOf(credits * microUsdPerCredit), tasks: spend.reduce((n, r) => n + r.tasks, 0) },
    open_reservations: (await store.listOpenTasks(team.id)).map((t) => ({
      task_id: t.id,
      status: t.status,
      model: t.model,
      credits_reserved: t.credits_reserved,
      created: Math.floor(t.created_at_ms / 1000),
    })),
  };
}
