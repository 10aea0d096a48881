// Money is computed in whole micro-USD: over random prices, durations and credit values, every USD amount an
// estimate or a usage report shows is the exact decimal (no floating-point noise), and credits are exact.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/core/config';
import { estimate } from '../src/core/estimate';
import { DURATIONS_S, type ModelOffer, type NormalizedRequest, type ProviderAdapter } from '../src/providers/types';
import { createHealth } from '../src/routing/health';
import { creditsFor, toMicroUsd, usdOf } from '../src/routing/quote';
import { createRouter } from '../src/routing/router';

const BREAKER = { consecutive_failures: 3, error_ratio: 0.5, window_ms: 10_000, min_calls: 6, cooldown_ms: 1000, max_cooldown_ms: 8000 };

/** The exact decimal of whole micro-USD, as a person writes it: 1200000n -> "1.2". */
function decimal(micro: bigint): string {
  const fraction = (micro % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return `${micro / 1_000_000n}${fraction ? `.${fraction}` : ''}`;
}

/** The reference: ceil(a / b) in BigInt. */
const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

function adapter(id: string, usdPerSecond: number): ProviderAdapter {
  const offer: ModelOffer = { model: 'sora-2', upstream_model: 'sora-2', sizes: ['1280x720'], durations_s: [...DURATIONS_S], image_input: false, usd_per_second: { standard: usdPerSecond } };
  const unused = () => Promise.reject(new Error('not called'));
  return { id, kind: 'simulated', catalog: [offer], capabilities: { idempotency_keys: true, reference_image: 'url' }, submit: unused, poll: unused, download: unused };
}

/** A price as configured: the number a YAML or JSON parser makes of its decimal text (e.g. 0.07). */
const configuredUsd = (micro: number) => Number(decimal(BigInt(micro)));

describe('money in whole micro-USD', () => {
  it('estimates show exact USD and credits, over random prices, durations and credit values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50_000_000 }), { minLength: 1, maxLength: 4 }), // up to $50 a second
        fc.constantFrom(...DURATIONS_S),
        fc.integer({ min: 1, max: 5_000_000 }), // one credit: $0.000001 to $5
        (pricesMicro, durationS, creditMicro) => {
          const router = createRouter(pricesMicro.map((p, i) => ({ adapter: adapter(`p${i}`, configuredUsd(p)) })), createHealth(BREAKER, () => 0));
          const request: NormalizedRequest = { model: 'sora-2', prompt: 'x', size: '1280x720', duration_s: durationS };
          const microPerCredit = toMicroUsd(configuredUsd(creditMicro));
          expect(microPerCredit).toBe(creditMicro);
          const est = estimate(request, router, new Map(), microPerCredit);
          const json = JSON.stringify(est);
          // No number in the answer has more than 6 decimals (noise shows as 1.2000000000000002).
          for (const n of json.match(/-?\d+\.\d+(e-?\d+)?/g) ?? []) expect(n).toMatch(/^-?\d+\.\d{1,6}$/);
          const expected = pricesMicro
            .map((p) => BigInt(p) * BigInt(durationS))
            .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          expect(est.options.map((o) => JSON.stringify(o.usd))).toEqual(expected.map(decimal));
          expect(est.options.map((o) => o.credits)).toEqual(expected.map((m) => Number(ceilDiv(m, BigInt(creditMicro)))));
          expect(JSON.stringify(est.usd)).toBe(decimal(expected[0]!));
          expect(est.credits).toBe(Number(ceilDiv(expected[0]!, BigInt(creditMicro))));
        },
      ),
      { numRuns: 2000, examples: [[[100_000], 12, 10_000], [[70_000], 4, 10_000], [[254_000, 423_500], 12, 10_000]] },
    );
  });

  it('credits are the exact ceiling, and credits valued in USD are the exact decimal below $10^9 (15 digits)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 5_000_000 }), (micro, perCredit) => {
        expect(creditsFor(micro, perCredit)).toBe(Number(ceilDiv(BigInt(micro), BigInt(perCredit))));
        const credits = Math.floor(micro / 100);
        const value = BigInt(credits) * BigInt(perCredit);
        if (value < 10n ** 15n) expect(JSON.stringify(usdOf(credits * perCredit))).toBe(decimal(value));
      }),
      { numRuns: 5000 },
    );
  });

  it('the configuration refuses prices and credit values finer than a micro-dollar, naming the field', () => {
    const provider = (usd: number) => ({ providers: [{ id: 'sim', kind: 'simulated', models: [{ model: 'sora-2', usd_per_second: { standard: usd } }] }] });
    expect(() => parseConfig(provider(0.1234567))).toThrow(/providers\.0\.models\.0\.usd_per_second\.standard: at most 6 decimal places/);
    expect(() => parseConfig({ credits: { usd_per_credit: 0.0000001 } })).toThrow(/credits\.usd_per_credit: at most 6 decimal places/);
    expect(parseConfig(provider(0.254)).credits.usd_per_credit).toBe(0.01);
  });
});
