// The per-minute request counts (src/store/request-rates.ts), on an injected clock: the UTC minute, the two scopes,
// the two kinds, and refusals that count against neither scope.
import { describe, expect, it } from 'vitest';
import { createRequestRates } from '../src/store/request-rates';
import type { ApiKeyRecord, Quotas, TeamRecord } from '../src/store/types';

const NONE: Quotas = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };
const team = (limits: Partial<Quotas>): TeamRecord => ({ id: 'team', name: 'team', created_at_ms: 0, ...NONE, ...limits });
const key = (id: string, limits: Partial<Quotas> = {}): ApiKeyRecord => ({
  id,
  team_id: 'team',
  name: id,
  key_hash: id,
  prefix: 'vg_',
  created_at_ms: 0,
  expires_at_ms: null,
  revoked_at_ms: null,
  allowed_models: null,
  ...NONE,
  ...limits,
});
const MINUTE = Date.parse('2026-11-30T10:00:00Z');

describe('request rates per minute', () => {
  it('admits up to the tightest limit in one UTC minute, and again from the next minute on', () => {
    const rates = createRequestRates();
    const t = team({ reads_per_minute: 3 });
    const k = key('k', { reads_per_minute: 10 });
    const answers = [0, 1, 2, 3].map((i) => rates.admit(k, t, 'read', MINUTE + i * 1000));
    expect(answers.map((a) => [a.allowed, a.limit, a.remaining])).toEqual([[true, 3, 2], [true, 3, 1], [true, 3, 0], [false, 3, 0]]);
    expect(answers[0]!.quota).toBe('reads_per_minute');
    expect(rates.used('team', 'team', 'read', MINUTE + 59_999)).toBe(3);
    expect(rates.used('key', 'k', 'read', MINUTE + 59_999)).toBe(3);
    const next = rates.admit(k, t, 'read', MINUTE + 60_000);
    expect([next.allowed, next.remaining]).toEqual([true, 2]);
    expect(rates.used('team', 'team', 'read', MINUTE + 60_000)).toBe(1);
    expect(rates.used('team', 'team', 'read', MINUTE)).toBe(0); // a minute that is over reads 0
  });

  it("counts reads and submissions apart; a key's refusal leaves its team's count as it was", () => {
    const rates = createRequestRates();
    const t = team({ submits_per_minute: 5 });
    const tight = key('tight', { submits_per_minute: 2 });
    const other = key('other');
    const statuses = [0, 1, 2, 3].map(() => rates.admit(tight, t, 'submit', MINUTE).allowed);
    expect(statuses).toEqual([true, true, false, false]);
    expect(rates.used('team', 'team', 'submit', MINUTE)).toBe(2);
    expect([0, 1, 2, 3].map(() => rates.admit(other, t, 'submit', MINUTE).allowed)).toEqual([true, true, true, false]);
    expect(rates.admit(other, t, 'read', MINUTE)).toMatchObject({ allowed: true, quota: 'reads_per_minute', limit: null, remaining: null });
    expect(rates.used('key', 'other', 'read', MINUTE)).toBe(1);
  });
});
