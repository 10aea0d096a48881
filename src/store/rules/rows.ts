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

/**
 * The record a caller sees: no lease, no windows. Built field by field (every status poll reads one): one object
 * shape for every task, where a rest-spread of the row's 34 columns cost as much as the read itself.
 */
export function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    owner_id: row.owner_id,
    key_id: row.key_id,
    status: row.status,
    progress: row.progress,
    model: row.model,
    request_json: row.request_json,
    callback_url: row.callback_url,
    credits_reserved: row.credits_reserved,
    credits_settled: row.credits_settled,
    attempt: row.attempt,
    provider_id: row.provider_id,
    upstream_id: row.upstream_id,
    error_code: row.error_code,
    error_message: row.error_message,
    asset_key: row.asset_key,
    asset_expired: row.asset_expired === 1,
    created_at_ms: row.created_at_ms,
    updated_at_ms: row.updated_at_ms,
    submitted_at_ms: row.submitted_at_ms,
    completed_at_ms: row.completed_at_ms,
    next_run_at_ms: row.next_run_at_ms,
    cache_key: row.cache_key,
    cache_status: row.cache_status,
    source_id: row.source_id,
    asset_stored_at_ms: row.asset_stored_at_ms,
    deleted_at_ms: row.deleted_at_ms,
    door: row.door,
  };
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
