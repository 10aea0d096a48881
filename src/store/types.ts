// The store contract: named, atomic transitions. Each transition is one conditional statement
// (UPDATE ... WHERE status = ... AND lease_token = ...), so it holds with several processes sharing
// one database. Every method is async so that a networked backend (PostgreSQL) fits the same shape.

export type TaskStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

/** Which loop a task is waiting for: `dispatch` claims pending tasks, `poll` claims processing ones. */
export type WorkPhase = 'dispatch' | 'poll';

export interface TaskRecord {
  id: string;
  owner_id: string;
  status: TaskStatus;
  progress: number;
  model: string;
  /** The NormalizedRequest, as JSON. */
  request_json: string;
  callback_url: string | null;
  credits_reserved: number;
  /** Number of submissions started so far (0 until the first). */
  attempt: number;
  provider_id: string | null;
  upstream_id: string | null;
  error_code: string | null;
  error_message: string | null;
  /** Key of the stored MP4 in the asset store, once completed. */
  asset_key: string | null;
  asset_expired: boolean;
  created_at_ms: number;
  updated_at_ms: number;
  submitted_at_ms: number | null;
  completed_at_ms: number | null;
  next_run_at_ms: number;
}

export interface NewTask {
  id: string;
  owner_id: string;
  model: string;
  request_json: string;
  callback_url: string | null;
  credits_reserved: number;
  created_at_ms: number;
}

/** A task claimed by one worker. `lease_token` fences every transition the worker makes. */
export interface ClaimedTask extends TaskRecord {
  lease_token: string;
}

export interface ListTasksQuery {
  owner_id: string;
  status?: TaskStatus;
  limit: number;
  /** Return tasks strictly older than this position (newest first). */
  before?: { created_at_ms: number; id: string };
}

export type AttemptOutcome = 'running' | 'completed' | 'failed' | 'retried' | 'cancelled';

/** One submission of a task to one provider. */
export interface AttemptRecord {
  task_id: string;
  /** 1 for the first submission, and so on (the task's `attempt` is the latest). */
  n: number;
  provider_id: string;
  upstream_id: string | null;
  /** The price of the request on this provider. */
  usd: number;
  started_at_ms: number;
  ended_at_ms: number | null;
  outcome: AttemptOutcome;
  error_code: string | null;
  error_message: string | null;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  key_hash: string;
  prefix: string;
  created_at_ms: number;
}

export interface Store {
  // --- API keys (only hashes are stored) ---
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  countApiKeys(): Promise<number>;

  // --- tasks: reads ---
  createTask(task: NewTask): Promise<TaskRecord>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  listTasks(query: ListTasksQuery): Promise<TaskRecord[]>;

  // --- tasks: leases ---
  /** Lease up to `limit` due, unleased (or lease-expired) tasks of a phase, oldest due first. */
  claimDue(phase: WorkPhase, limit: number, leaseMs: number, nowMs: number): Promise<ClaimedTask[]>;
  renewLease(id: string, leaseToken: string, leaseUntilMs: number): Promise<boolean>;
  /** Give the task back, to be claimed again at `nextRunAtMs` (a status change also releases it). */
  releaseLease(id: string, leaseToken: string, nextRunAtMs: number, nowMs: number): Promise<boolean>;

  // --- tasks: transitions (each returns false when the task was not in the expected state) ---
  /**
   * pending -> pending: a new attempt is about to be submitted to `providerId` at `usd`. Counts the
   * attempt and records it (outcome `running`). The other transitions end the running attempt:
   * completed, failed, retried (requeue) or cancelled.
   */
  startAttempt(id: string, leaseToken: string, providerId: string, usd: number, nowMs: number): Promise<boolean>;
  /** pending -> processing; the running attempt gets its upstream id. */
  markSubmitted(id: string, leaseToken: string, upstreamId: string, nowMs: number): Promise<boolean>;
  /** processing -> processing, with new progress; releases the lease until `nextRunAtMs`. */
  recordProgress(id: string, leaseToken: string, progress: number, nextRunAtMs: number, nowMs: number): Promise<boolean>;
  /** processing -> completed. */
  markCompleted(id: string, leaseToken: string, assetKey: string, nowMs: number): Promise<boolean>;
  /** pending|processing -> failed. */
  markFailed(id: string, leaseToken: string, error: { code: string; message: string }, nowMs: number): Promise<boolean>;
  /**
   * pending|processing -> pending, to be submitted again (a new attempt) at `nextRunAtMs`. Clears the
   * provider: a pending task with a provider is an attempt started but not confirmed (see startAttempt).
   */
  requeue(id: string, leaseToken: string, error: { code: string; message: string }, nextRunAtMs: number, nowMs: number): Promise<boolean>;
  /** pending|processing -> cancelled, by the owner; leased or not. Returns the task as it was before. */
  cancel(id: string, ownerId: string, nowMs: number): Promise<TaskRecord | undefined>;

  // --- attempts and load ---
  /** The attempts of these tasks, by task and then in order. */
  listAttempts(taskIds: readonly string[]): Promise<AttemptRecord[]>;
  /** Tasks with a running attempt (submitting or processing), per provider. */
  countActiveByProvider(): Promise<Map<string, number>>;

  // --- retention ---
  /** Completed tasks whose video was stored before `beforeMs` and is not yet expired. */
  listAssetsStoredBefore(beforeMs: number, limit: number): Promise<TaskRecord[]>;
  markAssetExpired(id: string): Promise<void>;

  close(): Promise<void>;
}
