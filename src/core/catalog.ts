// GET /v1/models: every model some provider serves, with the price range across providers.
import type { components } from '../generated/vidgate-api';
import { DURATIONS_S, SIZES, tierOfSize } from '../providers/types';
import type { Router } from '../routing/router';

type Model = components['schemas']['Model'];
type PriceRange = components['schemas']['PriceRange'];

export function describeCatalog(router: Router): Model[] {
  const byModel = new Map<string, { provider: string; offer: (typeof router.providers)[number]['catalog'][number] }[]>();
  for (const p of router.providers) {
    for (const offer of p.catalog) byModel.set(offer.model, [...(byModel.get(offer.model) ?? []), { provider: p.id, offer }]);
  }
  return [...byModel.entries()].map(([id, entries]) => {
    const offers = entries.map((e) => e.offer);
    const sizes = SIZES.filter((s) => offers.some((o) => o.sizes.includes(s)));
    const range = (tier: 'standard' | 'high'): PriceRange | undefined => {
      const prices = offers.filter((o) => o.sizes.some((s) => tierOfSize(s) === tier)).map((o) => o.usd_per_second[tier]).filter((p) => p !== undefined);
      return prices.length ? { min: Math.min(...prices), max: Math.max(...prices) } : undefined;
    };
    const standard = range('standard');
    const high = range('high');
    return {
      id,
      object: 'model',
      sizes,
      qualities: high ? ['720p', '1080p'] : ['720p'],
      durations: DURATIONS_S.filter((d) => offers.some((o) => o.durations_s.includes(d))),
      image_input: offers.some((o) => o.image_input),
      providers: [...new Set(entries.map((e) => e.provider))],
      price_usd_per_second: { '720p': standard ?? { min: 0, max: 0 }, ...(high && { '1080p': high }) },
    };
  });
}
