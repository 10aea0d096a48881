// The composition root: builds every part from the config and starts/stops them in order.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOutbound, type Outbound, type Resolver } from '../net/outbound';
import { toMicroUsd } from '../routing/quote';
import { createRouter, type RoutedProvider } from '../routing/router';
import { openStore } from '../store/open-store';
import type { Store } from '../store/types';
import { AssetConfigError, createAssetStore } from '../assets/from-config';
import { createApp } from '../http/app';
import { createContentSender } from '../http/asset-content';
import { createHttpServer } from '../http/server';
import type { Config } from './config';
import { createHealthChecker } from './health-checker';
import { createSharedHealth } from './shared-health';
import { createLogger, type Logger } from './logger';
import { createMetrics } from './metrics';
import { providersFromConfig, webhookSecrets } from './providers-from-config';
import { createProviderWebhooks } from './provider-webhooks';
import { createImageLinks } from './image-links';
import { createReferenceImages } from './reference-images';
import { createResultCache } from './result-cache';
import { createRetentionSweeper } from './retention';
import { createTaskService } from './tasks';
import { createDeliverer } from './deliverer';
import { loadOrCreateKey } from './key-file';
import { createWebhookSecrets } from './webhook-secrets';
import { createWebhookService } from './webhooks';
import { webhookBodies } from '../http/webhook-bodies';
import { createReportSink } from './transition-reports';
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
  /** Resolves the host names of outbound URLs (tests); `dns.lookup` by default. */
  resolve?: Resolver;
  /** The store to use instead of the one `config.store` names (tests pick a backend); the gateway closes it at stop. */
  store?: Store;
}

export type Gateway = Awaited<ReturnType<typeof createGateway>>;

/** A start that cannot proceed for a reason the operator can fix; its message is one line saying what to do. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * Creates each directory vidgate writes to and checks that it is writable, so that a missing or read-only
 * data directory stops the start with the path and the setting to change.
 * @throws StartupError naming the first directory that cannot be used.
 */
export function ensureWritableDirs(config: Config): void {
  const dirs: [dir: string, setting: string][] = [
    [config.data_dir, 'data_dir (VIDGATE_DATA_DIR)'],
    [path.dirname(config.store.sqlite_path), 'store.sqlite_path (VIDGATE_STORE__SQLITE_PATH)'],
    [config.assets.dir, 'assets.dir (VIDGATE_ASSETS__DIR)'],
  ];
  for (const [dir, setting] of dirs) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StartupError(`cannot write to directory ${path.resolve(dir)} (${e.code ?? e.message}): make it a writable directory, or set ${setting} to one`);
    }
  }
}

/**
 * The one Outbound of this gateway (src/net/outbound.ts), from `outbound.*`.
 * @throws StartupError when `outbound.ca_file` cannot be read or holds no certificate.
 */
function outboundFromConfig(config: Config, resolve: Resolver | undefined): Outbound {
  try {
    return createOutbound({ ...config.outbound, ...(resolve && { resolve }) });
  } catch (err) {
    throw new StartupError(`${(err as Error).message}: set outbound.ca_file (VIDGATE_OUTBOUND__CA_FILE) to a readable PEM file of CA certificates`);
  }
}

/**
 * The asset store of `assets.*` (local disk, or an S3-compatible bucket).
 * @throws StartupError when a credentials variable that `assets.s3` names is not set.
 */
async function assetStoreFromConfig(config: Config, env: NodeJS.ProcessEnv) {
  try {
    return await createAssetStore(config.assets, env);
  } catch (err) {
    if (err instanceof AssetConfigError) throw new StartupError(`${err.message}: set it, or change the setting`);
    throw err;
  }
}

/**
 * The store of `store.*`.
 * @throws StartupError, one line naming the database (its URL without the password) and what went wrong.
 */
async function openConfiguredStore(config: Config): Promise<Store> {
  try {
    return await openStore(config.store);
  } catch (err) {
    if (config.store.kind !== 'postgres') throw err;
    throw new StartupError(`cannot open the PostgreSQL store at ${withoutPassword(config.store.url)}: ${(err as Error).message}: check store.url (DATABASE_URL) and that the server accepts connections`);
  }
}

/** A connection URL with its password masked; a URL that does not parse is not shown at all. */
function withoutPassword(url: string | undefined): string {
  try {
    const parsed = new URL(url ?? '');
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(store.url, which is not a valid URL)';
  }
}

/** Where the key of the webhook secrets is kept: `webhooks.secrets_key_file`, else `<data_dir>/webhook-secrets.key`. */
const secretsKeyFile = (config: Config) => config.webhooks.secrets_key_file ?? path.join(config.data_dir, 'webhook-secrets.key');

/**
 * The key that encrypts the teams' webhook secrets: VIDGATE_WEBHOOK_SECRETS_KEY (64 hex digits), else the key file
 * (`webhooks.secrets_key_file`, `<data_dir>/webhook-secrets.key` by default), made on first start.
 * @throws StartupError when the variable is not 64 hex digits.
 */
function webhookSecretsKey(config: Config, env: NodeJS.ProcessEnv): Buffer {
  const given = env.VIDGATE_WEBHOOK_SECRETS_KEY;
  if (given !== undefined && given !== '') {
    if (!/^[0-9a-f]{64}$/i.test(given)) throw new StartupError('VIDGATE_WEBHOOK_SECRETS_KEY must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`');
    return Buffer.from(given, 'hex');
  }
  return loadOrCreateKey(secretsKeyFile(config));
}

/**
 * The token `GET /metrics` requires: the value of the variable `metrics.bearer_token_env` names; undefined when no
 * variable is named (the metrics are open).
 * @throws StartupError when the named variable is unset or empty (the metrics would be open by mistake).
 */
function metricsBearerToken(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  const name = config.metrics.bearer_token_env;
  if (name === undefined) return undefined;
  const token = env[name];
  if (!token) throw new StartupError(`metrics.bearer_token_env names ${name}, which is not set: set ${name} to the token Prometheus sends, or remove metrics.bearer_token_env`);
  return token;
}

export async function createGateway(config: Config, options: GatewayOptions = {}) {
  const log = options.log ?? createLogger(config.log_level);
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  ensureWritableDirs(config);
  const metricsToken = metricsBearerToken(config, env);
  const outbound = outboundFromConfig(config, options.resolve);
  const store: Store = options.store ?? (await openConfiguredStore(config));
  const metrics = createMetrics({ teamLabel: config.metrics.team_label, usdPerCredit: config.credits.usd_per_credit });
  const assets = await assetStoreFromConfig(config, env);
  await assets.verify?.().catch((err: Error) => {
    throw new StartupError(`${err.message}: create it, or change assets.s3`);
  });
  const built = providersFromConfig(config, env, outbound, (message, fields) => log.warn(fields, message));
  for (const p of built.disabled) log.warn({ provider: p.id, kind: p.kind, reason: p.reason }, 'provider left out');
  const { sync_interval_ms: syncIntervalMs, ...breaker } = config.routing.breaker;
  const shared = createSharedHealth({ store, breaker, syncIntervalMs, log, now });
  const { health } = shared;
  const imageLinks = config.server.public_url ? createImageLinks(config.server.public_url, path.join(config.data_dir, 'image-link.key'), now) : undefined;
  const router = createRouter(options.providers ?? built.routed, health, { imageLinks: imageLinks !== undefined, probeLease: shared.acquireProbe });
  const retentionMs = config.assets.retention_days * 24 * 3600 * 1000;
  metrics.knowProviders(router.providers.map((p) => ({ id: p.id, models: p.catalog.map((o) => o.model) })));
  const teams = createTeamService(store, config.teams.default_quotas, now, (team) => metrics.knowTeam(team.id));
  const { devKey } = await ensureApiKeys(store, teams, config.auth.api_keys, log);
  for (const team of await store.listTeams()) metrics.knowTeam(team.id);
  metrics.readStateWith({ snapshot: () => store.metricsSnapshot(now()), breakers: () => health.breakerStates() });

  const microUsdPerCredit = toMicroUsd(config.credits.usd_per_credit);
  const cache = createResultCache({ config: config.cache, retentionMs, metrics, log, now });
  const images = createReferenceImages(path.join(config.data_dir, 'images'), {
    maxBytes: config.cache.image_max_bytes,
    timeoutMs: config.cache.image_timeout_ms,
    outbound,
  });
  const secrets = createWebhookSecrets(store, webhookSecretsKey(config, env), now);
  const unreadable = await secrets.unreadableTeams();
  if (unreadable.length > 0) {
    const keySource = env.VIDGATE_WEBHOOK_SECRETS_KEY ? 'VIDGATE_WEBHOOK_SECRETS_KEY' : secretsKeyFile(config);
    log.error({
      teams: unreadable,
      key_source: keySource,
      fix: `restore the key that encrypted them (${keySource}), or rotate each team's secret: POST /admin/teams/{team_id}/webhook-secret (vidgate webhooks secret rotate <team_id>) and give the team the new one`,
    }, 'webhook signing secrets cannot be decrypted with this installation\'s key: their deliveries fail (recorded, then dead-lettered) until fixed');
  }
  let selfUrl = config.server.public_url ?? `http://${config.server.host}:${config.server.port}`;
  const deliverer = createDeliverer({
    store, metrics, log, now, secrets,
    config: config.webhooks,
    render: webhookBodies({ store, baseUrl: () => selfUrl, retentionMs }),
    fetch: (url, init) => outbound.fetch(url, init),
  });
  metrics.countOutboxWith(() => store.outboxCounts());
  const report = createReportSink(metrics, router, () => deliverer.wake());
  const workers = createWorkers({
    store, router, assets, metrics, log, now, cache, images, imageLinks, report,
    config: config.workers,
    pollConcurrency: new Map(config.providers.flatMap((p) => (p.poll_concurrency === undefined ? [] : [[p.id, p.poll_concurrency] as const]))),
    imageReads: { maxBytes: config.cache.image_max_bytes, timeoutMs: config.cache.image_timeout_ms, outbound },
    waitForProviderMs: config.routing.wait_for_provider_ms,
    maxRetryBackoffMs: config.routing.max_retry_backoff_ms,
    microUsdPerCredit,
  });
  const tasks = createTaskService({
    store, router, assets, log, now, cache,
    microUsdPerCredit,
    variants: createVideoVariants(assets),
    images,
    upstreamTimeoutMs: config.workers.upstream_timeout_ms,
    onSubmitted: () => workers.wakeDispatcher(),
    report,
  });
  const webhooks = createWebhookService({
    store, tasks, teams, secrets,
    rotationGraceMs: config.webhooks.rotation_grace_ms,
    onRedeliver: () => deliverer.wake(),
  });
  const providerWebhooks = createProviderWebhooks({
    store, log, now,
    secrets: webhookSecrets(config, env, (message, fields) => log.warn(fields, message)),
    onDue: (providerId) => workers.wakePoller(providerId),
  });
  const healthChecker = createHealthChecker({ router, log, now, metrics, config: config.routing.health_check, onRecovery: () => workers.wake() });
  const sweeper = createRetentionSweeper({ store, assets, metrics, log, retentionMs, intervalMs: config.assets.sweep_interval_ms, now });
  let draining = false;
  const app = createApp({
    store, router, tasks, teams, metrics, log, retentionMs, now, webhooks,
    adminToken: env.VIDGATE_ADMIN_TOKEN || undefined,
    metricsToken,
    bodyLimitBytes: config.server.body_limit_bytes,
    publicUrl: config.server.public_url,
    microUsdPerCredit,
    outbound,
    disabledProviders: built.disabled,
    images,
    imageLinks,
    isDraining: () => draining,
    providerWebhooks,
    validateResponses: options.validateResponses,
    content: createContentSender(assets, config.assets.s3?.presigned_redirect_ttl_s),
  });
  let server: http.Server | undefined;

  return {
    app,
    store,
    router,
    metrics,
    workers,
    /** The webhook deliverer's loop (tests stop it to hold events in the outbox). */
    deliverer,
    secrets,
    teams,
    /** The key created on this first start, to show once; undefined otherwise. */
    devKey,
    /**
     * Listen and start the background loops; resolves with the bound URL.
     * @throws StartupError when the port is taken or not allowed.
     */
    async start(): Promise<string> {
      server = createHttpServer(app, config.server, log);
      const { host, port } = config.server;
      await new Promise<void>((resolve, reject) => {
        server!.once('error', (err: NodeJS.ErrnoException) => {
          const fix = 'stop what holds it, or set server.port (VIDGATE_SERVER__PORT) to a free port';
          if (err.code === 'EADDRINUSE') reject(new StartupError(`port ${port} on ${host} is already in use: ${fix}`));
          else if (err.code === 'EACCES') reject(new StartupError(`not allowed to listen on port ${port} on ${host} (ports below 1024 need privileges): ${fix}`));
          else if (err.code === 'EADDRNOTAVAIL') reject(new StartupError(`${host} is not an address of this machine: set server.host (VIDGATE_SERVER__HOST) to one`));
          // ENOTFOUND and the like: a host name that does not resolve to an address of this machine.
          else reject(new StartupError(`cannot listen on ${host}, port ${port} (${err.code ?? err.message}): set server.host (VIDGATE_SERVER__HOST) to an address of this machine, such as 127.0.0.1 or 0.0.0.0`));
        });
        server!.listen(port, host, resolve);
      });
      shared.start();
      workers.start();
      healthChecker.start();
      sweeper.start();
      deliverer.start();
      const bound = server.address() as AddressInfo;
      const url = `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`;
      selfUrl = config.server.public_url ?? url;
      log.info({ url, store: config.store.kind, assets: config.assets.kind, providers: router.providers.map((p) => p.id) }, 'vidgate started');
      return url;
    },
    /**
     * Graceful stop, bounded by `server.drain_timeout_ms` from the call: `/readyz` answers 503 for
     * `server.drain_readiness_delay_ms` while requests are still served (load balancers stop sending work),
     * then the listener closes, running worker steps and requests finish, and at the deadline the connections
     * still open are destroyed.
     */
    async stop(): Promise<void> {
      const deadline = Date.now() + config.server.drain_timeout_ms;
      draining = true;
      log.info({ drain_timeout_ms: config.server.drain_timeout_ms }, 'vidgate draining');
      sweeper.stop();
      if (server?.listening) await sleep(config.server.drain_readiness_delay_ms);
      await healthChecker.stop();
      const closed = server ? new Promise((r) => server!.close(r)) : Promise.resolve();
      server?.closeIdleConnections();
      await Promise.all([workers.stop(Math.max(0, deadline - Date.now())), deliverer.stop(Math.max(0, deadline - Date.now()))]);
      const cutoff = setTimeout(() => server?.closeAllConnections(), Math.max(0, deadline - Date.now()));
      await closed;
      clearTimeout(cutoff);
      await shared.stop();
      await store.close();
      log.info('vidgate stopped');
    },
  };
}
