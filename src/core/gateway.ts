// The composition root: builds every part from the config and starts/stops them in order.
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { originsOf } from '../net/url-guard';
import { createHealth } from '../routing/health';
import { createRouter, type RoutedProvider } from '../routing/router';
import { createSqliteStore } from '../store/sqlite';
import type { Store } from '../store/types';
import { createApp } from '../http/app';
import { createLocalAssetStore } from './assets';

import type { Config } from './config';
import { createLogger, type Logger } from './logger';
import { createMetrics } from './metrics';
import { providersFromConfig } from './providers-from-config';
import { createImageLinks } from './image-links';
import { createReferenceImages } from './reference-images';
import { createResultCache } from './result-cache';
import { createRetentionSweeper } from './retention';
import { createTaskService } from './tasks';
import { createTeamService, ensureApiKeys } from './teams';
import { createVideoVariants } from './video-variants';
import { createWorkers } from './workers';

export interface GatewayOptions {
  log?: Logger;
  validateResponses?: boolean;
  /** Replaces the providers built from the config (tests). */
  providers?: RoutedProvider[];
  /** Where provider keys are read from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  now?: () => number;
}

export type Gateway = Awaited<ReturnType<typeof createGateway>>;

export async function createGateway(config: Config, options: GatewayOptions = {}) {
  const log = options.log ?? createLogger(config.log_level);
  const now = options.now ?? Date.now;
  const store: Store = createSqliteStore(config.store.sqlite_path);
  const metrics = createMetrics();
  const assets = createLocalAssetStore(config.assets.dir);
  const built = providersFromConfig(config, options.env ?? process.env);
  for (const p of built.disabled) log.warn('provider left out', { provider: p.id, kind: p.kind, reason: p.reason });
  const health = createHealth(config.routing.breaker, now);
  const imageLinks = config.server.public_url ? createImageLinks(config.server.public_url, path.join(config.data_dir, 'image-link.key'), now) : undefined;
  const router = createRouter(options.providers ?? built.routed, health, { imageLinks: imageLinks !== undefined });
  const retentionMs = config.assets.retention_days * 24 * 3600 * 1000;
  const teams = createTeamService(store, config.teams.default_quotas, now);
  const { devKey } = await ensureApiKeys(store, teams, config.auth.api_keys);

  const trustedOrigins = originsOf(config.outbound.trusted_origins);
  const cache = createResultCache({ config: config.cache, retentionMs, metrics, log, now });
  const images = createReferenceImages(path.join(config.data_dir, 'images'), {
    maxBytes: config.cache.image_max_bytes,
    timeoutMs: config.cache.image_timeout_ms,
    trustedOrigins,
  });
  const workers = createWorkers({
    store, router, assets, metrics, log, now, cache, images, imageLinks,
    config: config.workers,
    waitForProviderMs: config.routing.wait_for_provider_ms,
    usdPerCredit: config.credits.usd_per_credit,
  });
  const tasks = createTaskService({
    store, router, assets, metrics, log, now, cache,
    variants: createVideoVariants(assets),
    images,
    usdPerCredit: config.credits.usd_per_credit,
    upstreamTimeoutMs: config.workers.upstream_timeout_ms,
    onSubmitted: () => workers.wake(),
  });
  const sweeper = createRetentionSweeper({ store, assets, metrics, log, retentionMs, intervalMs: config.assets.sweep_interval_ms, now });
  let draining = false;
  const app = createApp({
    store, router, tasks, teams, metrics, log, retentionMs, now,
    adminToken: (options.env ?? process.env).VIDGATE_ADMIN_TOKEN || undefined,
    bodyLimitBytes: config.server.body_limit_bytes,
    publicUrl: config.server.public_url,
    usdPerCredit: config.credits.usd_per_credit,
    trustedOrigins,
    disabledProviders: built.disabled,
    images,
    imageLinks,
    isDraining: () => draining,
    validateResponses: options.validateResponses,
  });
  let server: http.Server | undefined;

  return {
    app,
    store,
    router,
    metrics,
    workers,
    teams,
    /** The key created on this first start, to show once; undefined otherwise. */
    devKey,
    /** Listen and start the background loops; resolves with the bound URL. */
    async start(): Promise<string> {
      server = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.server.port, config.server.host, resolve);
      });
      workers.start();
      sweeper.start();
      const { address, port } = server.address() as AddressInfo;
      return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
    },
    /** Graceful stop: refuse new work, let running steps finish (up to the drain timeout), close. */
    async stop(): Promise<void> {
      draining = true;
      sweeper.stop();
      const closed = server ? new Promise((r) => server!.close(r)) : Promise.resolve();
      server?.closeIdleConnections();
      await workers.stop(config.server.drain_timeout_ms);
      await closed;
      await store.close();
    },
  };
}
