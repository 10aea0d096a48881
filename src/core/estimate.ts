// POST /v1/estimates: what a request would cost on each capable provider, and which would serve it now.
import type { components } from '../generated/vidgate-api';
import type { NormalizedRequest } from '../providers/types';
import { usdToCredits } from '../routing/quote';
import type { Router } from '../routing/router';

type Estimate = components['schemas']['Estimate'];

export function estimate(request: NormalizedRequest, router: Router, active: ReadonlyMap<string, number>, usdPerCredit: number): Estimate {
  const chosen = router.choose(request, { active });
  const options = router.candidates(request).map((c) => ({
    provider: c.adapter.id,
    usd: c.usd,
    credits: usdToCredits(c.usd, usdPerCredit),
    available: router.health.allows(c.adapter.id, request.model),
  }));
  return {
    object: 'estimate',
    model: request.model,
    size: request.size,
    duration: request.duration_s,
    provider: chosen?.adapter.id ?? null,
    usd: chosen?.usd ?? null,
    credits: chosen ? usdToCredits(chosen.usd, usdPerCredit) : null,
    options,
  };
}
