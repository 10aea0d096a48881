// The app's own Prometheus registry (never the global one), and the metrics every step reports to: the one home of
// metric definitions. docs/metrics.md is their contract (names, labels, known label sets): change it first.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BreakerState } from '../routing/health';
import type { MetricsSnapshot } from '../store/types';

export type Metrics = ReturnType<typeof createMetrics>;

/** The outbox's counts, read at each scrape (set by the composition root once the store is open). */
export type OutboxCounts = () => Promise<{ pending: number; dead: number }>;

/** What the scrape-time gauges read: the store's snapshot and the in-process breakers (set by the composition root). */
export interface StateSource {
  /** The store's state (Store.metricsSnapshot at the current time). */
  snapshot: () => Promise<MetricsSnapshot>;
  /** Every breaker that exists (Health.breakerStates); a provider and model without one is closed. */
  breakers: () => { provider: string; model: string; state: BreakerState }[];
}

/** A configured provider and the models of its catalog: the label sets that exist from the start. */
export interface KnownProvider {
  id: string;
  models: readonly string[];
}

export interface MetricsOptions {
  /** false leaves every `team` label out (`metrics.team_label`). */
  teamLabel: boolean;
  /** What one credit is worth in USD (`credits.usd_per_credit`), for `vidgate_credit_value_usd`. */
  usdPerCredit: number;
}

const TASK_STATUSES = ['completed', 'failed', 'cancelled'] as const;
const CREDIT_KINDS = ['reserved', 'settled', 'released'] as const;
const CACHE_RESULTS = ['hit', 'miss', 'coalesced', 'bypassed', 'disabled'] as const;
const DELIVERY_OUTCOMES = ['delivered', 'retried', 'dead_lettered'] as const;
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];
/** The known sets of `vidgate_attempts_total` besides provider and model (docs/metrics.md). */
const ATTEMPT_SETS = [
  { stage: 'job', result: 'succeeded', fault: 'none' },
  { stage: 'submit', result: 'failed', fault: 'provider' },
  { stage: 'submit', result: 'failed', fault: 'request' },
  { stage: 'job', result: 'failed', fault: 'provider' },
  { stage: 'job', result: 'failed', fault: 'request' },
  { stage: 'job', result: 'cancelled', fault: 'none' },
] as const;
/** Queue waits and times to video: seconds to an hour. */
const TASK_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600];
/** Calls to providers: a poll in milliseconds, a download of a long video in minutes. */
const UPSTREAM_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

type Labels<L extends string> = Record<L, string>;

/**
 * The metrics, in `options`' terms. Counters are created with every known label set at 0 (`knowProviders`,
 * `knowTeam`); gauges about state are read at each scrape from `readStateWith`'s source.
 */
export function createMetrics(options: MetricsOptions) {
  const registry = new Registry();
  let outboxCounts: OutboxCounts = async () => ({ pending: 0, dead: 0 });
  let state: StateSource | undefined;
  collectDefaultMetrics({ register: registry });

  const keep = (names: readonly string[]) => names.filter((n) => options.teamLabel || n !== 'team');
  /** The labels as registered: without `team` when team labels are off. */
  const strip = <T extends Partial<Record<string, string>>>(labels: T): T => {
    if (options.teamLabel || !('team' in labels)) return labels;
    const { team: _team, ...rest } = labels;
    return rest as T;
  };

  function counter<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    const c = new Counter<string>({ name, help, labelNames: keep(labelNames), registers: [registry] });
    return {
      /** Add `value` (default 1) to the series of `labels`. */
      inc: (labels: Labels<L>, value = 1) => c.inc(strip(labels), value),
    };
  }
  function histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) {
    const h = new Histogram<string>({ name, help, labelNames: keep(labelNames), buckets, registers: [registry] });
    return {
      observe: (labels: Labels<L>, seconds: number) => h.observe(strip(labels), seconds),
      /** Starts a timer; the returned function records the seconds since, with the rest of the labels. */
      startTimer(labels: Partial<Labels<L>>) {
        const end = h.startTimer(strip(labels));
        return (rest: Partial<Labels<L>>) => void end(strip(rest));
      },
      zero: (labels: Labels<L>) => h.zero(strip(labels)),
    };
  }

  /** One store read per scrape, shared by the gauges collected together. */
  let reading: Promise<MetricsSnapshot | undefined> | undefined;
  const snapshot = () => (reading ??= (state ? state.snapshot() : Promise.resolve(undefined)).finally(() => (reading = undefined)));

  const m = {
    registry,
    httpRequestDuration: histogram(
      'vidgate_http_request_duration_seconds',
      'HTTP requests by the spec route template (unmatched for paths the spec does not have), whatever stage answered.',
      ['method', 'route', 'status'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    tasksSubmitted: counter('vidgate_tasks_submitted_total', 'Tasks accepted, by team and model.', ['team', 'model']),
    tasksFinished: counter(
      'vidgate_tasks_finished_total',
      'Tasks that reached a terminal status, by team, status, provider (cache for a hit, none when none was chosen) and model.',
      ['team', 'status', 'provider', 'model'],
    ),
    queueWait: histogram(
      'vidgate_task_queue_wait_seconds',
      'Seconds from a task\'s creation to its first submission accepted by a provider, by model.',
      ['model'],
      TASK_SECONDS_BUCKETS,
    ),
    timeToVideo: histogram(
      'vidgate_task_time_to_video_seconds',
      'Seconds from a task\'s creation to its stored video (completed tasks, cache hits excluded), by provider and model.',
      ['provider', 'model'],
      TASK_SECONDS_BUCKETS,
    ),
    videoSeconds: counter('vidgate_video_seconds_total', 'Seconds of video generated (completed, cache hits not counted), by provider and model.', ['provider', 'model']),
    attempts: counter(
      'vidgate_attempts_total',
      'Finished attempts at a provider, by stage (submit, job), result (succeeded, failed, cancelled) and fault (provider, request, none).',
      ['provider', 'model', 'stage', 'result', 'fault'],
    ),
    failovers: counter('vidgate_failovers_total', 'Tasks that left this provider for the next cheapest after a provider-side failure.', ['provider', 'model']),
    healthChecks: counter('vidgate_health_checks_total', 'Active health checks of providers, by result (success, failure).', ['provider', 'result']),
    upstreamDuration: histogram(
      'vidgate_upstream_request_duration_seconds',
      'Calls to providers (submit, poll, download, cancel, health_check), by outcome.',
      ['provider', 'operation', 'outcome'],
      UPSTREAM_SECONDS_BUCKETS,
    ),
    credits: counter(
      'vidgate_credits_total',
      'Credits reserved, settled and released, by team, provider (none before one is chosen, cache for a hit) and model.',
      ['kind', 'team', 'provider', 'model'],
    ),
    providerCost: counter('vidgate_provider_cost_usd_total', 'USD owed to providers for completed jobs (their usd_per_second), by provider and model.', ['provider', 'model']),
    failoverSurcharge: counter(
      'vidgate_failover_surcharge_credits_total',
      'Credits a reservation grew by when an attempt went to a pricier provider, by team, provider and model.',
      ['team', 'provider', 'model'],
    ),
    cacheRequests: counter(
      'vidgate_cache_requests_total',
      'Generation requests by how the cache served them (hit, miss, coalesced, bypassed, disabled), by team and model.',
      ['result', 'team', 'model'],
    ),
    cacheCreditsSaved: counter(
      'vidgate_cache_credits_saved_total',
      'Credits a generation would have cost, less what a hit or a follower was charged, by team and model.',
      ['team', 'model'],
    ),
    webhookDeliveries: counter(
      'vidgate_webhook_deliveries_total',
      'Webhook delivery attempts by outcome: delivered, retried (failed, tried again later), dead_lettered (failed, no retry left).',
      ['outcome'],
    ),
    webhookDeliveryDuration: histogram(
      'vidgate_webhook_delivery_duration_seconds',
      'Latency of webhook delivery attempts, by outcome (success, failure).',
      ['outcome'],
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    assetsExpired: counter('vidgate_assets_expired_total', 'Stored videos deleted after their retention.', []),
    /** Where `vidgate_webhook_outbox_events` reads the outbox from. */
    countOutboxWith(counts: OutboxCounts) {
      outboxCounts = counts;
    },
    /** Where the other scrape-time gauges read the store and the breakers from. */
    readStateWith(source: StateSource) {
      state = source;
    },
    /** Sets every known label set that involves a provider to 0 (once, at the start, with the configured providers). */
    knowProviders,
    /** Sets every known label set of this team to 0, once per team (at the start, and when a team is created or seen). */
    knowTeam,
  };

  // --- known label sets ---
  // Those that involve neither a provider nor a team: set once, here.
  for (const outcome of DELIVERY_OUTCOMES) m.webhookDeliveries.inc({ outcome }, 0);
  for (const outcome of ['success', 'failure']) m.webhookDeliveryDuration.zero({ outcome });

  const pairs: { provider: string; model: string }[] = [];
  const models = new Set<string>();
  const providers = new Set<string>();
  const teams = new Set<string>();

  function knowProviders(known: readonly KnownProvider[]): void {
    for (const p of known) {
      providers.add(p.id);
      for (const model of new Set(p.models)) {
        if (pairs.some((x) => x.provider === p.id && x.model === model)) continue;
        pairs.push({ provider: p.id, model });
        models.add(model);
      }
    }
    for (const pair of pairs) {
      for (const set of ATTEMPT_SETS) m.attempts.inc({ ...pair, ...set }, 0);
      m.failovers.inc(pair, 0);
      m.videoSeconds.inc(pair, 0);
      m.providerCost.inc(pair, 0);
      m.timeToVideo.zero(pair);
    }
    for (const model of models) m.queueWait.zero({ model });
    for (const provider of providers) for (const result of ['success', 'failure']) m.healthChecks.inc({ provider, result }, 0);
    // Known teams get the sets of the providers known now; without team labels, one team stands for all.
    for (const team of options.teamLabel ? teams : ['']) initTeam(team);
  }

  function knowTeam(team: string): void {
    if (!options.teamLabel || teams.has(team)) return;
    teams.add(team);
    initTeam(team);
  }

  function initTeam(team: string): void {
    for (const model of models) {
      const serving = pairs.filter((p) => p.model === model).map((p) => p.provider);
      m.tasksSubmitted.inc({ team, model }, 0);
      m.cacheCreditsSaved.inc({ team, model }, 0);
      for (const result of CACHE_RESULTS) m.cacheRequests.inc({ result, team, model }, 0);
      for (const provider of serving) {
        for (const status of TASK_STATUSES) m.tasksFinished.inc({ team, status, provider, model }, 0);
        m.failoverSurcharge.inc({ team, provider, model }, 0);
      }
      m.tasksFinished.inc({ team, status: 'completed', provider: 'cache', model }, 0);
      for (const status of ['failed', 'cancelled']) m.tasksFinished.inc({ team, status, provider: 'none', model }, 0);
      for (const kind of CREDIT_KINDS) for (const provider of [...serving, 'none', 'cache']) m.credits.inc({ kind, team, provider, model }, 0);
    }
  }

  // --- gauges read at scrape time ---
  const gauge = (name: string, help: string, labelNames: readonly string[], collect: (g: Gauge<string>) => Promise<void> | void) =>
    new Gauge<string>({
      name,
      help,
      labelNames: keep(labelNames),
      registers: [registry],
      async collect() {
        this.reset();
        await collect(this);
      },
    });

  gauge('vidgate_tasks_open', 'Unfinished tasks by status: pending (waiting for the dispatcher), processing (in flight at a provider); from the store.', ['status'], async (g) => {
    const s = await snapshot();
    for (const status of ['pending', 'processing']) g.set({ status }, s?.open_tasks.find((r) => r.status === status)?.tasks ?? 0);
  });
  gauge('vidgate_provider_jobs_in_flight', 'Jobs accepted by the provider and not finished, from the store.', ['provider'], async (g) => {
    const s = await snapshot();
    for (const provider of providers) g.set({ provider }, 0);
    for (const r of s?.jobs_in_flight ?? []) g.set({ provider: r.provider_id }, r.jobs);
  });
  // With team labels off, the team gauges are sums over the teams (and the info gauge is not exported).
  const perTeam = async (g: Gauge<string>, each: (team: MetricsSnapshot['teams'][number], add: (labels: Record<string, string>, value: number) => void) => void) => {
    for (const team of (await snapshot())?.teams ?? []) {
      knowTeam(team.id);
      each(team, (labels, value) => g.inc(strip({ team: team.id, ...labels }), value));
    }
  };
  gauge('vidgate_team_reserved_credits', 'Credits reserved by the team\'s unfinished tasks, from the store.', ['team'], (g) =>
    perTeam(g, (t, add) => add({}, t.reserved_credits)),
  );
  const windows = [
    { window: 'day', limit: 'credits_per_day', used: 'credits_day_used' },
    { window: 'month', limit: 'credits_per_month', used: 'credits_month_used' },
  ] as const;
  gauge('vidgate_team_budget_credits', 'The team\'s credit budget per UTC day or month (teams with one).', ['team', 'window'], (g) =>
    perTeam(g, (t, add) => {
      for (const w of windows) if (t[w.limit] !== null) add({ window: w.window }, t[w.limit]!);
    }),
  );
  gauge('vidgate_team_budget_remaining_credits', 'What is left of the team\'s credit budget in the current UTC day or month.', ['team', 'window'], (g) =>
    perTeam(g, (t, add) => {
      for (const w of windows) if (t[w.limit] !== null) add({ window: w.window }, Math.max(0, t[w.limit]! - t[w.used]));
    }),
  );
  if (options.teamLabel) {
    gauge('vidgate_team_info', 'Maps a team id to its name: 1 per team.', ['team', 'name'], (g) => perTeam(g, (t, add) => add({ name: t.name }, 1)));
  }
  gauge('vidgate_breaker_state', 'Circuit breaker state per provider and model: 1 for the current state, 0 for the others.', ['provider', 'model', 'state'], (g) => {
    const current = new Map(pairs.map((p) => [`${p.provider}\u0000${p.model}`, { ...p, state: 'closed' as BreakerState }]));
    for (const b of state?.breakers() ?? []) current.set(`${b.provider}\u0000${b.model}`, b);
    for (const { provider, model, state: now } of current.values()) {
      for (const s of BREAKER_STATES) g.set({ provider, model, state: s }, s === now ? 1 : 0);
    }
  });
  gauge('vidgate_webhook_outbox_events', 'Webhook events in the outbox by state: pending (waiting for delivery), dead (dead-lettered).', ['state'], async (g) => {
    const counts = await outboxCounts();
    g.set({ state: 'pending' }, counts.pending);
    g.set({ state: 'dead' }, counts.dead);
  });
  new Gauge({ name: 'vidgate_credit_value_usd', help: 'What one credit is worth in USD (credits.usd_per_credit).', registers: [registry] }).set(options.usdPerCredit);

  return m;
}
