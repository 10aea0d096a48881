// What a request costs on one provider's offer.
import { tierOfSize, type ModelOffer, type NormalizedRequest } from '../providers/types';

/** USD for the request on this offer, or undefined when the offer has no price for its tier. */
export function priceUsd(offer: ModelOffer, request: NormalizedRequest): number | undefined {
  const perSecond = offer.usd_per_second[tierOfSize(request.size)];
  return perSecond === undefined ? undefined : perSecond * request.duration_s;
}

/** Whole credits covering `usd` (rounded up; the epsilon absorbs floating-point noise such as 0.1 * 3). */
export function usdToCredits(usd: number, usdPerCredit: number): number {
  return Math.ceil(usd / usdPerCredit - 1e-9);
}
