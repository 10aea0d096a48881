// GET /v1/providers: each provider's breakers, load and prices, so an operator sees why traffic moved.
import type { components } from '../generated/vidgate-api';
import type { Router } from '../routing/router';
import type { DisabledProvider } from './providers-from-config';

type ProviderStatus = components['schemas']['ProviderStatus'];

export function describeProviders(router: Router, disabled: readonly DisabledProvider[], active: ReadonlyMap<string, number>): ProviderStatus[] {
  const enabled = router.providers.map((p): ProviderStatus => ({
    id: p.id,
    kind: p.kind as ProviderStatus['kind'],
    enabled: true,
    disabled_reason: null,
    max_concurrent: router.maxConcurrent(p.id) ?? null,
    active_tasks: active.get(p.id) ?? 0,
    models: p.catalog.map((o) => {
      const h = router.health.snapshot(p.id, o.model);
      return {
        model: o.model,
        upstream_model: o.upstream_model,
        sizes: [...o.sizes],
        durations: [...o.durations_s],
        usd_per_second: { '720p': o.usd_per_second.standard, ...(o.usd_per_second.high !== undefined && { '1080p': o.usd_per_second.high }) },
        health: { state: h.state, reason: h.reason, since: h.since_ms, until: h.until_ms, calls: h.calls, error_rate: h.error_rate, latency_ms: h.latency_ms },
      };
    }),
  }));
  const left = disabled.map((d): ProviderStatus => ({
    id: d.id,
    kind: d.kind as ProviderStatus['kind'],
    enabled: false,
    disabled_reason: d.reason,
    max_concurrent: null,
    active_tasks: 0,
    models: [],
  }));
  return [...enabled, ...left];
}
