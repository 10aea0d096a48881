// Webhook events and their delivery attempts in the spec's shape (WebhookEvent), for both doors and the admin API.
import type { components } from '../generated/vidgate-api';
import type { EventDeliveries } from '../core/webhooks';

type WebhookEvent = components['schemas']['WebhookEvent'];

/** Events with their attempts as a `WebhookEventList`; `next_attempt_at` only for a pending event. */
export function presentEvents(list: readonly EventDeliveries[]): components['schemas']['WebhookEventList'] {
  return { object: 'list', data: list.map(presentEvent) };
}

function presentEvent({ event: e, attempts }: EventDeliveries): WebhookEvent {
  return {
    id: e.id,
    object: 'webhook.event',
    task_id: e.task_id,
    type: e.task_status,
    url: e.url,
    state: e.state,
    created: Math.floor(e.created_at_ms / 1000),
    next_attempt_at: e.state === 'pending' ? e.next_run_at_ms : null,
    delivered_at: e.delivered_at_ms,
    attempts: attempts.map((a) => ({ n: a.n, started_at: a.started_at_ms, status_code: a.status_code, latency_ms: a.latency_ms, error: a.error })),
  };
}
