// Which provider serves a request: the cheapest that can serve it exactly and is healthy right now.
import { canTake, offerFor, type ModelOffer, type NormalizedRequest, type ProviderAdapter } from '../providers/types';
import type { Health } from './health';
import { priceMicroUsd } from './quote';

export interface RoutedProvider {
  adapter: ProviderAdapter;
  /** The most tasks this provider may run at once; unlimited when absent. */
  max_concurrent?: number;
}

export interface Candidate {
  adapter: ProviderAdapter;
  offer: ModelOffer;
  /** The request's price on this provider, in whole micro-USD. */
  micro_usd: number;
}

export interface ChooseOptions {
  /** Providers not to use (those that already failed this task). */
  exclude?: ReadonlySet<string>;
  /** Running tasks per provider, for the concurrency limits. */
  active?: ReadonlyMap<string, number>;
}

export interface AcquireOptions extends ChooseOptions {
  /** Who takes the probe, if it is one (the task id). */
  holder: string;
}

export interface Router {
  readonly providers: readonly ProviderAdapter[];
  readonly health: Health;
  provider(id: string): ProviderAdapter | undefined;
  maxConcurrent(id: string): number | undefined;
  /** Providers able to serve this exact request, by price; ties go to the healthier, then the faster. */
  candidates(request: NormalizedRequest): Candidate[];
  /** The first candidate that is not excluded, has room, and whose breaker lets a request through. Read-only (quotes). */
  choose(request: NormalizedRequest, options?: ChooseOptions): Candidate | undefined;
  /**
   * As `choose`, for a task about to be sent: the breaker's gate is taken in the same synchronous step
   * (`Health.tryAcquire`), so of the tasks dispatched together exactly one probes a half-open provider and the
   * others move on to the next. The caller gives the gate back (`health.release`) if the attempt does not start.
   */
  acquire(request: NormalizedRequest, options: AcquireOptions): Candidate | undefined;
  /**
   * As `acquire`, for the dispatcher: a half-open probe taken in process must also get the replicas' lease
   * (`RouterOptions.probeLease`); when another replica holds it, the probe is given back here and the next candidate
   * is tried. Without `probeLease`, the same as `acquire`.
   */
  claim(request: NormalizedRequest, options: AcquireOptions): Promise<Candidate | undefined>;
}

export interface RouterOptions {
  /** vidgate can serve an uploaded image at a link, so providers that take images only by URL can take uploads. */
  imageLinks?: boolean;
  /**
   * Takes a half-open probe for all the replicas (the store's lease, src/core/shared-health.ts); false when another
   * replica holds it. Asked only for a probe, never for a closed breaker's traffic.
   */
  probeLease?: (provider: string, model: string, holder: string) => Promise<boolean>;
}

export function createRouter(routed: readonly RoutedProvider[], health: Health, { imageLinks = false, probeLease }: RouterOptions = {}): Router {
  const byId = new Map(routed.map((r) => [r.adapter.id, r]));
  const providers = routed.map((r) => r.adapter);

  function candidates(request: NormalizedRequest): Candidate[] {
    const found: (Candidate & { error_rate: number; latency_ms: number })[] = [];
    for (const adapter of providers) {
      if (!canTake(adapter, request, imageLinks)) continue;
      const offer = offerFor(adapter, request);
      const microUsd = offer && priceMicroUsd(offer, request);
      if (!offer || microUsd === undefined) continue;
      const h = health.snapshot(adapter.id, request.model);
      found.push({ adapter, offer, micro_usd: microUsd, error_rate: h.error_rate, latency_ms: h.latency_ms ?? 0 });
    }
    found.sort((a, b) => a.micro_usd - b.micro_usd || a.error_rate - b.error_rate || a.latency_ms - b.latency_ms || a.adapter.id.localeCompare(b.adapter.id));
    return found.map(({ adapter, offer, micro_usd }) => ({ adapter, offer, micro_usd }));
  }

  return {
    providers,
    health,
    provider: (id) => byId.get(id)?.adapter,
    maxConcurrent: (id) => byId.get(id)?.max_concurrent,
    candidates,
    choose: (request, options) => first(request, options, (id) => health.allows(id, request.model)),
    acquire,
    async claim(request, options) {
      const refused = new Set(options.exclude);
      for (;;) {
        const pick = acquire(request, { ...options, exclude: refused });
        const id = pick?.adapter.id;
        if (!pick || !probeLease || !health.holdsProbe(id!, request.model, options.holder)) return pick;
        if (await probeLease(id!, request.model, options.holder)) return pick;
        health.release(id!, request.model, options.holder);
        refused.add(id!);
      }
    },
  };

  function acquire(request: NormalizedRequest, options: AcquireOptions) {
    return first(request, options, (id) => health.tryAcquire(id, request.model, options.holder));
  }

  function first(request: NormalizedRequest, { exclude, active }: ChooseOptions = {}, gate: (id: string) => boolean) {
    return candidates(request).find((c) => {
      const limit = byId.get(c.adapter.id)?.max_concurrent;
      return !exclude?.has(c.adapter.id) && (limit === undefined || (active?.get(c.adapter.id) ?? 0) < limit) && gate(c.adapter.id);
    });
  }
}
