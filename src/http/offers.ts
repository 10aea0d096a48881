// What both doors check of a normalized request against the providers' catalogs, after the spec has checked
// types and enums: the model exists, some provider offers its size and duration, and one serves it all.
import { invalidRequest } from '../core/errors';
import { tierOfSize, type ModelOffer, type NormalizedRequest } from '../providers/types';
import type { Router } from '../routing/router';

/** The request's field names in a door's wire format, for the errors' `param`. */
export interface OfferParams {
  model: string;
  size: string;
  /** Named when a high-tier size is refused (the native door's `quality`); `size` otherwise. */
  tier: string;
  duration: string;
}

/** The offers of `model`; 400 `model_not_found` listing the known models when none. */
export function offersOf(router: Router, model: string, param: string): ModelOffer[] {
  const offers = router.providers.flatMap((p) => p.catalog.filter((o) => o.model === model));
  if (offers.length === 0) {
    const known = [...new Set(router.providers.flatMap((p) => p.catalog.map((o) => o.model)))].join(', ');
    throw invalidRequest('model_not_found', `unknown model '${model}'; available: ${known}`, param);
  }
  return offers;
}

/**
 * Throws a 400 (`model_not_found`, `unsupported_quality`, `unsupported_size`, `unsupported_duration`,
 * `unsupported_combination`) unless some provider serves the request exactly.
 */
export function assertOffered(request: NormalizedRequest, router: Router, params: OfferParams): void {
  const { model, size, duration_s: durationS } = request;
  const offers = offersOf(router, model, params.model);
  if (!offers.some((o) => o.sizes.includes(size))) {
    const hint = `sizes offered: ${[...new Set(offers.flatMap((o) => o.sizes))].join(', ')}`;
    throw tierOfSize(size) === 'high'
      ? invalidRequest('unsupported_quality', `${model} does not offer 1080p (${size}); ${hint}`, params.tier)
      : invalidRequest('unsupported_size', `${model} does not offer ${size}; ${hint}`, params.size);
  }
  if (!offers.some((o) => o.durations_s.includes(durationS))) {
    throw invalidRequest('unsupported_duration', `${model} does not offer ${durationS} s`, params.duration);
  }
  if (router.candidates(request).length === 0) {
    const image = request.image_url ? ' with an image' : '';
    throw invalidRequest('unsupported_combination', `no provider offers ${model} at ${size}, ${durationS} s${image}`);
  }
}
