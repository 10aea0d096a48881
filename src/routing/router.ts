// Which provider serves a request: the cheapest that can serve it exactly and is healthy right now.
import { canTake, offerFor, type ModelOffer, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { Health } from './health';
import { priceUsd } from './quote';

export interface RoutedProvider {
  adapter: ProviderAdapter;
  /** The most tasks this provider may run at once; unlimited when absent. */
  max_concurrent?: number;
}

export interface Candidate {
  adapter: ProviderAdapter;
  offer: ModelOffer;
  usd: number;
}

export interface ChooseOptions {
  /** Providers not to use (those that already failed this task). */
  exclude?: ReadonlySet<string>;
  /** Running tasks per provider, for the concurrency limits. */
  active?: ReadonlyMap<string, number>;
}

export interface Router {
  readonly providers: readonly ProviderAdapter[];
  readonly health: Health;
  provider(id: string): ProviderAdapter | undefined;
  maxConcurrent(id: string): number | undefined;
  /** Providers able to serve this exact request, by price; ties go to the healthier, then the faster. */
  candidates(request: NormalizedRequest): Candidate[];
  /** The first candidate that is not excluded, has room, and whose breaker lets a request through. */
  choose(request: NormalizedRequest, options?: ChooseOptions): Candidate | undefined;
}

export interface RouterOptions {
  /** vidgate can serve an uploaded image at a link, so providers that take images only by URL can take uploads. */
  imageLinks?: boolean;
}

export function createRouter(routed: readonly RoutedProvider[], health: Health, { imageLinks = false }: RouterOptions = {}): Router {
  const byId = new Map(routed.map((r) => [r.adapter.id, r]));
  const providers = routed.map((r) => r.adapter);

  function candidates(request: NormalizedRequest): Candidate[] {
    const found: (Candidate & { error_rate: number; latency_ms: number })[] = [];
    for (const adapter of providers) {
      if (!canTake(adapter, request, imageLinks)) continue;
      const offer = offerFor(adapter, request);
      const usd = offer && priceUsd(offer, request);
      if (!offer || usd === undefined) continue;
      const h = health.snapshot(adapter.id, request.model);
      found.push({ adapter, offer, usd, error_rate: h.error_rate, latency_ms: h.latency_ms ?? 0 });
    }
    found.sort((a, b) => a.usd - b.usd || a.error_rate - b.error_rate || a.latency_ms - b.latency_ms || a.adapter.id.localeCompare(b.adapter.id));
    return found.map(({ adapter, offer, usd }) => ({ adapter, offer, usd }));
  }

  return {
    providers,
    health,
    provider: (id) => byId.get(id)?.adapter,
    maxConcurrent: (id) => byId.get(id)?.max_concurrent,
    candidates,
    choose(request, { exclude, active } = {}) {
      return candidates(request).find((c) => {
        const limit = byId.get(c.adapter.id)?.max_concurrent;
        return (
          !exclude?.has(c.adapter.id) &&
          (limit === undefined || (active?.get(c.adapter.id) ?? 0) < limit) &&
          health.allows(c.adapter.id, request.model)
        );
      });
    },
  };
}
