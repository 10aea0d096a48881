// The webhook outbox: events written inside the transitions that finish tasks, claimed under leases by the
// deliverer, each attempt recorded; and the teams' signing secrets, kept as the caller encrypted them.
import crypto from 'node:crypto';
import type { ClaimedEvent, DeliveryAttempt, OutboxEvent, Store, TaskRecord, WebhookSecretRecord } from '../types';
import type { Backend, Tx } from './sql';

type EventRow = OutboxEvent & { lease_token: string | null; lease_until_ms: number | null; redeliver_at_ms: number | null };

const toEvent = ({ lease_token: _token, lease_until_ms: _until, redeliver_at_ms: _redeliver, ...event }: EventRow): OutboxEvent => event;

type OutboxMethods = Pick<
  Store,
  | 'claimDueEvents'
  | 'renewEventLease'
  | 'recordDelivery'
  | 'listTaskEvents'
  | 'listDeliveryAttempts'
  | 'listDeadEvents'
  | 'redeliverTaskEvents'
  | 'outboxCounts'
  | 'putWebhookSecret'
  | 'putFirstWebhookSecret'
  | 'signingSecrets'
>;

const INSERT_SECRET = `INSERT INTO webhook_secrets (id, team_id, secret_encrypted, created_at_ms, expires_at_ms)
  VALUES (@id, @team_id, @secret_encrypted, @created_at_ms, NULL)`;

/**
 * In the caller's transaction: the event of a task that has just finished, when it has a callback URL.
 * Its id (`evt_` and 24 hex digits) is the webhook-id of every attempt to deliver it.
 */
export async function writeEvent(tx: Tx, task: TaskRecord, nowMs: number): Promise<OutboxEvent | undefined> {
  if (task.callback_url === null || (task.status !== 'completed' && task.status !== 'failed' && task.status !== 'cancelled')) return undefined;
  const row = await tx.get<EventRow>(
    `INSERT INTO outbox (id, team_id, task_id, task_status, door, url, created_at_ms, state, failures, next_run_at_ms)
     VALUES (@id, @team_id, @task_id, @task_status, @door, @url, @now, 'pending', 0, @now)
     RETURNING *`,
    {
      id: `evt_${crypto.randomBytes(12).toString('hex')}`,
      team_id: task.owner_id,
      task_id: task.id,
      task_status: task.status,
      door: task.door,
      url: task.callback_url,
      now: nowMs,
    },
  );
  return toEvent(row!);
}

/** The outbox's and the signing secrets' methods of the Store, over a backend. */
export function createOutboxMethods({ read, transaction, dialect: d }: Backend): OutboxMethods {
  return {
    async claimDueEvents(limit, leaseMs, nowMs) {
      const rows = await read.all<EventRow>(
          `UPDATE outbox SET lease_token = ${d.randomToken}, lease_until_ms = CAST(@now AS BIGINT) + CAST(@lease_ms AS BIGINT), redeliver_at_ms = NULL
           WHERE id IN (
             SELECT id FROM outbox
             WHERE state = 'pending' AND next_run_at_ms <= @now AND (lease_until_ms IS NULL OR lease_until_ms < @now)
             ORDER BY next_run_at_ms
             LIMIT @limit${d.skipLocked})
           RETURNING *`,
          { limit, lease_ms: leaseMs, now: nowMs },
      );
      rows.sort((a, b) => a.next_run_at_ms - b.next_run_at_ms || a.created_at_ms - b.created_at_ms || (a.id < b.id ? -1 : 1));
      return rows.map((row): ClaimedEvent => ({ ...toEvent(row), lease_token: row.lease_token! }));
    },
    async renewEventLease(id, leaseToken, leaseUntilMs) {
      return (await read.run(`UPDATE outbox SET lease_until_ms = @until WHERE id = @id AND lease_token = @token AND state = 'pending'`, { id, token: leaseToken, until: leaseUntilMs })) === 1;
    },
    async recordDelivery(id, leaseToken, attempt, outcome) {
      return transaction(async (tx) => {
        // A redelivery asked for during the attempt (redeliver_at_ms) wins over the attempt's outcome: the attempt is
        // recorded, and the event is due again from when the redelivery was asked, its failures counted afresh.
        const settled = await tx.run(
          `UPDATE outbox SET
             state = CASE WHEN redeliver_at_ms IS NULL THEN CAST(@state AS TEXT) ELSE 'pending' END,
             failures = CASE WHEN redeliver_at_ms IS NULL THEN failures + CAST(@failed AS BIGINT) ELSE 0 END,
             next_run_at_ms = coalesce(redeliver_at_ms, CAST(@next AS BIGINT)),
             delivered_at_ms = CASE WHEN redeliver_at_ms IS NULL THEN CAST(@delivered_at_ms AS BIGINT) END,
             lease_token = NULL, lease_until_ms = NULL, redeliver_at_ms = NULL
           WHERE id = @id AND lease_token = @token AND state = 'pending'`,
          {
            id,
            token: leaseToken,
            state: outcome.state,
            failed: outcome.state === 'delivered' ? 0 : 1,
            next: outcome.state === 'pending' ? outcome.next_run_at_ms : attempt.started_at_ms,
            delivered_at_ms: outcome.state === 'delivered' ? attempt.started_at_ms + attempt.latency_ms : null,
          },
        );
        if (settled !== 1) return false;
        await tx.run(
          `INSERT INTO delivery_attempts (event_id, n, started_at_ms, status_code, latency_ms, error)
           VALUES (@id, (SELECT coalesce(max(n), 0) + 1 FROM delivery_attempts WHERE event_id = @id), @started_at_ms, @status_code, @latency_ms, @error)`,
          { id, ...attempt },
        );
        return true;
      });
    },
    async listTaskEvents(taskId) {
      return (await read.all<EventRow>('SELECT * FROM outbox WHERE task_id = @id ORDER BY created_at_ms, id', { id: taskId })).map(toEvent);
    },
    async listDeliveryAttempts(eventIds) {
      return read.all<DeliveryAttempt>(`SELECT * FROM delivery_attempts WHERE event_id IN ${d.jsonTexts('@ids')} ORDER BY event_id, n`, { ids: JSON.stringify(eventIds) });
    },
    async listDeadEvents(teamId, limit) {
      const rows = await read.all<EventRow>(`SELECT * FROM outbox WHERE team_id = @team AND state = 'dead' ORDER BY created_at_ms DESC, id DESC LIMIT @limit`, { team: teamId, limit });
      return rows.map(toEvent);
    },
    async redeliverTaskEvents(taskId, nowMs) {
      // An event being sent (leased) keeps its lease: the redelivery is noted, and applied when the attempt is
      // recorded, or dropped by the next claim should the lease lapse (that claim's attempt is the one asked for).
      const rows = await read.all<EventRow>(
          `UPDATE outbox SET state = 'pending', failures = 0, next_run_at_ms = @now, delivered_at_ms = NULL,
             redeliver_at_ms = CASE WHEN lease_token IS NULL THEN NULL ELSE CAST(@now AS BIGINT) END
           WHERE task_id = @task_id RETURNING *`,
          { task_id: taskId, now: nowMs },
      );
      return rows.sort((a, b) => a.created_at_ms - b.created_at_ms || a.id.localeCompare(b.id)).map(toEvent);
    },
    async outboxCounts() {
      return (await read.get<{ pending: number; dead: number }>(
        `SELECT count(*) FILTER (WHERE state = 'pending') AS pending, count(*) FILTER (WHERE state = 'dead') AS dead FROM outbox`,
      ))!;
    },
    async putWebhookSecret(secret, keep) {
      await transaction(async (tx) => {
        await tx.lock(`webhook_secrets:${secret.team_id}`);
        await tx.run(
          `UPDATE webhook_secrets SET expires_at_ms = CASE WHEN id = @keep_id
             THEN ${d.least('coalesce(expires_at_ms, CAST(@keep_until AS BIGINT))', 'CAST(@keep_until AS BIGINT)')} ELSE CAST(@now AS BIGINT) END
           WHERE team_id = @team_id AND (expires_at_ms IS NULL OR expires_at_ms > @now)`,
          { team_id: secret.team_id, now: secret.created_at_ms, keep_id: keep?.id ?? null, keep_until: keep?.expires_at_ms ?? null },
        );
        await tx.run(INSERT_SECRET, { ...secret });
      });
    },
    async putFirstWebhookSecret(secret) {
      return transaction(async (tx) => {
        await tx.lock(`webhook_secrets:${secret.team_id}`);
        const signing = await tx.get(
          'SELECT id FROM webhook_secrets WHERE team_id = @team_id AND (expires_at_ms IS NULL OR expires_at_ms > @created_at_ms) LIMIT 1',
          { team_id: secret.team_id, created_at_ms: secret.created_at_ms },
        );
        if (signing) return false;
        await tx.run(INSERT_SECRET, { ...secret });
        return true;
      });
    },
    async signingSecrets(teamId, nowMs) {
      return read.all<WebhookSecretRecord>(
        `SELECT * FROM webhook_secrets WHERE team_id = @team AND (expires_at_ms IS NULL OR expires_at_ms > @now) ORDER BY created_at_ms DESC, id DESC`,
        { team: teamId, now: nowMs },
      );
    },
  };
}
