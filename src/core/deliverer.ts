// The deliverer: a leased loop over the webhook outbox. Each due event is sent to its URL, signed (Standard
// Webhooks headers), through the outbound guard; any 2xx answer delivers it; another answer, a network error, a
// refused address or no answer within the timeout is retried after the configured schedule, and after the last
// retry the event is dead-lettered (kept, listed, redeliverable). Delivery is at least once: an event whose
// deliverer died mid-attempt is claimed again when its lease lapses, with the same webhook-id.
import type { ClaimedEvent, DeliveryOutcome, Door, OutboxEvent, Store, TaskRecord } from '../store/types';
import { OutboundRefused, type OutboundInit } from '../net/outbound';
import type { Config } from './config';
import { createLeasedLoop, type LeasedLoop } from './leased-loop';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import { WebhookSecretUnreadable, type WebhookSecrets } from './webhook-secrets';

/** The body of an event's delivery: the task query response of the door that made the task (given by the http layer). */
export type EventRenderer = (task: TaskRecord, event: OutboxEvent) => Promise<unknown>;

/** Sends one request without following redirects (src/net/outbound.ts `Outbound.fetch`). */
export type DeliveryFetch = (url: string, init: OutboundInit) => Promise<Pick<Response, 'status' | 'body'>>;

export interface DelivererDeps {
  store: Store;
  config: Config['webhooks'];
  /** One renderer per door. */
  render: Record<Door, EventRenderer>;
  fetch: DeliveryFetch;
  secrets: WebhookSecrets;
  metrics: Metrics;
  log: Logger;
  now: () => number;
}

/** Why an attempt failed, in words safe to show the team. */
function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof OutboundRefused) return `refused: the URL ${err.reason}`;
  if (err instanceof WebhookSecretUnreadable) return 'not sent: no signing secret of the team can be decrypted with this installation\'s key; rotate the team\'s webhook secret';
  const e = err as Error & { cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const code = e?.cause?.code;
  return code ? `network error (${code})` : 'network error';
}

/**
 * What follows a failed attempt: a retry `schedule[failures]` ms after the attempt started (`startedAtMs`), so that
 * retries keep to the schedule whatever the attempt took; after the last, dead-lettered. `failures` counts the
 * failed attempts before this one (since the event was written or redelivered).
 */
export function afterFailure(schedule: readonly number[], failures: number, startedAtMs: number): DeliveryOutcome {
  const wait = schedule[failures];
  return wait === undefined ? { state: 'dead' } : { state: 'pending', next_run_at_ms: startedAtMs + wait };
}

/**
 * The deliverer's loop: up to `webhooks.concurrency` events at once, each attempt bounded by `webhooks.timeout_ms`,
 * recorded (time, status, latency, error) with its outcome under the event's lease; woken when a retry it scheduled
 * is due (besides its ticks). Start, wake and stop it like the other leased loops.
 */
export function createDeliverer(deps: DelivererDeps): LeasedLoop {
  const { store, config, metrics, log, now } = deps;

  async function deliver(event: ClaimedEvent): Promise<void> {
    const task = await store.getTask(event.task_id);
    if (!task) throw new Error(`the task of event ${event.id} is gone`); // tasks are never removed: a broken store
    const body = JSON.stringify(await deps.render[event.door](task, event));
    const startedAtMs = now();
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let signature: string | undefined;
    try {
      signature = await deps.secrets.sign(event.team_id, event.id, new Date(startedAtMs), body);
    } catch (err) {
      if (!(err instanceof WebhookSecretUnreadable)) throw err; // the store's: the step fails, the lease lapses
      error = describeFailure(err, config.timeout_ms); // not sent: recorded, retried, then dead-lettered
    }
    if (signature !== undefined) {
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'vidgate-webhooks',
        'webhook-id': event.id,
        'webhook-timestamp': String(Math.floor(startedAtMs / 1000)),
        'webhook-signature': signature,
      };
      try {
        const res = await deps.fetch(event.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(config.timeout_ms) });
        status = res.status;
        await res.body?.cancel().catch(() => undefined); // the answer's body is not read
        if (status < 200 || status > 299) error = `the receiver answered ${status}`;
      } catch (err) {
        error = describeFailure(err, config.timeout_ms);
      }
    }
    const latencyMs = Math.round(performance.now() - started);
    const outcome: DeliveryOutcome = error === null ? { state: 'delivered' } : afterFailure(config.retry_schedule_ms, event.failures, startedAtMs);
    const recorded = await store.recordDelivery(event.id, event.lease_token, { started_at_ms: startedAtMs, status_code: status, latency_ms: latencyMs, error }, outcome);
    const eventLog = log.child({ task_id: event.task_id, team_id: event.team_id, event: event.id });
    if (!recorded) return eventLog.warn('webhook attempt not recorded: the lease was lost');
    if (outcome.state === 'pending') wakeAt(outcome.next_run_at_ms);
    const result = outcome.state === 'delivered' ? 'delivered' : outcome.state === 'dead' ? 'dead_lettered' : 'retried';
    metrics.webhookDeliveries.inc({ outcome: result });
    metrics.webhookDeliveryDuration.observe({ outcome: error === null ? 'success' : 'failure' }, latencyMs / 1000);
    if (error !== null) eventLog.warn({ error, outcome: result, status_code: status, latency_ms: latencyMs }, 'webhook attempt failed');
    else eventLog.info({ status_code: status, latency_ms: latencyMs }, 'webhook delivered');
  }

  /** One timer, at the earliest retry this process scheduled: a retry is claimed when due, not at the next tick. */
  let retryTimer: { at_ms: number; timer: NodeJS.Timeout } | undefined;
  function wakeAt(atMs: number) {
    if (retryTimer !== undefined && retryTimer.at_ms <= atMs) return;
    clearTimeout(retryTimer?.timer);
    const timer = setTimeout(() => {
      retryTimer = undefined;
      loop.wake();
    }, Math.max(0, atMs - now() + 1)).unref(); // +1: never before it is due by `now`
    retryTimer = { at_ms: atMs, timer };
  }

  const loop = createLeasedLoop<ClaimedEvent>({
    name: 'deliverer',
    claim: (limit, leaseMs, nowMs) => store.claimDueEvents(limit, leaseMs, nowMs),
    renew: async (events, leaseUntilMs) => void (await Promise.all(events.map((e) => store.renewEventLease(e.id, e.lease_token, leaseUntilMs)))),
    step: deliver,
    concurrency: config.concurrency,
    interval_ms: config.poll_interval_ms,
    lease_ms: config.lease_ms,
    now,
    log,
    logFields: (e) => ({ event: e.id, task_id: e.task_id, team_id: e.team_id }),
  });
  return {
    ...loop,
    async stop(timeoutMs) {
      await loop.stop(timeoutMs);
      clearTimeout(retryTimer?.timer);
      retryTimer = undefined;
    },
  };
}
