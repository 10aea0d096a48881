// The store contract: named, atomic transitions. Each transition is one conditional statement
// (UPDATE ... WHERE status = ... AND lease_token = ...), so it holds with several processes sharing
// one database. Every method is async so that a networked backend (PostgreSQL) fits the same shape.

export type TaskStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * How a task was served: generated (`miss`; `bypassed` when the caller asked for a fresh take; `disabled`
 * with the cache off), served from a stored result (`hit`), or following an identical running task
 * (`coalesced`) whose generation it shares.
 */
export type CacheStatus = 'miss' | 'bypassed' | 'disabled' | 'hit' | 'coalesced';

/** Which loop a task is waiting for: `dispatch` claims pending tasks, `poll` claims processing ones. */
export type WorkPhase = 'dispatch' | 'poll';

/** The front door a task was made through: its webhook body is that door's task query response. */
export type Door = 'native' | 'openai';

export interface TaskRecord {
  id: string;
  owner_id: string;
  key_id: string;
  status: TaskStatus;
  progress: number;
  model: string;
  /** The NormalizedRequest, as JSON. */
  request_json: string;
  callback_url: string | null;
  /** Credits held for the task until it finishes (grown when it fails over to a dearer provider). */
  credits_reserved: number;
  /** Credits charged on completion, at the price of the provider that served it. */
  credits_settled: number | null;
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
  /** The hash of the request's normalized form (src/core/cache-key.ts); null when the cache is off. */
  cache_key: string | null;
  cache_status: CacheStatus;
  /**
   * For a hit, the task whose video it serves; for a follower, the task it follows (the leader, which
   * owns the upstream job). Null for a task that generates its own video. Never shown to callers.
   */
  source_id: string | null;
  /** When the video in `asset_key` was stored: the original's completion, for hits and followers. */
  asset_stored_at_ms: number | null;
  /** When its owner deleted it: hidden from every read and list, its ledger rows kept. */
  deleted_at_ms: number | null;
  door: Door;
}

export interface NewTask {
  id: string;
  /** The owning team: only its keys see the task. */
  owner_id: string;
  /** The key that submitted it (its own quotas apply too). */
  key_id: string;
  model: string;
  request_json: string;
  callback_url: string | null;
  /** The front door it came through (the shape of its webhook body); `native` by default. */
  door?: Door;
  credits_reserved: number;
  created_at_ms: number;
  cache_key: string | null;
  /** How the task is served when `createTask` finds nothing to share. */
  cache_status: Extract<CacheStatus, 'miss' | 'bypassed' | 'disabled'>;
  /** The client's Idempotency-Key, with the hash of the request it came with, honoured since `since_ms`. */
  idempotency?: { key: string; request_hash: string; since_ms: number };
}

/** An Idempotency-Key reused with another request; thrown by `createTask`, which then creates nothing. */
export class IdempotencyConflictError extends Error {
  /** `another_request`: the key was used for another request hash; `original_deleted`: its task was deleted since. */
  constructor(
    readonly task_id: string,
    readonly reason: 'another_request' | 'original_deleted' = 'another_request',
  ) {
    super(reason === 'another_request' ? `idempotency key already used for task ${task_id} with another request` : `idempotency key's task ${task_id} was deleted`);
    this.name = 'IdempotencyConflictError';
  }
}

/** Asks `createTask` to serve an identical request from what exists: a stored result, or a running task. */
export interface CacheLookup {
  /** Results completed at or after this time may be served (the TTL). */
  fresh_since_ms: number;
  /** What a hit or a follower is charged (instead of `credits_reserved`). */
  hit_credits: number;
  /** A source the in-memory index remembers for this key; checked in the store before it is served. */
  source_hint?: string;
}

/**
 * A movement of credits a transition made, in the terms of the `vidgate_credits_total` metric: `reserved` (a
 * reservation made or grown), `settled` (charged), `released` (reserved and not charged: all of it for a failed
 * or cancelled task, `credits_reserved - credits_settled` for a completed one). `provider_id` is the provider
 * whose price it is (null before one is chosen); `cache_hit` marks a hit's settlement, which no provider served.
 */
export interface CreditMovement {
  kind: 'reserved' | 'settled' | 'released';
  team_id: string;
  model: string;
  provider_id: string | null;
  cache_hit: boolean;
  credits: number;
}

/** A task a transition finished (completed, failed or cancelled), as it is after it. */
export interface FinishedTask {
  task: TaskRecord;
  /** The provider that served (or last tried) it: a follower's is its leader's; null for a hit or none yet. */
  provider_id: string | null;
}

/**
 * What a transition did, written in the same transaction: tasks it created and finished, credits it moved,
 * webhook events it put in the outbox (one per finished task with a `callback_url`). The metrics and the cache
 * statistics are derived from it; nothing else recomputes what the store did.
 */
export interface TransitionReport {
  created: TaskRecord[];
  finished: FinishedTask[];
  credits: CreditMovement[];
  events: OutboxEvent[];
}

/** A task created by `createTask`, and the report of the creation (empty for an idempotent retry's original). */
export interface CreatedTask {
  task: TaskRecord;
  report: TransitionReport;
}

/** What `cancel` did: the task as it was, and whether its upstream job is now nobody's (to cancel upstream). */
export interface Cancellation {
  report: TransitionReport;
  task: TaskRecord;
  abandon_job: boolean;
  /** The follower that adopted the job, and by how much its reservation grew to the job's price. */
  heir: { task: TaskRecord; reserved_more: number } | null;
}

/**
 * An event in the transactional outbox: one task's terminal transition, to be sent to its `callback_url`.
 * Written in the transaction of the transition itself, so no finish is ever without its event.
 */
export interface OutboxEvent {
  /** `evt_…`: the `webhook-id`, the same for every attempt and redelivery of this event. */
  id: string;
  team_id: string;
  task_id: string;
  /** The task's terminal status the event announces. */
  task_status: Extract<TaskStatus, 'completed' | 'failed' | 'cancelled'>;
  /** The task's door at creation: which door's body is sent. */
  door: Door;
  url: string;
  created_at_ms: number;
  /** `pending` until delivered (`delivered`) or out of retries (`dead`: dead-lettered, kept and redeliverable). */
  state: 'pending' | 'delivered' | 'dead';
  /** Failed attempts since it was written or last redelivered: its position in the retry schedule. */
  failures: number;
  next_run_at_ms: number;
  delivered_at_ms: number | null;
}

/** An event claimed by one deliverer; `lease_token` fences `recordDelivery`. */
export interface ClaimedEvent extends OutboxEvent {
  lease_token: string;
}

/** One attempt to deliver an event. */
export interface DeliveryAttempt {
  event_id: string;
  /** 1 for the first attempt of the event, and so on across redeliveries. */
  n: number;
  started_at_ms: number;
  /** The receiver's HTTP status; null when none came (network error, timeout, refused address). */
  status_code: number | null;
  latency_ms: number;
  /** Why the attempt failed, in words safe to show the team (no secrets); null on success. */
  error: string | null;
}

/** What becomes of an event after an attempt: delivered, tried again at `next_run_at_ms`, or dead-lettered. */
export type DeliveryOutcome = { state: 'delivered' } | { state: 'pending'; next_run_at_ms: number } | { state: 'dead' };

/** A team's webhook signing secret, encrypted by the caller (the store never sees it in clear). */
export interface WebhookSecretRecord {
  id: string;
  team_id: string;
  /** The secret as the caller encrypted it. */
  secret_encrypted: string;
  created_at_ms: number;
  /** When it stops signing (the end of a rotation's grace period); null while it is the current one. */
  expires_at_ms: number | null;
}
/** Which tasks a claim may take by their provider: those of one provider, or those of none of the listed. */
export type ProviderScope = { only: string } | { except: readonly string[] };

/** A task claimed by one worker. `lease_token` fences every transition the worker makes. */
export interface ClaimedTask extends TaskRecord {
  lease_token: string;
}

export interface ListTasksQuery {
  owner_id: string;
  status?: TaskStatus;
  limit: number;
  /** `desc` (newest first, the default) or `asc`. */
  order?: 'asc' | 'desc';
  /** Return tasks strictly past this position in the list's order. */
  before?: { created_at_ms: number; id: string };
  /** Deleted tasks too (for the ledger's checks); false by default. */
  include_deleted?: boolean;
}

export type AttemptOutcome = 'running' | 'completed' | 'failed' | 'retried' | 'cancelled';

/** One submission of a task to one provider. */
export interface AttemptRecord {
  task_id: string;
  /** 1 for the first submission, and so on (the task's `attempt` is the latest). */
  n: number;
  provider_id: string;
  upstream_id: string | null;
  /** The price of the request on this provider, in whole micro-USD (1 USD = 1 000 000) and in credits. */
  micro_usd: number;
  credits: number;
  started_at_ms: number;
  ended_at_ms: number | null;
  outcome: AttemptOutcome;
  error_code: string | null;
  error_message: string | null;
}

/** Limits per team, and optionally tighter per key; null means no limit. Windows are UTC calendar days and months. */
export interface Quotas {
  credits_per_day: number | null;
  credits_per_month: number | null;
  /** Tasks submitted and not finished. */
  max_concurrent: number | null;
  /** Reads (GET and HEAD requests) per UTC minute. */
  reads_per_minute: number | null;
  /** Submissions and other changes (POST and DELETE requests: submit, cancel, estimate) per UTC minute. */
  submits_per_minute: number | null;
}
export const QUOTA_NAMES = ['credits_per_day', 'credits_per_month', 'max_concurrent', 'reads_per_minute', 'submits_per_minute'] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];

/** What a request does, for the per-minute limits: reads and submissions are counted and limited apart. */
export type RequestKind = 'read' | 'submit';
/** The per-minute quota of each kind of request. */
export const RATE_QUOTA = { read: 'reads_per_minute', submit: 'submits_per_minute' } as const satisfies Record<RequestKind, QuotaName>;

export interface TeamRecord extends Quotas {
  id: string;
  name: string;
  created_at_ms: number;
}

export interface ApiKeyRecord extends Quotas {
  id: string;
  team_id: string;
  name: string;
  key_hash: string;
  /** The first characters of the key, to recognize it in listings. */
  prefix: string;
  created_at_ms: number;
  expires_at_ms: number | null;
  revoked_at_ms: number | null;
  /** Models this key may use; null for all. */
  allowed_models: string[] | null;
}

/** A quota that would be exceeded; thrown by the transitions that charge one. */
export class QuotaExceededError extends Error {
  constructor(
    readonly scope: 'team' | 'key',
    readonly quota: QuotaName,
    readonly limit: number,
    readonly used: number,
  ) {
    super(`${scope} ${quota} of ${limit} would be exceeded (${used} used)`);
    this.name = 'QuotaExceededError';
  }
}

/**
 * The store's error vocabulary, whatever the backend: a write that would duplicate a unique value. `constraint` names
 * it as `table.column` (e.g. `teams.name`). The domain maps it to 409.
 */
export class UniqueViolation extends Error {
  constructor(readonly constraint: string) {
    super(`${constraint} must be unique`);
    this.name = 'UniqueViolation';
  }
}

/** The store cannot answer now (busy, locked, disk full or failing); trying again later may succeed. Answers 503. */
export class StoreUnavailable extends Error {
  constructor(readonly reason: string) {
    super(`the store is unavailable: ${reason}`);
    this.name = 'StoreUnavailable';
  }
}

/**
 * Why a transition did not happen: the task does not exist (`not_found`), its lease is no longer the caller's token
 * (`lease_lost`: it expired and another worker claimed it, or a transition released it), or it is not in a status
 * the transition starts from (`wrong_state`).
 */
export type RefusalReason = 'not_found' | 'lease_lost' | 'wrong_state';
/** A transition with a report that did not happen, and why. */
export interface Refused {
  refused: RefusalReason;
}
/** What a transition without a report did: `done`, or why it did not. */
export type TransitionOutcome = 'done' | RefusalReason;

export type LedgerKind = 'reserve' | 'settle' | 'release' | 'adjust';

/**
 * One movement of credits, append-only. `credits` is the signed change to what the team has committed in
 * the task's window: reserve +, release -, settle + (the release of the reservation is its own row), adjust ±.
 */
export interface LedgerEntry {
  id: number;
  team_id: string;
  key_id: string | null;
  task_id: string | null;
  attempt: number | null;
  kind: LedgerKind;
  credits: number;
  /** The UTC day (YYYY-MM-DD) of the task the movement belongs to. */
  day: string;
  model: string | null;
  provider_id: string | null;
  note: string | null;
  created_at_ms: number;
}

export interface UsageRow {
  day: string;
  model: string;
  /** Null for hits, which no provider served. */
  provider_id: string | null;
  tasks: number;
  credits: number;
}

/** Used quota in the current windows, per scope; for remaining = limit - used. */
export interface QuotaUsage {
  credits_day: number;
  credits_month: number;
  active_tasks: number;
  reads_minute: number;
  submits_minute: number;
}

/**
 * What the metrics read of the store at each scrape (`Store.metricsSnapshot`), as plain rows. Only unfinished tasks
 * and the teams are read (indexed), so a scrape costs the same with any number of finished tasks.
 */
export interface MetricsSnapshot {
  /** Unfinished tasks by status (followers included); a status without tasks is absent. */
  open_tasks: { status: Extract<TaskStatus, 'pending' | 'processing'>; tasks: number }[];
  /** Jobs accepted by each provider and not finished (processing tasks that own their job); absent when none. */
  jobs_in_flight: { provider_id: string; jobs: number }[];
  /** Every team, with its credit budgets and what its quota counters hold in the current UTC day and month. */
  teams: {
    id: string;
    name: string;
    /** Credits reserved by the team's unfinished tasks. */
    reserved_credits: number;
    credits_per_day: number | null;
    credits_per_month: number | null;
    /** Credits charged in the current windows (reservations included), as `quotaUsage` counts them. */
    credits_day_used: number;
    credits_month_used: number;
  }[];
}

export interface RequestAdmission {
  allowed: boolean;
  /** The per-minute quota the request was counted against. */
  quota: (typeof RATE_QUOTA)[RequestKind];
  /** The tightest limit of that quota (of the key and its team), and what is left of it; null without limit. */
  limit: number | null;
  remaining: number | null;
}

/**
 * A circuit breaker's state as the replicas share it (table `provider_health`, one row per provider and model):
 * the last persisted transition of the in-process breaker (src/routing/health.ts), and the half-open probe's lease.
 */
export interface BreakerRecord {
  provider: string;
  model: string;
  /** Only `closed` and `open` are persisted: an open breaker past `until_ms` reads half-open everywhere. */
  state: 'closed' | 'open';
  /** When the transition happened (the writer's clock, ms since the epoch): a row only moves to a newer one. */
  since_ms: number;
  /** When an open breaker lets its probe through; null when closed. */
  until_ms: number | null;
  reason: string | null;
  /** What opened it: failed submits (`submit`) or failed accepted jobs (`job`). */
  opened_by: 'submit' | 'job';
  /** `until_ms` is the provider's Retry-After: a passing health check does not end it sooner. */
  pinned: boolean;
  /** Who holds the half-open probe across all replicas (a task id), until `probe_until_ms`; null when nobody. */
  probe_holder: string | null;
  probe_until_ms: number | null;
  /** Bumped by every recorded transition: a replica applies a row whose version it has not seen yet. */
  version: number;
}

/** A breaker transition to record (the row without its lease and version). */
export type BreakerTransition = Omit<BreakerRecord, 'probe_holder' | 'probe_until_ms' | 'version'>;

export interface Store {
  // --- teams and API keys (only hashes of keys are stored) ---
  /** Throws when the name is taken. */
  createTeam(team: TeamRecord): Promise<TeamRecord>;
  getTeam(id: string): Promise<TeamRecord | undefined>;
  findTeamByName(name: string): Promise<TeamRecord | undefined>;
  listTeams(): Promise<TeamRecord[]>;
  updateTeam(id: string, patch: Partial<Omit<TeamRecord, 'id' | 'created_at_ms'>>): Promise<TeamRecord | undefined>;
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  /** The key with this hash and its team, in one indexed read (the request path's authentication). */
  findCaller(keyHash: string): Promise<{ key: ApiKeyRecord; team: TeamRecord } | undefined>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(teamId: string): Promise<ApiKeyRecord[]>;
  updateApiKey(id: string, patch: Partial<Pick<ApiKeyRecord, 'name' | 'expires_at_ms' | 'allowed_models' | 'revoked_at_ms' | keyof Quotas>>): Promise<ApiKeyRecord | undefined>;
  countApiKeys(): Promise<number>;

  // --- quotas and ledger ---
  /**
   * Count one request of this kind against the per-minute limits of the key and its team (limits from the records
   * given); a refused request counts against neither. Counted in this process's memory, not in the database: see
   * src/store/request-rates.ts for the bound with several replicas.
   */
  admitRequest(key: ApiKeyRecord, team: TeamRecord, kind: RequestKind, nowMs: number): Promise<RequestAdmission>;
  quotaUsage(scope: 'team' | 'key', id: string, nowMs: number): Promise<QuotaUsage>;
  listLedger(teamId: string): Promise<LedgerEntry[]>;
  /** An operator's correction (a refund is negative), counted in today's windows. */
  adjustCredits(teamId: string, credits: number, note: string, nowMs: number): Promise<LedgerEntry>;
  /** Settled credits per day, model and provider, for days in [fromDay, toDay]. */
  usageByDay(teamId: string, fromDay: string, toDay: string): Promise<UsageRow[]>;
  /** Tasks not finished, with their reservations. */
  listOpenTasks(teamId: string): Promise<TaskRecord[]>;
  /**
   * Rebuild the quota counters from the ledger and the tasks; returns how many counters were wrong.
   * The counters are a cache of the ledger for atomic checks; this proves (or restores) that they agree.
   */
  recomputeUsage(): Promise<number>;

  // --- tasks: reads ---
  /**
   * Create a pending task, charging its team's and key's quotas atomically: one more running task, and
   * `credits_reserved` reserved (a ledger row). Throws QuotaExceededError, creating nothing, when a
   * quota would be exceeded.
   *
   * With a lookup and a `cache_key`, in the same transaction (so that identical concurrent requests make
   * one generation): a fresh stored result with that key makes the task a completed `hit`, charged
   * `hit_credits` and not counted as running; else a running leader with that key makes it a `coalesced`
   * follower that reserves `hit_credits`, mirrors the leader's status and finishes with it.
   *
   * With `idempotency`, first in the same transaction: a key of the owner recorded since `since_ms` for the same
   * `request_hash` returns that task and charges nothing; for another hash, or once that task is deleted, it throws
   * IdempotencyConflictError (`another_request`, `original_deleted`), creating nothing: a retry never pays twice. Otherwise the key is recorded for the new task.
   */
  createTask(task: NewTask, lookup?: CacheLookup): Promise<CreatedTask>;
  /**
   * How `createTask` would serve a request with this cache key now, changing nothing: `hit` (a fresh stored result
   * exists, completed at or after `fresh_since_ms`), `coalesced` (an identical task is running), else null.
   */
  cacheOutlook(cacheKey: string, freshSinceMs: number): Promise<'hit' | 'coalesced' | null>;
  /** Any task, deleted or not (the workers finish deleted tasks too); readers check `deleted_at_ms`. */
  getTask(id: string): Promise<TaskRecord | undefined>;
  /** The owner's tasks that are not deleted (unless asked). */
  listTasks(query: ListTasksQuery): Promise<TaskRecord[]>;
  /**
   * Hides a finished task of this owner from reads and lists (a soft delete; the ledger is untouched).
   * Returns the task, and whether its stored video is now nobody's (no other live task serves it), or
   * undefined when the task is not the owner's, not finished or already deleted.
   */
  deleteTask(id: string, ownerId: string, nowMs: number): Promise<{ task: TaskRecord; asset_orphaned: boolean } | undefined>;

  // --- tasks: leases ---
  /**
   * Lease up to `limit` due, unleased (or lease-expired) tasks of a phase, oldest due first; with `providers`,
   * only the tasks whose `provider_id` is `only`, or is none of `except` (or null). An index serves each form,
   * so a claim costs the same with any number of finished tasks in the store.
   */
  claimDue(phase: WorkPhase, limit: number, leaseMs: number, nowMs: number, providers?: ProviderScope): Promise<ClaimedTask[]>;
  /**
   * Extend every lease of `leases` still held under its token until `leaseUntilMs`, in one statement (a
   * heartbeat renews all of a loop's tasks at once). Returns how many were renewed: a lease lost (claimed by
   * another worker after it expired, or released by a transition) is not renewed and not counted.
   */
  renewLeases(leases: readonly { id: string; lease_token: string }[], leaseUntilMs: number): Promise<number>;
  /**
   * The running task whose job is `upstreamId` at `providerId` is due at `nowMs` (its next poll brought forward,
   * never put back), e.g. because the provider said by webhook that the job finished. Returns the task's id, or
   * undefined when no processing task has that job.
   */
  pollJobNow(providerId: string, upstreamId: string, nowMs: number): Promise<string | undefined>;
  /** Give the task back, to be claimed again at `nextRunAtMs` (a status change also releases it). */
  releaseLease(id: string, leaseToken: string, nextRunAtMs: number, nowMs: number): Promise<TransitionOutcome>;

  // --- tasks: transitions (each says why when it did not happen: RefusalReason) ---
  /**
   * pending -> pending: a new attempt is about to be submitted to `providerId` at `micro_usd` (`credits`).
   * Counts the attempt and records it (outcome `running`), ending a previous attempt left running.
   * When `credits` is more than is reserved, the reservation grows first; QuotaExceededError when the
   * quotas cannot cover it (nothing changes then). `provider_full` when the provider already runs
   * `max_concurrent` attempts. The other transitions end the running attempt: completed, failed,
   * retried (requeue) or cancelled. A RefusalReason when the task is gone, leased to another, or not pending.
   */
  startAttempt(
    id: string,
    leaseToken: string,
    providerId: string,
    price: { micro_usd: number; credits: number; max_concurrent?: number },
    nowMs: number,
  ): Promise<'started' | 'provider_full' | RefusalReason>;
  // A leader's transitions carry its followers along in the same transaction: processing, progress,
  // back to pending on a requeue, completed with its video (settled at their reservation) or failed.

  /** pending -> processing; the running attempt gets its upstream id. */
  markSubmitted(id: string, leaseToken: string, upstreamId: string, nowMs: number): Promise<TransitionOutcome>;
  /** processing -> processing, with new progress; releases the lease until `nextRunAtMs`. */
  recordProgress(id: string, leaseToken: string, progress: number, nextRunAtMs: number, nowMs: number): Promise<TransitionOutcome>;
  /**
   * processing -> completed; settles the running attempt's credits and releases the reservation.
   * Returns the report (the task first in `finished`, then the followers that completed with it, settled at
   * their reservations; an outbox event for each with a callback URL), or why it did not happen.
   */
  markCompleted(id: string, leaseToken: string, assetKey: string, nowMs: number): Promise<TransitionReport | Refused>;
  /**
   * pending|processing -> failed; releases the reservation. Returns the report (the task first in `finished`,
   * then the followers that failed with it; their events), or why it did not happen. With `hand_over`, the failure is the task's
   * own (its quota), not the generation's: its followers carry on under an heir, as when a leader is cancelled,
   * and none fails with it (the heir's grown reservation is in the report).
   */
  markFailed(
    id: string,
    leaseToken: string,
    error: { code: string; message: string },
    nowMs: number,
    options?: { hand_over?: boolean },
  ): Promise<TransitionReport | Refused>;
  /**
   * pending|processing -> pending, to be submitted again (a new attempt) at `nextRunAtMs`. Clears the
   * provider: a pending task with a provider is an attempt started but not confirmed (see startAttempt).
   */
  requeue(id: string, leaseToken: string, error: { code: string; message: string }, nextRunAtMs: number, nowMs: number): Promise<TransitionOutcome>;
  /**
   * pending|processing -> cancelled, by the owner; leased or not; releases the reservation. A leader with
   * followers hands its generation to the oldest follower, which adopts the upstream job (reserving its
   * price) or, when the job is not submitted yet or its quota cannot cover it, is queued to generate anew.
   * The report holds the cancelled task (its event) and the released and grown reservations.
   */
  cancel(id: string, ownerId: string, nowMs: number): Promise<Cancellation | undefined>;

  // --- attempts and load ---
  /** The attempts of these tasks, by task and then in order. */
  listAttempts(taskIds: readonly string[]): Promise<AttemptRecord[]>;
  /** Tasks with a running attempt (submitting or processing), per provider. */
  countActiveByProvider(): Promise<Map<string, number>>;

  // --- the webhook outbox (events are written by the transitions above) ---
  /** Lease up to `limit` pending events due at `nowMs`, oldest due first. */
  claimDueEvents(limit: number, leaseMs: number, nowMs: number): Promise<ClaimedEvent[]>;
  renewEventLease(id: string, leaseToken: string, leaseUntilMs: number): Promise<boolean>;
  /**
   * Record one attempt (numbered after the event's earlier ones) and its outcome, releasing the lease; false
   * (nothing recorded) when the lease is no longer this token's.
   */
  recordDelivery(id: string, leaseToken: string, attempt: Omit<DeliveryAttempt, 'event_id' | 'n'>, outcome: DeliveryOutcome): Promise<boolean>;
  /** The events of a task, oldest first. */
  listTaskEvents(taskId: string): Promise<OutboxEvent[]>;
  /** The attempts of these events, by event and then in order. */
  listDeliveryAttempts(eventIds: readonly string[]): Promise<DeliveryAttempt[]>;
  /** A team's dead-lettered events, newest first. */
  listDeadEvents(teamId: string, limit: number): Promise<OutboxEvent[]>;
  /**
   * Send the task's events again: each becomes pending, due at `nowMs`, at the start of the retry schedule, with its
   * id unchanged (a delivered one too: a redelivery is asked for; its `delivered_at_ms` is cleared). An event being
   * sent keeps its lease: its attempt is recorded, and it is sent once more after it. Returns them; empty when the
   * task has none.
   */
  redeliverTaskEvents(taskId: string, nowMs: number): Promise<OutboxEvent[]>;
  /** Events waiting for delivery (`pending`) and dead-lettered (`dead`), over all teams. */
  outboxCounts(): Promise<{ pending: number; dead: number }>;

  // --- metrics ---
  /** The state the scrape-time gauges show (open tasks, jobs in flight, teams and their budgets) at `nowMs`. */
  metricsSnapshot(nowMs: number): Promise<MetricsSnapshot>;

  // --- webhook signing secrets (stored as the caller encrypted them) ---
  /**
   * Make `secret` the team's current one. `keep` (a rotation's grace: the secret that was current) keeps signing
   * until its `expires_at_ms` (or its own earlier end); every other secret of the team stops at
   * `secret.created_at_ms`, so that at most two sign.
   */
  putWebhookSecret(secret: Omit<WebhookSecretRecord, 'expires_at_ms'>, keep?: { id: string; expires_at_ms: number }): Promise<void>;
  /**
   * Make `secret` the team's first: only when none signs at its `created_at_ms` (checked and inserted under a lock of
   * the team's secrets, so that two processes signing a team's first event at once make one). False when one signs.
   */
  putFirstWebhookSecret(secret: Omit<WebhookSecretRecord, 'expires_at_ms'>): Promise<boolean>;
  /** The team's secrets that sign at `nowMs`: the current one and those in their grace, newest first. */
  signingSecrets(teamId: string, nowMs: number): Promise<WebhookSecretRecord[]>;

  // --- circuit breakers shared by the replicas ---
  /**
   * Record a breaker's transition: upserts its row unless the stored transition is newer (a greater `since_ms`),
   * bumps its version and ends any probe lease. Returns the row's new version, or undefined when the stored one won.
   */
  recordBreaker(transition: BreakerTransition): Promise<number | undefined>;
  /** Every breaker row, by provider and model (a few per provider: cheap to read every poll interval). */
  listBreakers(): Promise<BreakerRecord[]>;
  /**
   * Take the half-open probe of a provider's model for `holder` until `untilMs`, atomically (one conditional
   * upsert): granted when nobody holds it, its lease expired by `nowMs`, or `holder` already holds it, and the row
   * is not open with `until_ms` after `nowMs`. So of all the replicas, exactly one probes. A pair without a row gets
   * one (closed, version 0). True when granted.
   */
  acquireProbe(provider: string, model: string, holder: string, untilMs: number, nowMs: number): Promise<boolean>;
  /** Give back the probe lease `holder` holds (its attempt did not start); false when it held none. */
  releaseProbe(provider: string, model: string, holder: string): Promise<boolean>;

  // --- retention ---
  /** Completed tasks whose own video was stored before `beforeMs` and is not yet expired. */
  listAssetsStoredBefore(beforeMs: number, limit: number): Promise<TaskRecord[]>;
  /** The video is deleted: every task serving it (the original, its hits and followers) says so. */
  markAssetExpired(assetKey: string): Promise<void>;

  close(): Promise<void>;
}
