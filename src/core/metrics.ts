// The app's own Prometheus registry (never the global one), and the metrics every step reports to.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

/** The outbox's counts, read at each scrape (set by the composition root once the store is open). */
export type OutboxCounts = () => Promise<{ pending: number; dead: number }>;

export function createMetrics() {
  const registry = new Registry();
  let outboxCounts: OutboxCounts = async () => ({ pending: 0, dead: 0 });
  collectDefaultMetrics({ register: registry, prefix: 'vidgate_process_' });

  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'vidgate_http_request_duration_seconds',
      help: 'HTTP request latency by route template and status.',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    tasksSubmitted: new Counter({
      name: 'vidgate_tasks_submitted_total',
      help: 'Tasks accepted, by model.',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    tasksFinished: new Counter({
      name: 'vidgate_tasks_finished_total',
      help: 'Tasks that reached a terminal status, by status and provider.',
      labelNames: ['status', 'provider'] as const,
      registers: [registry],
    }),
    taskAttempts: new Counter({
      name: 'vidgate_task_attempts_total',
      help: 'Submissions to providers, by provider and outcome (submitted, retryable_error, terminal_error).',
      labelNames: ['provider', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'vidgate_upstream_request_duration_seconds',
      help: 'Latency of calls to providers, by provider, operation and outcome.',
      labelNames: ['provider', 'operation', 'outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    credits: new Counter({
      name: 'vidgate_credits_total',
      help: 'Credits reserved, settled and released, by team, provider and model (provider "none" before one is chosen).',
      labelNames: ['kind', 'team', 'provider', 'model'] as const,
      registers: [registry],
    }),
    cacheRequests: new Counter({
      name: 'vidgate_cache_requests_total',
      help: 'Generation requests by how the cache served them (hit, miss, coalesced, bypassed, disabled), by team and model.',
      labelNames: ['result', 'team', 'model'] as const,
      registers: [registry],
    }),
    cacheCreditsSaved: new Counter({
      name: 'vidgate_cache_credits_saved_total',
      help: 'Credits a generation would have cost, less what a hit or a follower was charged, by team and model.',
      labelNames: ['team', 'model'] as const,
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'vidgate_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered, retried (failed, tried again later), dead_lettered (failed, no retry left).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    webhookDeliveryDuration: new Histogram({
      name: 'vidgate_webhook_delivery_duration_seconds',
      help: 'Latency of webhook delivery attempts, by outcome (success, failure).',
      labelNames: ['outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    webhookOutbox: new Gauge({
      name: 'vidgate_webhook_outbox_events',
      help: 'Webhook events in the outbox by state: pending (waiting for delivery), dead (dead-lettered).',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const counts = await outboxCounts();
        this.set({ state: 'pending' }, counts.pending);
        this.set({ state: 'dead' }, counts.dead);
      },
    }),
    /** Where `vidgate_webhook_outbox_events` reads the outbox from. */
    countOutboxWith(counts: OutboxCounts) {
      outboxCounts = counts;
    },
    assetsExpired: new Counter({
      name: 'vidgate_assets_expired_total',
      help: 'Stored videos deleted after their retention.',
      registers: [registry],
    }),
  };
}
