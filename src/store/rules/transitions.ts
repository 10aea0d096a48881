// The transitions of a task after its creation, each one transaction: a new attempt, submitted, progress, requeued,
// completed (settled, its followers with it), failed (released, its followers with it, or handed over), cancelled
// (a leader's generation handed over to a follower). Every write is conditional on the state and the lease token;
// the rows a transition reads before it writes are locked (Dialect.forUpdate), so that on a backend with row locks
// two transitions of one task, or a leader's and its followers', happen one after the other.
import { QuotaExceededError, type AttemptOutcome, type AttemptRecord, type Cancellation, type RefusalReason, type TransitionOutcome, type TransitionReport, type Refused } from '../types';
import * as quota from './quota';
import { finished, moved, newReport } from './report';
import { toTask, type TaskRow } from './rows';
import type { Dialect, Tx } from './sql';

const NO_LEASE = 'lease_token = NULL, lease_until_ms = NULL';
/** The followers of the leader `@id`: tasks that share its generation and are not finished. */
const FOLLOWERS = "source_id = @id AND status IN ('pending', 'processing')";

/** Why a conditional write on the task `id` under `token` changed nothing. */
export async function refusal(tx: Pick<Tx, 'get'>, id: string, token: string): Promise<RefusalReason> {
  const row = await tx.get<{ lease_token: string | null }>('SELECT lease_token FROM tasks WHERE id = @id', { id });
  if (!row) return 'not_found';
  return row.lease_token === token ? 'wrong_state' : 'lease_lost';
}

type Params = { id: string; now: number; code?: string | null; message?: string | null; [k: string]: unknown };

export function createTransitions(d: Dialect) {
  const leased = (tx: Tx, p: Params) => tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = @id AND lease_token = @token${d.forUpdate}`, p);
  /** The task's current attempt, while it runs: its provider, upstream job and price. */
  const runningAttempt = (tx: Tx, id: string) =>
    tx.get<AttemptRecord>(
      `SELECT a.* FROM task_attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.n WHERE t.id = @id AND a.outcome = 'running'`,
      { id },
    );
  const endAttempt = (tx: Tx, outcome: AttemptOutcome, p: Params) =>
    tx.run(
      `UPDATE task_attempts SET outcome = @outcome, ended_at_ms = @now, error_code = @code, error_message = @message
       WHERE task_id = @id AND n = (SELECT attempt FROM tasks WHERE id = @id) AND outcome = 'running'`,
      { outcome, id: p.id, now: p.now, code: p.code ?? null, message: p.message ?? null },
    );
  const insertAttempt = (tx: Tx, p: { id: string; provider_id: string; micro_usd: number; credits: number; now: number }) =>
    tx.run(
      `INSERT INTO task_attempts (task_id, n, provider_id, micro_usd, credits, started_at_ms, outcome)
       SELECT id, attempt, @provider_id, @micro_usd, @credits, @now, 'running' FROM tasks WHERE id = @id`,
      p,
    );
  const setAttemptUpstream = (tx: Tx, p: { id: string; upstream_id: string | null }) =>
    tx.run(`UPDATE task_attempts SET upstream_id = @upstream_id WHERE task_id = @id AND n = (SELECT attempt FROM tasks WHERE id = @id)`, p);
  const mirrorFollowers = (tx: Tx, p: { id: string; status: 'pending' | 'processing'; now: number }) =>
    tx.run(`UPDATE tasks SET status = @status, progress = 0, updated_at_ms = @now WHERE ${FOLLOWERS}`, p);

  /** The heir takes the submitted job over, reserving its price; false (nothing changed) when its quota cannot. */
  async function adopt(tx: Tx, heir: TaskRow, leader: TaskRow, job: AttemptRecord, now: number): Promise<number | false> {
    const extra = Math.max(0, job.credits - heir.credits_reserved);
    try {
      // A savepoint: a refused reservation leaves nothing behind.
      await tx.savepoint(async () => {
        const adopted = { ...heir, attempt: heir.attempt + 1, provider_id: job.provider_id };
        if (extra > 0) await quota.grow(tx, adopted, extra, now, 'adopted the generation of a cancelled task');
        await tx.run(
          `UPDATE tasks SET status = 'processing', source_id = NULL, cache_status = 'miss', attempt = attempt + 1,
             provider_id = @provider_id, upstream_id = @upstream_id, submitted_at_ms = @submitted_at_ms, progress = @progress,
             credits_reserved = ${d.greatest('credits_reserved', '@credits')}, next_run_at_ms = @now, updated_at_ms = @now, ${NO_LEASE}
           WHERE id = @id`,
          { provider_id: job.provider_id, upstream_id: job.upstream_id, credits: job.credits, id: heir.id, submitted_at_ms: leader.submitted_at_ms, progress: leader.progress, now },
        );
        await insertAttempt(tx, { id: heir.id, provider_id: job.provider_id, micro_usd: job.micro_usd, credits: job.credits, now });
        await setAttemptUpstream(tx, { id: heir.id, upstream_id: job.upstream_id });
      });
      return extra;
    } catch (err) {
      if (err instanceof QuotaExceededError) return false;
      throw err;
    }
  }

  /**
   * A leader that ended on its own account (cancelled, or out of quota) passes its generation on. The oldest
   * follower whose quota covers the job's price adopts a submitted job; the others follow it. With no job yet, or
   * nobody able to pay for it, the oldest is queued to generate anew (and meets its own quota when it picks a
   * provider). The followers are locked first, so a follower cancelled at the same moment is not chosen.
   */
  async function handOver(tx: Tx, leader: TaskRow, job: AttemptRecord | undefined, now: number, report: TransitionReport): Promise<Cancellation['heir']> {
    const followers = await tx.all<TaskRow>(`SELECT * FROM tasks WHERE ${FOLLOWERS} ORDER BY created_at_ms, id${d.forUpdate}`, { id: leader.id });
    if (followers.length === 0) return null;
    const moveFollowers = (heir: string) => tx.run(`UPDATE tasks SET source_id = @heir WHERE ${FOLLOWERS} AND id <> @heir`, { id: leader.id, heir });
    if (leader.status === 'processing' && job?.upstream_id) {
      for (const heir of followers) {
        const reservedMore = await adopt(tx, heir, leader, job, now);
        if (reservedMore === false) continue;
        await moveFollowers(heir.id);
        moved(report, 'reserved', heir, job.provider_id, reservedMore);
        return { task: toTask((await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id: heir.id }))!), reserved_more: reservedMore };
      }
    }
    const heir = followers[0]!;
    await moveFollowers(heir.id);
    await tx.run(
      `UPDATE tasks SET status = 'pending', progress = 0, source_id = NULL, cache_status = 'miss', next_run_at_ms = @now,
         updated_at_ms = @now, ${NO_LEASE}
       WHERE id = @id`,
      { id: heir.id, now },
    );
    await mirrorFollowers(tx, { id: heir.id, status: 'pending', now });
    return null;
  }

  return {
    /** See Store.startAttempt. The provider is locked while its running attempts are counted and one is added. */
    async startAttempt(tx: Tx, p: { id: string; token: string; provider_id: string; micro_usd: number; credits: number; max_concurrent?: number; now: number }) {
      const before = await tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = @id AND status = 'pending' AND lease_token = @token${d.forUpdate}`, p);
      if (!before) return refusal(tx, p.id, p.token);
      if (p.max_concurrent !== undefined) {
        await tx.lock(`provider:${p.provider_id}`);
        // provider_running is kept by triggers on task_attempts (the schema of each backend).
        const running = (await tx.get<{ n: number }>('SELECT n FROM provider_running WHERE provider_id = @provider_id', p))?.n ?? 0;
        if (running >= p.max_concurrent) return 'provider_full' as const;
      }
      const extra = p.credits - before.credits_reserved;
      const note = before.attempt === 0 ? 'a follower generating anew' : 'failover to a dearer provider';
      if (extra > 0) await quota.grow(tx, { ...before, attempt: before.attempt + 1, provider_id: p.provider_id }, extra, p.now, note);
      await endAttempt(tx, 'retried', { id: p.id, now: p.now, code: 'abandoned', message: 'superseded by a new attempt' });
      await tx.run(
        `UPDATE tasks SET attempt = attempt + 1, provider_id = @provider_id, upstream_id = NULL, updated_at_ms = @now,
           credits_reserved = ${d.greatest('credits_reserved', '@credits')}
         WHERE id = @id AND status = 'pending' AND lease_token = @token`,
        p,
      );
      await insertAttempt(tx, p);
      return 'started' as const;
    },

    async markSubmitted(tx: Tx, p: { id: string; token: string; upstream_id: string; now: number }): Promise<TransitionOutcome> {
      const changed = await tx.run(
        `UPDATE tasks SET status = 'processing', upstream_id = @upstream_id, submitted_at_ms = @now, updated_at_ms = @now,
           progress = 0, ${NO_LEASE}, next_run_at_ms = @now
         WHERE id = @id AND status = 'pending' AND lease_token = @token`,
        p,
      );
      if (changed !== 1) return refusal(tx, p.id, p.token);
      await setAttemptUpstream(tx, p);
      await mirrorFollowers(tx, { ...p, status: 'processing' });
      return 'done';
    },

    async recordProgress(tx: Tx, p: { id: string; token: string; progress: number; next: number; now: number }): Promise<TransitionOutcome> {
      const changed = await tx.run(
        `UPDATE tasks SET progress = ${d.greatest('progress', '@progress')}, ${NO_LEASE}, next_run_at_ms = @next, updated_at_ms = @now
         WHERE id = @id AND status = 'processing' AND lease_token = @token`,
        p,
      );
      if (changed !== 1) return refusal(tx, p.id, p.token);
      await tx.run(`UPDATE tasks SET progress = ${d.greatest('progress', '@progress')}, updated_at_ms = @now WHERE ${FOLLOWERS}`, p);
      return 'done';
    },

    async requeue(tx: Tx, p: Params & { token: string; next: number }): Promise<TransitionOutcome> {
      const changed = await tx.run(
        `UPDATE tasks SET status = 'pending', progress = 0, provider_id = NULL, upstream_id = NULL, error_code = @code,
           error_message = @message, next_run_at_ms = @next, updated_at_ms = @now, ${NO_LEASE}
         WHERE id = @id AND status IN ('pending', 'processing') AND lease_token = @token`,
        p,
      );
      if (changed !== 1) return refusal(tx, p.id, p.token);
      await endAttempt(tx, 'retried', p);
      await mirrorFollowers(tx, { id: p.id, status: 'pending', now: p.now });
      return 'done';
    },

    async markCompleted(tx: Tx, p: { id: string; token: string; asset_key: string; now: number }): Promise<TransitionReport | Refused> {
      const before = await leased(tx, p);
      if (!before) return { refused: await refusal(tx, p.id, p.token) };
      const settled = (await runningAttempt(tx, p.id))?.credits ?? before.credits_reserved;
      const changed = await tx.run(
        `UPDATE tasks SET status = 'completed', progress = 100, asset_key = @asset_key, asset_stored_at_ms = @now, completed_at_ms = @now,
           credits_settled = @settled, updated_at_ms = @now, error_code = NULL, error_message = NULL, ${NO_LEASE}
         WHERE id = @id AND status = 'processing' AND lease_token = @token`,
        { ...p, settled },
      );
      if (changed !== 1) return { refused: 'wrong_state' };
      await endAttempt(tx, 'completed', p);
      await quota.settle(tx, before, settled, p.now);
      const report = newReport();
      await finished(tx, report, p.id, before.provider_id, p.now);
      moved(report, 'settled', before, before.provider_id, settled);
      moved(report, 'released', before, before.provider_id, before.credits_reserved - settled);
      const followers = await tx.all<TaskRow>(
        `UPDATE tasks SET status = 'completed', progress = 100, asset_key = @asset_key, asset_stored_at_ms = @now,
           completed_at_ms = @now, credits_settled = credits_reserved, provider_id = @provider_id, updated_at_ms = @now
         WHERE ${FOLLOWERS} RETURNING *`,
        { ...p, provider_id: before.provider_id },
      );
      followers.sort((a, b) => a.created_at_ms - b.created_at_ms || (a.id < b.id ? -1 : 1));
      for (const f of followers) {
        await quota.settle(tx, f, f.credits_reserved, p.now);
        await finished(tx, report, f.id, before.provider_id, p.now);
        moved(report, 'settled', f, before.provider_id, f.credits_reserved);
      }
      return report;
    },

    async markFailed(tx: Tx, p: { id: string; token: string; code: string; message: string; now: number; hand_over: boolean }): Promise<TransitionReport | Refused> {
      const before = await leased(tx, p);
      const job = p.hand_over ? await runningAttempt(tx, p.id) : undefined; // read before the attempt ends
      if (!before) return { refused: await refusal(tx, p.id, p.token) };
      const changed = await tx.run(
        `UPDATE tasks SET status = 'failed', error_code = @code, error_message = @message, completed_at_ms = @now,
           updated_at_ms = @now, ${NO_LEASE}
         WHERE id = @id AND status IN ('pending', 'processing') AND lease_token = @token`,
        p,
      );
      if (changed !== 1) return { refused: 'wrong_state' };
      await endAttempt(tx, 'failed', p);
      await quota.release(tx, before, p.now);
      const report = newReport();
      await finished(tx, report, p.id, before.provider_id, p.now);
      moved(report, 'released', before, before.provider_id, before.credits_reserved);
      if (p.hand_over) {
        await handOver(tx, before, job, p.now, report);
        return report;
      }
      const followers = await tx.all<TaskRow>(
        `UPDATE tasks SET status = 'failed', error_code = @code, error_message = @message, completed_at_ms = @now, updated_at_ms = @now
         WHERE ${FOLLOWERS} RETURNING *`,
        p,
      );
      followers.sort((a, b) => a.created_at_ms - b.created_at_ms || (a.id < b.id ? -1 : 1));
      for (const f of followers) {
        await quota.release(tx, f, p.now);
        await finished(tx, report, f.id, before.provider_id, p.now);
        moved(report, 'released', f, before.provider_id, f.credits_reserved);
      }
      return report;
    },

    /** See Store.cancel. The task's cache key is locked first, as createTask locks it, then the task's row. */
    async cancel(tx: Tx, id: string, ownerId: string, now: number): Promise<Cancellation | undefined> {
      const peek = await tx.get<{ cache_key: string | null }>('SELECT cache_key FROM tasks WHERE id = @id', { id });
      if (peek?.cache_key) await tx.lock(`cache:${peek.cache_key}`);
      const before = await tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = @id${d.forUpdate}`, { id });
      const job = await runningAttempt(tx, id);
      if (!before) return undefined;
      const changed = await tx.run(
        `UPDATE tasks SET status = 'cancelled', completed_at_ms = @now, updated_at_ms = @now, ${NO_LEASE}
         WHERE id = @id AND owner_id = @owner_id AND status IN ('pending', 'processing')`,
        { id, owner_id: ownerId, now },
      );
      if (changed !== 1) return undefined;
      await endAttempt(tx, 'cancelled', { id, now });
      await quota.release(tx, before, now);
      const report = newReport();
      await finished(tx, report, id, before.provider_id, now);
      moved(report, 'released', before, before.provider_id, before.credits_reserved);
      // A follower owns no job; a leader's job is abandoned unless an heir adopts it.
      const heir = before.source_id === null ? await handOver(tx, before, job, now, report) : null;
      return { report, task: toTask(before), abandon_job: before.source_id === null && heir === null, heir };
    },
  };
}
