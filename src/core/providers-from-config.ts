// The configured providers, built into adapters. A provider whose key is missing is left out whole.
import path from 'node:path';
import { createOpenAIProvider } from '../providers/openai';
import { createSimulatedProvider } from '../providers/simulated';
import type { Outbound } from '../net/outbound';
import { createTasksApiProvider, defaultAspectRatioStyle } from '../providers/tasks-api';
import { SIZES, type AdapterWarn, type ModelOffer, type VideoSize } from '../providers/types';
import type { RoutedProvider } from '../routing/router';
import type { Config, OfferConfig } from './config';

export interface DisabledProvider {
  id: string;
  kind: string;
  reason: string;
}

const STANDARD_SIZES: VideoSize[] = ['1280x720', '720x1280'];

export function offerFromConfig(o: OfferConfig): ModelOffer {
  return {
    model: o.model,
    upstream_model: o.upstream_model ?? o.model,
    sizes: o.sizes ?? (o.usd_per_second.high === undefined ? STANDARD_SIZES : [...SIZES]),
    durations_s: o.durations_s,
    image_input: o.image_input,
    usd_per_second: o.usd_per_second,
  };
}

export function providersFromConfig(config: Config, env: NodeJS.ProcessEnv, outbound: Outbound, warn?: AdapterWarn): { routed: RoutedProvider[]; disabled: DisabledProvider[] } {
  const routed: RoutedProvider[] = [];
  const disabled: DisabledProvider[] = [];
  for (const p of config.providers) {
    const limits = p.max_concurrent === undefined ? {} : { max_concurrent: p.max_concurrent };
    if (p.kind === 'simulated') {
      // Its jobs are files in work_dir: replicas sharing a database but not that directory lose each other's jobs.
      if (config.store.kind === 'postgres' && p.work_dir === undefined) {
        warn?.('a simulated provider keeps its jobs in <data_dir>/simulated: with several replicas, set one shared work_dir for it', { provider: p.id });
      }
      const adapter = createSimulatedProvider({
        id: p.id,
        workDir: p.work_dir ?? path.join(config.data_dir, 'simulated', p.id),
        durationMs: p.duration_ms,
        failureRate: p.failure_rate,
        failureKind: p.failure_kind,
        fps: p.fps,
        ...(p.models && { catalog: p.models.map(offerFromConfig) }),
      });
      routed.push({ adapter, ...limits });
      continue;
    }
    const apiKey = env[p.api_key_env];
    if (!apiKey) {
      disabled.push({ id: p.id, kind: p.kind, reason: `environment variable ${p.api_key_env} is not set` });
      continue;
    }
    const target = { id: p.id, baseUrl: p.base_url, apiKey, timeoutMs: p.timeout_ms, ...(warn && { warn }) };
    const adapter =
      p.kind === 'openai'
        ? createOpenAIProvider({ ...target, honoursIdempotencyKey: p.honours_idempotency_key, catalog: p.models.map(offerFromConfig) })
        : createTasksApiProvider({
            ...target,
            outbound: outbound.trusting(p.trusted_result_origins),
            catalog: p.models.map((o) => ({ ...offerFromConfig(o), aspect_ratio_style: o.aspect_ratio_style ?? defaultAspectRatioStyle(o.upstream_model ?? o.model) })),
          });
    routed.push({ adapter, ...limits });
  }
  return { routed, disabled };
}

/**
 * The webhook secrets of the providers that send webhooks (`webhook_secret_env`), by provider id, read from `env`.
 * A provider whose variable is not set takes no webhooks (its jobs are polled as usual); `warn` is told of it.
 */
export function webhookSecrets(config: Config, env: NodeJS.ProcessEnv, warn: AdapterWarn): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const p of config.providers) {
    if (p.kind !== 'openai' || p.webhook_secret_env === undefined) continue;
    const secret = env[p.webhook_secret_env];
    if (secret) secrets.set(p.id, secret);
    else warn('provider webhooks left out: its secret is not set; its jobs are polled', { provider: p.id, variable: p.webhook_secret_env });
  }
  return secrets;
}
