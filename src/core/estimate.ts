// POST /v1/estimates: what a request would cost on each capable provider, and which would serve it now.
import type { components } from '../generated/vidgate-api';
import type { NormalizedRequest } from '../providers/types';
import { creditsFor, usdOf } from '../routing/quote';
import type { Router } from '../routing/router';

type Estimate = components['schemas']['Estimate'];

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
