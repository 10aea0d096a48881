// The router and the circuit breakers, on their own.
import { describe, expect, it } from 'vitest';
import { seededRandom } from './support/seeded-random';
import { createHealth, type BreakerConfig } from '../src/routing/health';
import { toMicroUsd } from '../src/routing/quote';
import { createRouter } from '../src/routing/router';
import { SIZES, tierOfSize, type DurationS, type ModelOffer, type NormalizedRequest, type ProviderAdapter, type VideoSize } from '../src/providers/types';

const BREAKER: BreakerConfig = { consecutive_failures: 3, error_ratio: 0.5, window_ms: 10_000, min_calls: 6, cooldown_ms: 1000, max_cooldown_ms: 8000 };

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function fakeAdapter(id: string, catalog: ModelOffer[]): ProviderAdapter {
  const unused = () => Promise.reject(new Error('not called in routing tests'));
  return { id, kind: 'simulated', catalog, capabilities: { idempotency_keys: true, reference_image: 'url' }, submit: unused, poll: unused, download: unused };
}


describe('router', () => {
  it('always chooses the cheapest capable provider whose breaker is closed, over many random configurations', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const rand = seededRandom(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
      const c = clock();
      const health = createHealth(BREAKER, c.now);
      const providers = Array.from({ length: 1 + Math.floor(rand() * 6) }, (_, i) => {
        const models = ['sora-2', 'sora-2-pro'].filter(() => rand() < 0.7);
        return fakeAdapter(
          `p${i}`,
          models.map((model) => ({
            model,
            upstream_model: model,
            sizes: SIZES.filter(() => rand() < 0.7),
            durations_s: ([4, 8, 12] as DurationS[]).filter(() => rand() < 0.8),
            image_input: rand() < 0.5,
            // Prices on a coarse grid so that ties happen.
            usd_per_second: { standard: pick([0.1, 0.2, 0.3]), ...(rand() < 0.6 && { high: pick([0.4, 0.5]) }) },
          })),
        );
      });
      for (const p of providers) {
        if (rand() < 0.3) for (const model of ['sora-2', 'sora-2-pro']) for (let k = 0; k < 3; k++) health.jobFailed(p.id, model, { reason: 'down' });
      }
      const router = createRouter(providers.map((adapter) => ({ adapter })), health);
      const request: NormalizedRequest = {
        model: pick(['sora-2', 'sora-2-pro']),
        prompt: 'x',
        size: pick(SIZES) as VideoSize,
        duration_s: pick([4, 8, 12] as const),
        ...(rand() < 0.3 && { image_url: 'https://img.example.com/a.png' }),
      };

      // The oracle: brute force over every provider.
      const prices = providers.flatMap((p) => {
        const o = p.catalog.find(
          (x) => x.model === request.model && x.sizes.includes(request.size) && x.durations_s.includes(request.duration_s) && (!request.image_url || x.image_input),
        );
        const perSecond = o?.usd_per_second[tierOfSize(request.size)];
        const healthy = health.snapshot(p.id, request.model).state === 'closed';
        return o && perSecond !== undefined && healthy ? [toMicroUsd(perSecond) * request.duration_s] : [];
      });
      const chosen = router.choose(request);
      if (prices.length === 0) {
        expect(chosen, `seed ${seed}`).toBeUndefined();
      } else {
        expect(chosen?.micro_usd, `seed ${seed}`).toBe(Math.min(...prices));
        expect(health.snapshot(chosen!.adapter.id, request.model).state, `seed ${seed}`).toBe('closed');
      }
    }
  });

  it('breaks price ties by recent health, then latency', () => {
    const c = clock();
    const health = createHealth(BREAKER, c.now);
    const offer: ModelOffer = { model: 'sora-2', upstream_model: 'sora-2', sizes: ['1280x720'], durations_s: [4], image_input: false, usd_per_second: { standard: 0.1 } };
    const router = createRouter(['a', 'b', 'c'].map((id) => ({ adapter: fakeAdapter(id, [offer]) })), health);
    const request: NormalizedRequest = { model: 'sora-2', prompt: 'x', size: '1280x720', duration_s: 4 };
    health.jobSucceeded('a', 'sora-2', 900);
    health.jobFailed('a', 'sora-2', { reason: 'flaky' });
    health.jobSucceeded('b', 'sora-2', 500);
    health.jobSucceeded('c', 'sora-2', 100);
    expect(router.candidates(request).map((x) => x.adapter.id)).toEqual(['c', 'b', 'a']);
  });

  it('skips excluded providers and those at their concurrency limit', () => {
    const health = createHealth(BREAKER, clock().now);
    const offer = (usd: number): ModelOffer => ({ model: 'sora-2', upstream_model: 'sora-2', sizes: ['1280x720'], durations_s: [4], image_input: false, usd_per_second: { standard: usd } });
    const router = createRouter(
      [
        { adapter: fakeAdapter('cheap', [offer(0.1)]), max_concurrent: 2 },
        { adapter: fakeAdapter('mid', [offer(0.2)]) },
        { adapter: fakeAdapter('dear', [offer(0.3)]) },
      ],
      health,
    );
    const request: NormalizedRequest = { model: 'sora-2', prompt: 'x', size: '1280x720', duration_s: 4 };
    expect(router.choose(request, { active: new Map([['cheap', 1]]) })?.adapter.id).toBe('cheap');
    expect(router.choose(request, { active: new Map([['cheap', 2]]) })?.adapter.id).toBe('mid');
    expect(router.choose(request, { exclude: new Set(['cheap', 'mid']) })?.adapter.id).toBe('dear');
    expect(router.choose(request, { exclude: new Set(['cheap', 'mid', 'dear']) })).toBeUndefined();
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, probes once after the cool-down, and closes on success', () => {
    const c = clock();
    const h = createHealth(BREAKER, c.now);
    h.jobFailed('a', 'm', { reason: 'http_500' });
    h.jobFailed('a', 'm', { reason: 'http_500' });
    expect(h.allows('a', 'm')).toBe(true);
    h.jobFailed('a', 'm', { reason: 'http_500' });
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', until_ms: c.now() + 1000 });
    expect(h.snapshot('a', 'm').reason).toContain('3 consecutive failures');
    expect(h.allows('a', 'm')).toBe(false);
    expect(h.allows('a', 'other-model')).toBe(true); // per provider and model

    c.advance(1000);
    expect(h.allows('a', 'm')).toBe(true);
    h.tryAcquire('a', 'm', 't1');
    expect(h.snapshot('a', 'm').state).toBe('half_open');
    expect(h.allows('a', 'm')).toBe(false); // one probe at a time
    h.jobSucceeded('a', 'm', 120);
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'closed', reason: null, until_ms: null });
  });

  it('a failed probe reopens with a doubled cool-down, capped', () => {
    const c = clock();
    const h = createHealth(BREAKER, c.now);
    for (let i = 0; i < 3; i++) h.jobFailed('a', 'm', { reason: 'x' });
    for (const expected of [2000, 4000, 8000, 8000]) {
      c.advance(10_000);
      h.tryAcquire('a', 'm', 't1');
      h.jobFailed('a', 'm', { reason: 'still down' });
      expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', until_ms: c.now() + expected });
    }
    c.advance(10_000);
    h.tryAcquire('a', 'm', 't1');
    h.jobSucceeded('a', 'm');
    for (let i = 0; i < 3; i++) h.jobFailed('a', 'm', { reason: 'x' });
    expect(h.snapshot('a', 'm').until_ms).toBe(c.now() + 1000); // the cool-down was reset by the success
  });

  it('opens on the error ratio over the window once there are enough calls', () => {
    const c = clock();
    const h = createHealth(BREAKER, c.now);
    for (let i = 0; i < 5; i++) {
      h.jobSucceeded('a', 'm');
      h.jobFailed('a', 'm', { reason: 'flaky' });
    }
    // 5 failures in 10 calls, never 3 in a row: the ratio opens it (at the 6th call, 3 of 6).
    expect(h.snapshot('a', 'm').state).toBe('open');
    expect(h.snapshot('a', 'm').reason).toMatch(/error rate 50% over 6 calls/);
  });

  it('forgets calls that left the window', () => {
    const c = clock();
    const h = createHealth(BREAKER, c.now);
    for (let i = 0; i < 4; i++) {
      h.jobSucceeded('a', 'm');
      h.jobFailed('a', 'm', { reason: 'flaky' });
      c.advance(6000);
    }
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'closed', calls: 2, error_rate: 0.5 });
  });

  it('honours Retry-After when it is longer than the cool-down', () => {
    const c = clock();
    const h = createHealth(BREAKER, c.now);
    h.jobFailed('a', 'm', { reason: 'http_429', retry_after_ms: 5000 });
    expect(h.snapshot('a', 'm')).toMatchObject({ state: 'open', until_ms: c.now() + 5000 });
    c.advance(4999);
    expect(h.allows('a', 'm')).toBe(false);
    c.advance(1);
    expect(h.allows('a', 'm')).toBe(true);
  });

  it('reports latency and error rate', () => {
    const h = createHealth(BREAKER, clock().now);
    h.jobSucceeded('a', 'm', 100);
    h.jobSucceeded('a', 'm', 300);
    expect(h.snapshot('a', 'm')).toMatchObject({ calls: 2, error_rate: 0, latency_ms: 200 });
  });
});
