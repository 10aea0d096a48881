// Health from job outcomes, the single half-open probe, Retry-After, the active checks' effect and their schedule:
// every decision on an injected clock, so none of these depends on the machine's speed.
import { describe, expect, it } from 'vitest';
import { createHealthChecker } from '../src/core/health-checker';
import { createLogger } from '../src/core/logger';
import { createMetrics } from '../src/core/metrics';
import { ProviderError, type ModelOffer, type NormalizedRequest, type ProviderAdapter } from '../src/providers/types';
import { createHealth, type BreakerConfig } from '../src/routing/health';
import { createRouter } from '../src/routing/router';

/** The defaults of routing.breaker (src/core/config.ts). */
const DEFAULTS: BreakerConfig = { consecutive_failures: 5, error_ratio: 0.5, window_ms: 60_000, min_calls: 10, cooldown_ms: 30_000, max_cooldown_ms: 600_000 };
const CHECKS = { enabled: true, min_interval_ms: 1000, max_interval_ms: 4000, timeout_ms: 5000 };

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const offer = (usd: number): ModelOffer => ({ model: 'm', upstream_model: 'm', sizes: ['1280x720'], durations_s: [4], image_input: false, usd_per_second: { standard: usd } });
const REQUEST: NormalizedRequest = { model: 'm', prompt: 'x', size: '1280x720', duration_s: 4 };

function adapter(id: string, usd: number, checkHealth?: () => Promise<void>): ProviderAdapter {
  const unused = () => Promise.reject(new Error('not called'));
  return { id, kind: 'openai', catalog: [offer(usd)], capabilities: { idempotency_keys: false, reference_image: 'bytes' }, submit: unused, poll: unused, download: unused, ...(checkHealth && { checkHealth }) };
}

/** Opens a's breaker by `stage` failures, at the default consecutive-failure count. */
function openBy(h: ReturnType<typeof createHealth>, stage: 'submit' | 'job', retry_after_ms?: number) {
  for (let i = 0; i < DEFAULTS.consecutive_failures; i++) h.jobFailed('a', 'm', { reason: 'server_error', stage, retry_after_ms });
}

describe('health counts job outcomes', () => {
  it('a provider that accepts every job and fails it opens after consecutive_failures failed jobs; accepted submits count for nothing', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    for (let i = 0; i < 4; i++) {
      h.jobProgressing('a', 'm'); // the submit was accepted and the job runs: not a success
      h.jobFailed('a', 'm', { reason: 'internal_error' });
    }
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'closed', calls: 4, error_rate: 1 });
    h.jobFailed('a', 'm', { reason: 'internal_error' });
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', reason: '5 consecutive failures, last: internal_error', until_ms: c.now() + 30_000 });
  });

  it('after a job-side outage, only a completed job closes the probe: an accepted, progressing job does not', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'job');
    c.advance(30_000);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(true);
    h.jobProgressing('a', 'm');
    expect(h.snapshot('a', 'm').state).toBe('half_open');
    h.jobSucceeded('a', 'm', 4000);
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'closed', reason: null, until_ms: null, latency_ms: 4000 });
  });

  it('after a submit-side outage, an accepted job that is progressing closes the probe', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'submit');
    c.advance(30_000);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(true);
    h.jobProgressing('a', 'm');
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'closed', reason: null });
  });

  it('a failed probe job reopens with a doubled cool-down', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'job');
    c.advance(30_000);
    h.tryAcquire('a', 'm', 't1');
    h.jobFailed('a', 'm', { reason: 'internal_error' });
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', reason: 'probe failed: internal_error', until_ms: c.now() + 60_000 });
  });
});

describe('exactly one probe', () => {
  it('of the tasks dispatched when the cool-down ends, one probes the cheap provider and the others go to the next', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    const router = createRouter([{ adapter: adapter('a', 0.1) }, { adapter: adapter('b', 0.2) }], h);
    openBy(h, 'submit');
    c.advance(30_000);
    const picks = Array.from({ length: 8 }, (_, i) => router.acquire(REQUEST, { holder: `t${i}` })?.adapter.id);
    expect(picks).toEqual(['a', 'b', 'b', 'b', 'b', 'b', 'b', 'b']);
    // Quotes read without taking: the probe is still taken.
    expect(router.choose(REQUEST)?.adapter.id).toBe('b');
  });

  it('a probe whose attempt did not start is given back; one nobody reports on is given up after max_cooldown_ms', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'job');
    c.advance(30_000);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(true);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(false);
    h.release('a', 'm', 't2'); // not the holder: nothing happens
    expect(h.tryAcquire('a', 'm', 't3')).toBe(false);
    h.release('a', 'm', 't1');
    expect(h.tryAcquire('a', 'm', 't1')).toBe(true);
    c.advance(DEFAULTS.max_cooldown_ms);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(false);
    c.advance(1);
    expect(h.tryAcquire('a', 'm', 't1')).toBe(true);
  });
});

describe('Retry-After and what GET /v1/providers shows', () => {
  it('Retry-After sets the cool-down exactly, shorter or longer than the default', () => {
    for (const retry_after_ms of [2000, 90_000]) {
      const c = clock();
      const h = createHealth(DEFAULTS, c.now);
      h.jobFailed('a', 'm', { reason: 'http_429', stage: 'submit', retry_after_ms });
      expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', until_ms: c.now() + retry_after_ms });
      c.advance(retry_after_ms - 1);
      expect(h.allows('a', 'm')).toBe(false);
      h.checkSucceeded('a'); // a passing check does not override what the provider asked for
      expect(h.allows('a', 'm')).toBe(false);
      c.advance(1);
      expect(h.allows('a', 'm')).toBe(true);
    }
  });

  it('an open breaker past its until reads half_open (its probe may go), never a stale open', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'job');
    const until = h.snapshot('a', 'm').until_ms!;
    c.advance(30_000);
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'half_open', since_ms: until, until_ms: null });
    expect(h.unhealthyProviders()).toEqual(new Set(['a']));
  });
});

describe('active checks', () => {
  it('a passing check ends a submit-side outage at once; a job-side one keeps its cool-down', () => {
    for (const stage of ['submit', 'job'] as const) {
      const c = clock();
      const h = createHealth(DEFAULTS, c.now);
      openBy(h, stage);
      c.advance(1000);
      h.checkSucceeded('a');
      expect(h.allows('a', 'm'), stage).toBe(stage === 'submit');
    }
  });

  it('after probes failed although the checks passed, a passing check ends the cool-down only 1 s, 2 s, 4 s ... after the reopening', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'submit');
    for (const gap of [1000, 2000, 4000]) {
      h.checkSucceeded('a');
      expect(h.tryAcquire('a', 'm', 'probe')).toBe(true);
      h.jobFailed('a', 'm', { reason: 'timeout', stage: 'submit' }); // creates hang while reads answer
      h.checkSucceeded('a');
      c.advance(gap - 1);
      h.checkSucceeded('a');
      expect(h.allows('a', 'm')).toBe(false);
      c.advance(1);
      h.checkSucceeded('a');
      expect(h.allows('a', 'm')).toBe(true);
    }
    h.tryAcquire('a', 'm', 'probe');
    h.jobProgressing('a', 'm');
    openBy(h, 'submit'); // closed in between: the first check after a new outage ends it at once again
    h.checkSucceeded('a');
    expect(h.allows('a', 'm')).toBe(true);
  });

  it('a failing check keeps the breaker open past its cool-down, so no task probes a provider known down', () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    openBy(h, 'submit');
    c.advance(29_500);
    h.checkFailed('a', 4000);
    c.advance(1000); // the cool-down is over, but the last check said down
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', until_ms: c.now() + 3000 });
    expect(h.tryAcquire('a', 'm', 't1')).toBe(false);
  });

  it('checks come min_interval_ms after the opening, then every 1.5x longer up to max_interval_ms; a pass wakes the dispatcher', async () => {
    const c = clock();
    const h = createHealth(DEFAULTS, c.now);
    let up = false;
    const checks: number[] = [];
    const a = adapter('a', 0.1, async () => {
      checks.push(c.now());
      if (!up) throw new ProviderError('http_503', 'down', true);
    });
    const router = createRouter([{ adapter: a }, { adapter: adapter('b', 0.2) }], h);
    let woken = 0;
    const checker = createHealthChecker({ router, log: createLogger('silent'), metrics: createMetrics({ teamLabel: true, usdPerCredit: 0.01 }), config: CHECKS, onRecovery: () => woken++, now: c.now });
    const start = c.now();
    await checker.checkDue();
    expect(checks).toEqual([]); // nothing is unhealthy
    openBy(h, 'submit');
    for (let i = 0; i < 130; i++) {
      await checker.checkDue();
      c.advance(100);
    }
    expect(checks.map((t) => t - start)).toEqual([1000, 2500, 4800, 8200, 12200]);
    expect(router.acquire(REQUEST, { holder: 't9' })?.adapter.id).toBe('b');

    up = true; // recovered: seen at the next check, at most max_interval_ms later
    const recoveredAt = c.now();
    while (woken === 0) {
      await checker.checkDue();
      c.advance(100);
    }
    expect(checks.at(-1)! - recoveredAt).toBeLessThanOrEqual(CHECKS.max_interval_ms);
    expect(router.acquire(REQUEST, { holder: 't9' })?.adapter.id).toBe('a'); // the probe
    h.jobProgressing('a', 'm');
    expect(h.snapshot('a', 'm').state).toBe('closed');
    const total = checks.length;
    for (let i = 0; i < 100; i++) {
      await checker.checkDue();
      c.advance(100);
    }
    expect(checks.length).toBe(total); // no checks of a closed breaker
  });
});
