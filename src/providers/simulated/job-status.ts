// Where a job stands, derived only from its record and the clock, so it survives restarts.
import { ProviderError } from '../types';
import type { JobRecord } from './job-store';

export type JobStatus =
  | { state: 'pending' | 'processing'; progress: number }
  | { state: 'done' }
  | { state: 'failed'; error: ProviderError };

/** A doomed job fails at this fraction of its duration. */
const FAILURE_POINT = 0.5;

export function jobStatus(job: JobRecord, nowMs: number): JobStatus {
  if (job.cancelled_at_ms !== undefined) {
    return { state: 'failed', error: new ProviderError('request_cancelled', `job ${job.id} was cancelled`, false) };
  }
  const fraction = (nowMs - job.created_at_ms) / job.duration_ms;
  if (job.failure && fraction >= FAILURE_POINT) return { state: 'failed', error: injectedFailure(job.failure) };
  if (fraction >= 1) return { state: 'done' };
  const progress = Math.min(99, Math.max(0, Math.floor(fraction * 100)));
  return { state: progress < 1 ? 'pending' : 'processing', progress };
}

function injectedFailure(kind: JobRecord['failure']): ProviderError {
  return kind === 'terminal'
    ? new ProviderError('content_policy_violation', 'simulated content policy violation', false)
    : new ProviderError('service_error', 'simulated upstream failure', true);
}
