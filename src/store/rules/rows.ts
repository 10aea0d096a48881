// A task as stored (with the columns the contract does not show), and the UTC quota windows of a time.
import type { NewTask, TaskRecord } from '../types';

/** A `tasks` row: the record plus its lease, its quota windows, and `asset_expired` as 0/1. */
export type TaskRow = Omit<TaskRecord, 'asset_expired'> & {
  asset_expired: number;
  quota_day: string;
  quota_month: string;
  lease_token: string | null;
  lease_until_ms: number | null;
};

/** The record a caller sees: no lease, no windows. */
export function toTask(row: TaskRow): TaskRecord {
  const { lease_token: _token, lease_until_ms: _until, quota_day: _day, quota_month: _month, asset_expired, ...task } = row;
  return { ...task, asset_expired: asset_expired === 1 };
}

/** The parameters of a new task row: the NewTask and what the creation decided. */
export type InsertParams = Omit<NewTask, 'cache_status' | 'door' | 'idempotency'> &
  Pick<TaskRow, 'status' | 'progress' | 'credits_settled' | 'provider_id' | 'asset_key' | 'asset_stored_at_ms' | 'completed_at_ms' | 'source_id' | 'quota_day' | 'quota_month'> & {
    cache_status: TaskRecord['cache_status'];
    door: TaskRecord['door'];
  };

/** The UTC day (YYYY-MM-DD) and month (YYYY-MM) of a time in ms: the quota windows a task counts in. */
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
export const utcMonth = (ms: number) => new Date(ms).toISOString().slice(0, 7);
