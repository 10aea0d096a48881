// Circuit breakers, one per provider and model (errors are often model-specific: one model's capacity
// runs out while the others serve). They count JOB outcomes, not calls: an attempt ends once, as a job that
// completed (`jobSucceeded`) or one that failed for a provider-side reason (`jobFailed`: the submit failed,
// the job failed, was lost, timed out or delivered a bad video). An accepted submit proves nothing by itself.
// Request-side failures (content policy, invalid parameters) are never reported here.
//
// closed --(N consecutive failed jobs, or error ratio over the window with enough jobs)--> open
// open --(cool-down over, or Retry-After over; or a passing active check after a submit-side outage)--> half_open
// half_open: exactly one probe task, taken atomically by `tryAcquire`
//   --probe's job completes (or, when the breaker opened on submit failures, its job is accepted and progressing)--> closed
//   --probe fails--> open again, with a doubled cool-down (capped)
//
// Active checks (src/core/health-checker.ts) report through `checkSucceeded` / `checkFailed`: a failing check
// keeps an open breaker from letting a customer's task probe; a passing one ends a submit-side outage at once.
//
// Replicas share their breakers through the store (src/core/shared-health.ts): `onTransition` reports each change
// of a breaker's closed/open state or cool-down, `adopt` applies one learnt from another replica.

export interface BreakerConfig {
  consecutive_failures: number;
  error_ratio: number;
  window_ms: number;
  min_calls: number;
  cooldown_ms: number;
  max_cooldown_ms: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

/**
 * Where a job failed. `submit`: the create call failed (5xx, 429, timeout, reset, malformed answer), so no job
 * exists and a passing active check or an accepted submit shows recovery. `job`: the provider accepted the job
 * and then failed it (failed status, lost, past the deadline, unusable video): only a completed job shows recovery.
 */
export type FailureStage = 'submit' | 'job';

export interface JobFailure {
  /** A short code for the reason (`server_error`, `http_429`, `timeout`, `output_mismatch`, ...). */
  reason: string;
  /** Default `job`. */
  stage?: FailureStage;
  /** The provider's Retry-After: an open breaker stays open exactly this long (RFC 9110 §10.2.3). */
  retry_after_ms?: number;
}

export interface BreakerSnapshot {
  provider: string;
  model: string;
  /** As of now: an open breaker whose `until_ms` has passed reads `half_open` (its probe may go). */
  state: BreakerState;
  reason: string | null;
  since_ms: number;
  /** When an open breaker lets its next probe through; null unless open. */
  until_ms: number | null;
  /** Job outcomes in the window. */
  calls: number;
  error_rate: number;
  /** Mean time of the completed jobs in the window. */
  latency_ms: number | null;
}

/**
 * A breaker's state as replicas share it: closed, or open until `until_ms` (half_open is not shared: an open breaker
 * past its `until_ms` reads half_open everywhere, and the store leases its probe).
 */
export interface SharedBreakerState {
  provider: string;
  model: string;
  state: 'closed' | 'open';
  reason: string | null;
  since_ms: number;
  until_ms: number | null;
  opened_by: FailureStage;
  /** `until_ms` is the provider's Retry-After (a passing check does not shorten it). */
  pinned: boolean;
}

/** Told of the breakers' changes made here (never of those adopted). */
export interface HealthHooks {
  /** A breaker closed or opened, or an open one's `until_ms` moved. */
  onTransition?(state: SharedBreakerState): void;
  /** The holder of a half-open probe gave it back (`release`) without an outcome. */
  onProbeReleased?(provider: string, model: string, holder: string): void;
}

type Outcome = { ok: boolean; at_ms: number; latency_ms?: number };

/**
 * After k probes failed although the checks passed (a check cannot see every fault: creates that hang while reads
 * answer), a passing check ends the cool-down no sooner than this times 2^(k-1) after the reopening.
 */
const CHECKED_PROBE_GAP_MS = 1000;

class Breaker {
  private state_: BreakerState = 'closed';
  reason: string | null = null;
  private since_ms: number;
  private until_ms: number | null = null;
  /** What opened the breaker, and whether the provider fixed its length (Retry-After). */
  private opened_by: FailureStage = 'job';
  private pinned = false;
  /** Probes failed since the breaker was last closed. */
  private failed_probes = 0;
  private consecutive = 0;
  private cooldown_ms: number;
  private probe_taken_ms: number | null = null;
  private probe_holder: string | null = null;
  /** Job outcomes in the window, oldest first, from index `head` on; with running sums so that stats are O(1). */
  private outcomes: Outcome[] = [];
  private head = 0;
  private failures = 0;
  private latency_sum_ms = 0;
  private latencies = 0;

  constructor(private readonly config: BreakerConfig, now_ms: number) {
    this.since_ms = now_ms;
    this.cooldown_ms = config.cooldown_ms;
  }

  /** Drops the outcomes older than the window, each once (amortized O(1) per outcome). */
  private prune(now_ms: number) {
    const from = now_ms - this.config.window_ms;
    while (this.head < this.outcomes.length && this.outcomes[this.head]!.at_ms < from) this.count(this.outcomes[this.head++]!, -1);
    // Compact once the dropped part is the larger half.
    if (this.head > 1024 && this.head * 2 > this.outcomes.length) [this.outcomes, this.head] = [this.outcomes.slice(this.head), 0];
  }

  private count(o: Outcome, sign: 1 | -1) {
    if (!o.ok) this.failures += sign;
    if (o.latency_ms !== undefined) [this.latency_sum_ms, this.latencies] = [this.latency_sum_ms + sign * o.latency_ms, this.latencies + sign];
  }

  stats(now_ms: number) {
    this.prune(now_ms);
    const calls = this.outcomes.length - this.head;
    return {
      calls,
      error_rate: calls ? this.failures / calls : 0,
      latency_ms: this.latencies ? this.latency_sum_ms / this.latencies : null,
    };
  }

  /** The state as of now, with the open-past-its-until case read as half_open (nothing stale is shown). */
  view(now_ms: number): { state: BreakerState; since_ms: number; until_ms: number | null } {
    if (this.state_ === 'open' && now_ms >= this.until_ms!) return { state: 'half_open', since_ms: this.until_ms!, until_ms: null };
    return { state: this.state_, since_ms: this.since_ms, until_ms: this.until_ms };
  }

  /** A probe nobody reported on (its task was cancelled, its worker died) is given up after the longest cool-down. */
  private probeFree(now_ms: number): boolean {
    return this.probe_taken_ms === null || now_ms - this.probe_taken_ms > this.config.max_cooldown_ms;
  }

  allows(now_ms: number): boolean {
    const { state } = this.view(now_ms);
    return state === 'closed' || (state === 'half_open' && this.probeFree(now_ms));
  }

  tryAcquire(now_ms: number, holder: string): boolean {
    if (!this.allows(now_ms)) return false;
    if (this.state_ === 'open') this.transition('half_open', this.reason, this.until_ms!);
    if (this.state_ === 'half_open') [this.probe_taken_ms, this.probe_holder] = [now_ms, holder];
    return true;
  }

  /** True when `holder` held the probe and gave it back. */
  release(holder: string): boolean {
    if (this.state_ !== 'half_open' || this.probe_holder !== holder) return false;
    this.probe_taken_ms = this.probe_holder = null;
    return true;
  }

  holdsProbe(holder: string): boolean {
    return this.state_ === 'half_open' && this.probe_holder === holder;
  }

  /** The state as shared (the raw state: half_open is the one that is not). */
  shared(): { state: BreakerState; reason: string | null; since_ms: number; until_ms: number | null; opened_by: FailureStage; pinned: boolean } {
    return { state: this.state_, reason: this.reason, since_ms: this.since_ms, until_ms: this.until_ms, opened_by: this.opened_by, pinned: this.pinned };
  }

  /** Take on a state another replica recorded: an open breaker opens here until the same time; a closed one closes. */
  adopt(s: SharedBreakerState) {
    const mine = this.shared();
    if (mine.state === s.state && mine.since_ms === s.since_ms && mine.until_ms === s.until_ms) return;
    this.transition(s.state, s.reason, s.since_ms);
    this.opened_by = s.opened_by;
    this.pinned = s.pinned;
    if (s.state === 'open') this.until_ms = s.until_ms;
    else [this.cooldown_ms, this.failed_probes, this.consecutive] = [this.config.cooldown_ms, 0, 0];
  }

  jobSucceeded(now_ms: number, latency_ms?: number) {
    this.push({ ok: true, at_ms: now_ms, latency_ms }, now_ms);
    this.consecutive = 0;
    if (this.state_ === 'half_open') this.close(now_ms);
  }

  jobProgressing(now_ms: number) {
    if (this.state_ === 'half_open' && this.opened_by === 'submit') this.close(now_ms);
  }

  jobFailed(now_ms: number, failure: JobFailure) {
    this.push({ ok: false, at_ms: now_ms }, now_ms);
    this.consecutive++;
    const stage = failure.stage ?? 'job';
    const { reason, retry_after_ms } = failure;
    if (this.state_ === 'half_open') {
      this.cooldown_ms = Math.min(this.cooldown_ms * 2, this.config.max_cooldown_ms);
      this.failed_probes++;
      return this.open(`probe failed: ${reason}`, stage, now_ms, retry_after_ms);
    }
    if (this.state_ === 'open') return;
    const { calls, error_rate } = this.stats(now_ms);
    if (this.consecutive >= this.config.consecutive_failures) {
      return this.open(`${this.consecutive} consecutive failures, last: ${reason}`, stage, now_ms, retry_after_ms);
    }
    if (calls >= this.config.min_calls && error_rate >= this.config.error_ratio) {
      return this.open(`error rate ${Math.round(error_rate * 100)}% over ${calls} calls, last: ${reason}`, stage, now_ms, retry_after_ms);
    }
    // A Retry-After is the provider saying outright that it is full: believe it at once.
    if (retry_after_ms !== undefined) return this.open(`asked to retry later: ${reason}`, stage, now_ms, retry_after_ms);
  }

  checkSucceeded(now_ms: number) {
    // Only a submit-side outage is disproved by a passing check; one the provider timed itself keeps its time.
    if (this.state_ !== 'open' || this.opened_by !== 'submit' || this.pinned) return;
    const gap_ms = this.failed_probes === 0 ? 0 : CHECKED_PROBE_GAP_MS * 2 ** (this.failed_probes - 1);
    this.until_ms = Math.min(this.until_ms!, Math.max(now_ms, this.since_ms + gap_ms));
  }

  checkFailed(now_ms: number, hold_ms: number) {
    const { state } = this.view(now_ms);
    if (this.state_ === 'open' || (state === 'half_open' && this.probeFree(now_ms))) {
      if (this.state_ !== 'open') this.transition('open', this.reason, now_ms);
      this.until_ms = Math.max(this.until_ms ?? 0, now_ms + hold_ms);
    }
  }

  private push(outcome: Outcome, now_ms: number) {
    this.outcomes.push(outcome);
    this.count(outcome, 1);
    this.prune(now_ms);
  }

  private close(now_ms: number) {
    this.cooldown_ms = this.config.cooldown_ms;
    this.failed_probes = 0;
    this.transition('closed', null, now_ms);
  }

  private open(reason: string, stage: FailureStage, now_ms: number, retry_after_ms?: number) {
    this.transition('open', reason, now_ms);
    this.opened_by = stage;
    this.pinned = retry_after_ms !== undefined;
    this.until_ms = now_ms + (retry_after_ms ?? this.cooldown_ms);
  }

  private transition(state: BreakerState, reason: string | null, now_ms: number) {
    this.state_ = state;
    this.reason = reason;
    this.since_ms = now_ms;
    this.probe_taken_ms = this.probe_holder = null;
    if (state !== 'open') this.until_ms = null;
  }
}

/**
 * The breakers of every provider and model. Times come from the injected clock (`now`, ms since the epoch).
 * The worker reports each attempt's end exactly once: `jobSucceeded` or `jobFailed`; an attempt that never
 * started after `tryAcquire` gives its probe back with `release`.
 */
export interface Health {
  /** May a task go to this provider now? Read-only (quotes, estimates): it takes nothing. */
  allows(provider: string, model: string): boolean;
  /**
   * Take the right to send one task now: always granted while closed; in half_open (or open past its cool-down)
   * granted to exactly one caller, the probe, until that probe's outcome is reported or it is released.
   * `holder`: who asks (a task id), so that only the probe's holder can give it back.
   */
  tryAcquire(provider: string, model: string, holder: string): boolean;
  /**
   * Give back the probe `holder` took without an outcome for the provider: its attempt did not start (quota, lost
   * lease, provider full) or ended for the request's own fault. A no-op for anyone else.
   */
  release(provider: string, model: string, holder: string): void;
  /** The job completed and its video was accepted; `latency_ms` from submit to completion. */
  jobSucceeded(provider: string, model: string, latency_ms?: number): void;
  /**
   * The provider accepted the job and reports it queued or running (its create answer, or a poll): closes a probe
   * after a submit-side outage, and counts for nothing otherwise.
   */
  jobProgressing(provider: string, model: string): void;
  /** The attempt failed for a provider-side reason (never for a request-side one). */
  jobFailed(provider: string, model: string, failure: JobFailure): void;
  /** An active health check of the provider passed (every model of it). */
  checkSucceeded(provider: string): void;
  /** An active health check failed: an open breaker lets no task probe for at least `hold_ms` more. */
  checkFailed(provider: string, hold_ms: number): void;
  snapshot(provider: string, model: string): BreakerSnapshot;
  /** Providers with a breaker that is not closed (as of now), for the active checks. */
  unhealthyProviders(): Set<string>;
  /** The state (as of now) of every breaker that exists, read-only (creates none): a pair without one is closed. */
  breakerStates(): { provider: string; model: string; state: BreakerState }[];
  /** Does `holder` hold this breaker's half-open probe (taken by `tryAcquire`, not yet reported or released)? */
  holdsProbe(provider: string, model: string, holder: string): boolean;
  /** Apply a state learnt from another replica (a no-op when it is already this one's); tells no hook. */
  adopt(state: SharedBreakerState): void;
}

export function createHealth(config: BreakerConfig, now: () => number = Date.now, hooks: HealthHooks = {}): Health {
  const breakers = new Map<string, Map<string, Breaker>>();
  const get = (provider: string, model: string) => {
    let byModel = breakers.get(provider);
    if (!byModel) breakers.set(provider, (byModel = new Map()));
    let b = byModel.get(model);
    if (!b) byModel.set(model, (b = new Breaker(config, now())));
    return b;
  };
  const each = (provider: string) => breakers.get(provider)?.entries() ?? [];
  /** Runs a change of the breaker and tells `onTransition` when its shared state moved (half_open is not shared). */
  const change = (p: string, m: string, b: Breaker, op: (b: Breaker) => void) => {
    const before = b.shared();
    op(b);
    const after = b.shared();
    if (after.state === 'half_open' || !hooks.onTransition) return;
    if (after.state !== before.state || after.since_ms !== before.since_ms || after.until_ms !== before.until_ms) {
      hooks.onTransition({ provider: p, model: m, ...after, state: after.state });
    }
  };
  return {
    allows: (p, m) => get(p, m).allows(now()),
    tryAcquire(p, m, holder) {
      let granted = false;
      change(p, m, get(p, m), (b) => (granted = b.tryAcquire(now(), holder)));
      return granted;
    },
    release(p, m, holder) {
      if (get(p, m).release(holder)) hooks.onProbeReleased?.(p, m, holder);
    },
    jobSucceeded: (p, m, latency_ms) => change(p, m, get(p, m), (b) => b.jobSucceeded(now(), latency_ms)),
    jobProgressing: (p, m) => change(p, m, get(p, m), (b) => b.jobProgressing(now())),
    jobFailed: (p, m, failure) => change(p, m, get(p, m), (b) => b.jobFailed(now(), failure)),
    checkSucceeded(provider) {
      for (const [m, b] of each(provider)) change(provider, m, b, (b) => b.checkSucceeded(now()));
    },
    checkFailed(provider, hold_ms) {
      for (const [m, b] of each(provider)) change(provider, m, b, (b) => b.checkFailed(now(), hold_ms));
    },
    holdsProbe: (p, m, holder) => get(p, m).holdsProbe(holder),
    adopt: (s) => get(s.provider, s.model).adopt(s),
    snapshot(provider, model) {
      const b = get(provider, model);
      return { provider, model, reason: b.reason, ...b.view(now()), ...b.stats(now()) };
    },
    unhealthyProviders() {
      const out = new Set<string>();
      for (const [provider, byModel] of breakers) for (const b of byModel.values()) if (b.view(now()).state !== 'closed') out.add(provider);
      return out;
    },
    breakerStates() {
      const out: { provider: string; model: string; state: BreakerState }[] = [];
      for (const [provider, byModel] of breakers) for (const [model, b] of byModel) out.push({ provider, model, state: b.view(now()).state });
      return out;
    },
  };
}
