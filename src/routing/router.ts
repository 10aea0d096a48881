// Which providers can serve a request, cheapest first.
import { offerFor, type ModelOffer, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import { priceUsd } from './quote';

export interface Candidate {
  adapter: ProviderAdapter;
  offer: ModelOffer;
  usd: number;
}

export interface Router {
  readonly providers: readonly ProviderAdapter[];
  provider(id: string): ProviderAdapter | undefined;
  /** Providers able to serve this exact request, ordered by its price (ties by provider id). */
  candidates(request: NormalizedRequest): Candidate[];
}

export function createRouter(providers: readonly ProviderAdapter[]): Router {
  const byId = new Map(providers.map((p) => [p.id, p]));
  return {
    providers,
    provider: (id) => byId.get(id),
    candidates(request) {
      const found: Candidate[] = [];
      for (const adapter of providers) {
        const offer = offerFor(adapter, request);
        const usd = offer && priceUsd(offer, request);
        if (offer && usd !== undefined) found.push({ adapter, offer, usd });
      }
      return found.sort((a, b) => a.usd - b.usd || a.adapter.id.localeCompare(b.adapter.id));
    },
  };
}
