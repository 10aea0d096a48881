// Circuit breakers, one per provider and model (errors are often model-specific: one model's capacity
// runs out while the others serve). Only failures where the provider is at fault are counted.
//
// closed --(N consecutive failures, or error ratio over the window with enough calls)--> open
// open --(cool-down over; longer when the provider sent Retry-After)--> half_open: one probe goes through
// half_open --probe succeeds--> closed;  --probe fails--> open again, with a doubled cool-down

export interface BreakerConfig {
  consecutive_failures: number;
  error_ratio: number;
  window_ms: number;
  min_calls: number;
  cooldown_ms: number;
  max_cooldown_ms: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerSnapshot {
  provider: string;
  model: string;
  state: BreakerState;
  reason: string | null;
  since_ms: number;
  /** When an open breaker lets its next probe through. */
  until_ms: number | null;
  calls: number;
  error_rate: number;
  latency_ms: number | null;
}

type Outcome = { ok: boolean; at_ms: number; latency_ms?: number };

class Breaker {
  state: BreakerState = 'closed';
  reason: string | null = null;
  since_ms: number;
  until_ms: number | null = null;
  private consecutive = 0;
  private cooldown_ms: number;
  private probe_started_ms: number | null = null;
  private outcomes: Outcome[] = [];

  constructor(private readonly config: BreakerConfig, now_ms: number) {
    this.since_ms = now_ms;
    this.cooldown_ms = config.cooldown_ms;
  }

  private prune(now_ms: number) {
    const from = now_ms - this.config.window_ms;
    while (this.outcomes.length && this.outcomes[0]!.at_ms < from) this.outcomes.shift();
  }

  stats(now_ms: number) {
    this.prune(now_ms);
    const calls = this.outcomes.length;
    const failures = this.outcomes.filter((o) => !o.ok).length;
    const latencies = this.outcomes.flatMap((o) => (o.latency_ms === undefined ? [] : [o.latency_ms]));
    return {
      calls,
      error_rate: calls ? failures / calls : 0,
      latency_ms: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null,
    };
  }

  /** May a request go to this provider now? In half_open, only one probe at a time. */
  allows(now_ms: number): boolean {
    if (this.state === 'closed') return true;
    const probeStale = this.probe_started_ms !== null && now_ms - this.probe_started_ms > this.cooldown_ms;
    if (this.state === 'half_open') return this.probe_started_ms === null || probeStale;
    return now_ms >= (this.until_ms ?? 0);
  }

  /** The caller is sending a request it got `allows` for. */
  begin(now_ms: number) {
    if (this.state === 'open' && now_ms >= (this.until_ms ?? 0)) this.transition('half_open', this.reason, now_ms);
    if (this.state === 'half_open') this.probe_started_ms = now_ms;
  }

  record(ok: boolean, now_ms: number, detail: { latency_ms?: number; reason?: string; retry_after_ms?: number }) {
    this.outcomes.push({ ok, at_ms: now_ms, latency_ms: detail.latency_ms });
    this.prune(now_ms);
    if (ok) {
      this.consecutive = 0;
      // Only the probe's success closes an open breaker; a call sent before it opened proves little.
      if (this.state === 'half_open') {
        this.cooldown_ms = this.config.cooldown_ms;
        this.transition('closed', null, now_ms);
      }
      return;
    }
    this.consecutive++;
    const { calls, error_rate } = this.stats(now_ms);
    const reason = detail.reason ?? 'failure';
    if (this.state === 'half_open') {
      this.cooldown_ms = Math.min(this.cooldown_ms * 2, this.config.max_cooldown_ms);
      return this.open(`probe failed: ${reason}`, now_ms, detail.retry_after_ms);
    }
    if (this.state === 'open') return;
    if (this.consecutive >= this.config.consecutive_failures) {
      return this.open(`${this.consecutive} consecutive failures, last: ${reason}`, now_ms, detail.retry_after_ms);
    }
    if (calls >= this.config.min_calls && error_rate >= this.config.error_ratio) {
      return this.open(`error rate ${Math.round(error_rate * 100)}% over ${calls} calls, last: ${reason}`, now_ms, detail.retry_after_ms);
    }
    // A Retry-After is the provider saying outright that it is full: believe it at once.
    if (detail.retry_after_ms !== undefined) return this.open(`asked to retry later: ${reason}`, now_ms, detail.retry_after_ms);
  }

  private open(reason: string, now_ms: number, retry_after_ms = 0) {
    this.transition('open', reason, now_ms);
    this.until_ms = now_ms + Math.max(this.cooldown_ms, retry_after_ms);
  }

  private transition(state: BreakerState, reason: string | null, now_ms: number) {
    this.state = state;
    this.reason = reason;
    this.since_ms = now_ms;
    this.probe_started_ms = null;
    if (state !== 'open') this.until_ms = null;
  }
}

export interface Health {
  allows(provider: string, model: string): boolean;
  /** Mark a request as sent (consumes the half-open probe). */
  begin(provider: string, model: string): void;
  success(provider: string, model: string, latency_ms?: number): void;
  failure(provider: string, model: string, detail: { reason: string; latency_ms?: number; retry_after_ms?: number }): void;
  snapshot(provider: string, model: string): BreakerSnapshot;
}

export function createHealth(config: BreakerConfig, now: () => number = Date.now): Health {
  const breakers = new Map<string, Breaker>();
  const get = (provider: string, model: string) => {
    const key = `${provider}\u0000${model}`;
    let b = breakers.get(key);
    if (!b) breakers.set(key, (b = new Breaker(config, now())));
    return b;
  };
  return {
    allows: (p, m) => get(p, m).allows(now()),
    begin: (p, m) => get(p, m).begin(now()),
    success: (p, m, latency_ms) => get(p, m).record(true, now(), { latency_ms }),
    failure: (p, m, detail) => get(p, m).record(false, now(), detail),
    snapshot(provider, model) {
      const b = get(provider, model);
      return { provider, model, state: b.state, reason: b.reason, since_ms: b.since_ms, until_ms: b.until_ms, ...b.stats(now()) };
    },
  };
}
