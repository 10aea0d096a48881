// Building a transition's report inside its transaction: tasks finished (each with its outbox event) and credits moved.
import type { CreditMovement, TaskRecord, TransitionReport } from '../types';
import { writeEvent } from './outbox';
import { toTask, type TaskRow } from './rows';
import type { Tx } from './sql';

export const newReport = (): TransitionReport => ({ created: [], finished: [], credits: [], events: [] });

/** A movement of credits, in the report (none for zero credits). */
export function moved(report: TransitionReport, kind: CreditMovement['kind'], t: TaskRow, providerId: string | null, credits: number, cacheHit = false): void {
  if (credits !== 0) report.credits.push({ kind, team_id: t.owner_id, model: t.model, provider_id: providerId, cache_hit: cacheHit, credits });
}

/** The task (re-read after its transition) finished: in the report, with its outbox event. */
export async function finished(tx: Tx, report: TransitionReport, id: string, providerId: string | null, nowMs: number): Promise<TaskRecord> {
  const task = toTask((await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = @id', { id }))!);
  report.finished.push({ task, provider_id: providerId });
  const event = await writeEvent(tx, task, nowMs);
  if (event) report.events.push(event);
  return task;
}
