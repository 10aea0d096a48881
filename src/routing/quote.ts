// What a request costs on one provider's offer. Money is computed in whole micro-USD (1 USD = 1 000 000
// micro-USD), so that products and sums are exact integers; USD appears only at the edges: configured prices
// coming in (toMicroUsd), amounts going out (usdOf).
import { tierOfSize, type ModelOffer, type NormalizedRequest } from '../providers/types';

const MICRO_USD_PER_USD = 1_000_000;

/**
 * A USD amount (a configured price) in whole micro-USD, rounded to the nearest. Configuration accepts only
 * amounts that convert exactly (`isWholeMicroUsd`), so the rounding only absorbs binary noise such as 0.254.
 */
export function toMicroUsd(usd: number): number {
  return Math.round(usd * MICRO_USD_PER_USD);
}

/** True when `usd` has at most 6 decimal places, i.e. is a whole number of micro-USD within the safe range. */
export function isWholeMicroUsd(usd: number): boolean {
  const micro = toMicroUsd(usd);
  return Number.isSafeInteger(micro) && micro / MICRO_USD_PER_USD === usd;
}

/**
 * Whole micro-USD as USD, for the wire, with at most 6 decimal places. Exact below 10^15 micro-USD (a billion
 * dollars: 15 significant digits, which a double keeps): the division is the double nearest to the decimal,
 * which JSON prints as that decimal, with no binary noise.
 */
export function usdOf(microUsd: number): number {
  return microUsd / MICRO_USD_PER_USD;
}

/** The request's price on this offer in whole micro-USD, or undefined when the offer has no price for its tier. */
export function priceMicroUsd(offer: ModelOffer, request: NormalizedRequest): number | undefined {
  const perSecond = offer.usd_per_second[tierOfSize(request.size)];
  return perSecond === undefined ? undefined : toMicroUsd(perSecond) * request.duration_s;
}

/** Whole credits covering `microUsd` (rounded up), in integer arithmetic; both arguments are whole and positive. */
export function creditsFor(microUsd: number, microUsdPerCredit: number): number {
  const rest = microUsd % microUsdPerCredit;
  return (microUsd - rest) / microUsdPerCredit + (rest > 0 ? 1 : 0);
}
