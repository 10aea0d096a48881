// The webhook use cases behind the doors and the admin API: a task's deliveries and their redelivery (the team's
// own tasks only), a team's dead letters, and its signing secret.
import { ApiError, conflict } from './errors';
import type { Caller, TeamService } from './teams';
import type { TaskService } from './tasks';
import { WebhookSecretUnreadable, type WebhookSecrets } from './webhook-secrets';
import type { DeliveryAttempt, OutboxEvent, Store } from '../store/types';

/** An event with its delivery attempts, in order. */
export interface EventDeliveries {
  event: OutboxEvent;
  attempts: DeliveryAttempt[];
}

export interface WebhookServiceDeps {
  store: Store;
  tasks: TaskService;
  teams: TeamService;
  secrets: WebhookSecrets;
  /** `webhooks.rotation_grace_ms`: how long a rotated-out secret keeps signing unless the admin says otherwise. */
  rotationGraceMs: number;
  /** Wakes the deliverer after a redelivery. */
  onRedeliver: () => void;
}

export type WebhookService = ReturnType<typeof createWebhookService>;

/** The webhook use cases; ApiErrors (404, 409) as documented in the spec. */
export function createWebhookService(deps: WebhookServiceDeps) {
  const { store } = deps;

  async function withAttempts(events: OutboxEvent[]): Promise<EventDeliveries[]> {
    const attempts = await store.listDeliveryAttempts(events.map((e) => e.id));
    return events.map((event) => ({ event, attempts: attempts.filter((a) => a.event_id === event.id) }));
  }

  return {
    /** The events of the caller's task with their attempts; 404 for another team's task. */
    async deliveries(caller: Caller, taskId: string): Promise<EventDeliveries[]> {
      await deps.tasks.get(caller, taskId);
      return withAttempts(await store.listTaskEvents(taskId));
    },

    /** Every event of the caller's task sent again now, ids unchanged; 409 `no_webhook_events` when it has none. */
    async redeliver(caller: Caller, taskId: string, nowMs: number): Promise<EventDeliveries[]> {
      const task = await deps.tasks.get(caller, taskId);
      const events = await store.redeliverTaskEvents(task.id, nowMs);
      if (events.length === 0) {
        throw conflict('no_webhook_events', task.callback_url === null ? `task '${taskId}' has no callback_url` : `task '${taskId}' has not finished, so it has no webhook yet`);
      }
      deps.onRedeliver();
      return withAttempts(events);
    },

    /** A team's dead-lettered events, newest first; 404 for an unknown team. */
    async deadLetters(teamId: string, limit: number): Promise<EventDeliveries[]> {
      await deps.teams.team(teamId);
      return withAttempts(await store.listDeadEvents(teamId, limit));
    },

    /**
     * The team's current secret; 404 `webhook_secret_not_found` before it has one; 409 `webhook_secret_unreadable`
     * when it cannot be decrypted with this installation's key (lost or replaced): a rotation makes a new one.
     */
    async currentSecret(teamId: string) {
      await deps.teams.team(teamId);
      const secret = await deps.secrets.current(teamId).catch((err: unknown) => {
        if (!(err instanceof WebhookSecretUnreadable)) throw err;
        throw conflict('webhook_secret_unreadable', `${err.message} with POST /admin/teams/${teamId}/webhook-secret (vidgate webhooks secret rotate ${teamId})`);
      });
      if (secret === undefined) {
        throw new ApiError(404, 'not_found_error', 'webhook_secret_not_found', `team '${teamId}' has no webhook secret yet: create one with POST`, 'team_id');
      }
      return secret;
    },

    /**
     * A new secret for the team; the previous one (when readable) signs beside it for `graceMs` (the configured
     * grace by default), older and unreadable ones stop at once.
     */
    async rotateSecret(teamId: string, graceMs = deps.rotationGraceMs) {
      await deps.teams.team(teamId);
      return deps.secrets.rotate(teamId, graceMs);
    },
  };
}
