// POST /v1/estimates: what a request would cost on each capable provider, and which would serve it now.
import type { components } from '../generated/vidgate-api';
import type { NormalizedRequest } from '../providers/types';
import type { Store } from '../store/types';
import type { Caller } from './teams';
import { creditsFor, usdOf } from '../routing/quote';
import type { Router } from '../routing/router';

type Estimate = components['schemas']['Estimate'];
type QuotaOutlook = NonNullable<Estimate['quota']>;

/** The estimate of a request; `microUsdPerCredit` is the value of one credit in whole micro-USD. */
export function estimate(request: NormalizedRequest, router: Router, active: ReadonlyMap<string, number>, microUsdPerCredit: number): Estimate {
  const chosen = router.choose(request, { active });
  const options = router.candidates(request).map((c) => ({
    provider: c.adapter.id,
    usd: usdOf(c.micro_usd),
    credits: creditsFor(c.micro_usd, microUsdPerCredit),
    available: router.health.allows(c.adapter.id, request.model),
  }));
  return {
    object: 'estimate',
    model: request.model,
    size: request.size,
    duration: request.duration_s,
    provider: chosen?.adapter.id ?? null,
    usd: chosen ? usdOf(chosen.micro_usd) : null,
    credits: chosen ? creditsFor(chosen.micro_usd, microUsdPerCredit) : null,
    options,
  };
}

/**
 * The credit quota of the caller's team or key with the fewest credits left now, and whether those cover `credits`;
 * undefined when neither has a credit quota. A submission that is not covered is refused (402).
 */
export async function quotaOutlook(store: Store, caller: Caller, credits: number, nowMs: number): Promise<QuotaOutlook | undefined> {
  const [teamUsed, keyUsed] = await Promise.all([store.quotaUsage('team', caller.team.id, nowMs), store.quotaUsage('key', caller.key.id, nowMs)]);
  const left = [
    { quota: 'team.credits_per_day', limit: caller.team.credits_per_day, used: teamUsed.credits_day },
    { quota: 'team.credits_per_month', limit: caller.team.credits_per_month, used: teamUsed.credits_month },
    { quota: 'key.credits_per_day', limit: caller.key.credits_per_day, used: keyUsed.credits_day },
    { quota: 'key.credits_per_month', limit: caller.key.credits_per_month, used: keyUsed.credits_month },
  ] as const;
  let tightest: QuotaOutlook | undefined;
  for (const { quota, limit, used } of left) {
    if (limit === null) continue;
    const remaining = Math.max(0, limit - used);
    if (!tightest || remaining < tightest.remaining_credits) tightest = { quota, remaining_credits: remaining, covered: remaining >= credits };
  }
  return tightest;
}
