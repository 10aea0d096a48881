// The webhook outbox: events written inside the transitions that finish tasks, claimed under leases by the
// deliverer, each attempt recorded; and the teams' signing secrets, kept as the caller encrypted them.
import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import type { ClaimedEvent, DeliveryAttempt, OutboxEvent, Store, TaskRecord, WebhookSecretRecord } from '../types';

type EventRow = OutboxEvent & { lease_token: string | null; lease_until_ms: number | null; redeliver_at_ms: number | null };

const toEvent = ({ lease_token: _token, lease_until_ms: _until, redeliver_at_ms: _redeliver, ...event }: EventRow): OutboxEvent => event;

type OutboxStatements = Pick<
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
  | 'signingSecrets'
>;

export function createOutbox(db: Database.Database) {
  const sql = {
    insert: db.prepare<[object], EventRow>(
      `INSERT INTO outbox (id, team_id, task_id, task_status, door, url, created_at_ms, state, failures, next_run_at_ms)
       VALUES (@id, @team_id, @task_id, @task_status, @door, @url, @now, 'pending', 0, @now)
       RETURNING *`,
    ),
    claimDue: db.prepare<[object], EventRow>(
      `UPDATE outbox SET lease_token = lower(hex(randomblob(16))), lease_until_ms = @now + @lease_ms, redeliver_at_ms = NULL
       WHERE id IN (
         SELECT id FROM outbox
         WHERE state = 'pending' AND next_run_at_ms <= @now AND (lease_until_ms IS NULL OR lease_until_ms < @now)
         ORDER BY next_run_at_ms
         LIMIT @limit)
       RETURNING *`,
    ),
    renew: db.prepare(`UPDATE outbox SET lease_until_ms = @until WHERE id = @id AND lease_token = @token AND state = 'pending'`),
    addAttempt: db.prepare(
      `INSERT INTO delivery_attempts (event_id, n, started_at_ms, status_code, latency_ms, error)
       VALUES (@id, (SELECT coalesce(max(n), 0) + 1 FROM delivery_attempts WHERE event_id = @id), @started_at_ms, @status_code, @latency_ms, @error)`,
    ),
    // A redelivery asked for during the attempt (redeliver_at_ms) wins over the attempt's outcome: the attempt is
    // recorded, and the event is due again from when the redelivery was asked, its failures counted afresh.
    settle: db.prepare(
      `UPDATE outbox SET
         state = CASE WHEN redeliver_at_ms IS NULL THEN @state ELSE 'pending' END,
         failures = CASE WHEN redeliver_at_ms IS NULL THEN failures + @failed ELSE 0 END,
         next_run_at_ms = coalesce(redeliver_at_ms, @next),
         delivered_at_ms = CASE WHEN redeliver_at_ms IS NULL THEN @delivered_at_ms END,
         lease_token = NULL, lease_until_ms = NULL, redeliver_at_ms = NULL
       WHERE id = @id AND lease_token = @token AND state = 'pending'`,
    ),
    byTask: db.prepare<[string], EventRow>('SELECT * FROM outbox WHERE task_id = ? ORDER BY created_at_ms, id'),
    attempts: db.prepare<[string], DeliveryAttempt>(
      'SELECT * FROM delivery_attempts WHERE event_id IN (SELECT value FROM json_each(?)) ORDER BY event_id, n',
    ),
    dead: db.prepare<[string, number], EventRow>(
      `SELECT * FROM outbox WHERE team_id = ? AND state = 'dead' ORDER BY created_at_ms DESC, id DESC LIMIT ?`,
    ),
    // An event being sent (leased) keeps its lease: the redelivery is noted, and applied when the attempt is recorded
    // (settle), or dropped by the next claim should the lease lapse (that claim's attempt is the one asked for).
    redeliver: db.prepare<[object], EventRow>(
      `UPDATE outbox SET state = 'pending', failures = 0, next_run_at_ms = @now, delivered_at_ms = NULL,
         redeliver_at_ms = CASE WHEN lease_token IS NULL THEN NULL ELSE @now END
       WHERE task_id = @task_id RETURNING *`,
    ),
    counts: db.prepare<[], { pending: number; dead: number }>(
      `SELECT count(*) FILTER (WHERE state = 'pending') AS pending, count(*) FILTER (WHERE state = 'dead') AS dead FROM outbox`,
    ),
    expireSecrets: db.prepare(
      `UPDATE webhook_secrets SET expires_at_ms = CASE WHEN id = @keep_id THEN min(coalesce(expires_at_ms, @keep_until), @keep_until) ELSE @now END
       WHERE team_id = @team_id AND (expires_at_ms IS NULL OR expires_at_ms > @now)`,
    ),
    insertSecret: db.prepare(
      `INSERT INTO webhook_secrets (id, team_id, secret_encrypted, created_at_ms, expires_at_ms)
       VALUES (@id, @team_id, @secret_encrypted, @created_at_ms, NULL)`,
    ),
    signing: db.prepare<[string, number], WebhookSecretRecord>(
      `SELECT * FROM webhook_secrets WHERE team_id = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?) ORDER BY created_at_ms DESC, id DESC`,
    ),
  };

  const statements: OutboxStatements = {
    async claimDueEvents(limit, leaseMs, nowMs) {
      const rows = sql.claimDue.all({ limit, lease_ms: leaseMs, now: nowMs });
      rows.sort((a, b) => a.next_run_at_ms - b.next_run_at_ms);
      return rows.map((row): ClaimedEvent => ({ ...toEvent(row), lease_token: row.lease_token! }));
    },
    async renewEventLease(id, leaseToken, leaseUntilMs) {
      return sql.renew.run({ id, token: leaseToken, until: leaseUntilMs }).changes === 1;
    },
    async recordDelivery(id, leaseToken, attempt, outcome) {
      return db.transaction(() => {
        const settled = sql.settle.run({
          id,
          token: leaseToken,
          state: outcome.state,
          failed: outcome.state === 'delivered' ? 0 : 1,
          next: outcome.state === 'pending' ? outcome.next_run_at_ms : attempt.started_at_ms,
          delivered_at_ms: outcome.state === 'delivered' ? attempt.started_at_ms + attempt.latency_ms : null,
        });
        if (settled.changes !== 1) return false;
        sql.addAttempt.run({ id, ...attempt });
        return true;
      }).immediate();
    },
    async listTaskEvents(taskId) {
      return sql.byTask.all(taskId).map(toEvent);
    },
    async listDeliveryAttempts(eventIds) {
      return sql.attempts.all(JSON.stringify(eventIds));
    },
    async listDeadEvents(teamId, limit) {
      return sql.dead.all(teamId, limit).map(toEvent);
    },
    async redeliverTaskEvents(taskId, nowMs) {
      const rows = db.transaction(() => sql.redeliver.all({ task_id: taskId, now: nowMs })).immediate();
      return rows.sort((a, b) => a.created_at_ms - b.created_at_ms || a.id.localeCompare(b.id)).map(toEvent);
    },
    async outboxCounts() {
      return sql.counts.get()!;
    },
    async putWebhookSecret(secret, keep) {
      db.transaction(() => {
        sql.expireSecrets.run({ team_id: secret.team_id, now: secret.created_at_ms, keep_id: keep?.id ?? null, keep_until: keep?.expires_at_ms ?? null });
        sql.insertSecret.run(secret);
      }).immediate();
    },
    async signingSecrets(teamId, nowMs) {
      return sql.signing.all(teamId, nowMs);
    },
  };

  return {
    statements,
    /**
     * In the caller's transaction: the event of a task that has just finished, when it has a callback URL.
     * Its id (`evt_` and 24 hex digits) is the webhook-id of every attempt to deliver it.
     */
    write(task: TaskRecord, nowMs: number): OutboxEvent | undefined {
      if (task.callback_url === null || (task.status !== 'completed' && task.status !== 'failed' && task.status !== 'cancelled')) return undefined;
      return toEvent(
        sql.insert.get({
          id: `evt_${crypto.randomBytes(12).toString('hex')}`,
          team_id: task.owner_id,
          task_id: task.id,
          task_status: task.status,
          door: task.door,
          url: task.callback_url,
          now: nowMs,
        })!,
      );
    },
  };
}
