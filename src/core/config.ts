// One validated configuration: defaults, then a YAML file, then environment variables.
import fs from 'node:fs';
import path from 'node:path';
import { distance } from 'fastest-levenshtein';
import YAML from 'yaml';
import { z } from 'zod';
import { SIZES } from '../providers/types';
import { isWholeMicroUsd } from '../routing/quote';
import { splitRequestsPerMinute } from './teams';
import { LOG_LEVELS } from './logger';

/** The longest wait Node's timers take (setTimeout, AbortSignal.timeout): 2^31 - 1 ms, about 24.8 days; beyond it they fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;
/** A duration in ms, used with the timers: a positive integer of at most MAX_TIMER_MS. */
const ms = z.number().int().positive().max(MAX_TIMER_MS, `at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest timer Node keeps)`);
/** A positive USD amount of at most 6 decimal places: money is computed in whole micro-USD (routing/quote.ts). */
const usd = z.number().positive().refine(isWholeMicroUsd, 'at most 6 decimal places (whole micro-USD)');

const OfferSchema = z
  .object({
    model: z.string().min(1),
    /** The provider's own name for the model; defaults to `model`. */
    upstream_model: z.string().min(1).optional(),
    usd_per_second: z.object({ standard: usd, high: usd.optional() }).strict(),
    /** Defaults to the 720p sizes, plus the high-tier sizes when a high price is given. */
    sizes: z.array(z.enum(SIZES)).min(1).optional(),
    durations_s: z.array(z.union([z.literal(4), z.literal(8), z.literal(12)])).min(1).default([4, 8, 12]),
    image_input: z.boolean().default(true),
    /** tasks-api only: send `1280x720`-style sizes, or `16:9` plus quality; defaults by model name. */
    aspect_ratio_style: z.enum(['size', 'ratio']).optional(),
  })
  .strict();

/** The name of an environment variable (config files name where secrets are, never hold them). */
const envVariableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');
const providerId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - and _');
const commonProvider = {
  id: providerId,
  max_concurrent: z.number().int().positive().optional(),
  /** The most of its jobs polled at once by one process; defaults to `workers.poll_concurrency`. */
  poll_concurrency: z.number().int().positive().optional(),
};

const HttpProviderSchema = <K extends 'openai' | 'tasks-api'>(kind: K) =>
  z
    .object({
      ...commonProvider,
      kind: z.literal(kind),
      base_url: z.url({ protocol: /^https?$/ }),
      /** The environment variable holding the key; the provider is left out when it is not set. */
      api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
      timeout_ms: ms.default(30_000),
      models: z.array(OfferSchema).min(1),
    })
    .strict();

const ProviderSchema = z.discriminatedUnion('kind', [
  HttpProviderSchema('openai').extend({
    /** The host honours `Idempotency-Key` (OpenAI itself does not): a lost create answer may then be asked again. */
    honours_idempotency_key: z.boolean().default(false),
    /**
     * The environment variable holding the secret (`whsec_...`) the host signs its webhooks with: then its
     * `video.completed`/`video.failed` events are taken at `POST /providers/{id}/webhooks`.
     */
    webhook_secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
  }),
  HttpProviderSchema('tasks-api').extend({
    /** Origins of result links (a CDN) exempt from the outbound URL check; the API's own origin always is. */
    trusted_result_origins: z.array(z.url()).default([]),
  }),
  z
    .object({
      ...commonProvider,
      kind: z.literal('simulated'),
      duration_ms: ms.default(4000),
      failure_rate: z.number().min(0).max(1).default(0),
      failure_kind: z.enum(['retryable', 'terminal']).default('retryable'),
      fps: z.number().int().min(1).max(60).default(24),
      /** Defaults to `<data_dir>/simulated/<id>`. */
      work_dir: z.string().min(1).optional(),
      /** Overrides the built-in catalog (sora-2 and sora-2-pro at OpenAI's published prices). */
      models: z.array(OfferSchema).min(1).optional(),
    })
    .strict(),
]);

export type ProviderConfig = z.infer<typeof ProviderSchema>;
export type OfferConfig = z.infer<typeof OfferSchema>;

const ConfigSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Base of the URLs vidgate puts in `results`; defaults to the request's own host. */
        public_url: z.url().optional(),
        /**
         * The largest JSON body, in bytes. The default holds the largest request the spec allows: a prompt of 32 000
         * code points written as JSON escapes (`\ud83d\ude00`, 12 bytes each: 384 000 bytes; raw UTF-8 is 4 bytes each)
         * plus every other field at its longest, escaped too (about 30 KB).
         */
        body_limit_bytes: z.number().int().positive().default(512 * 1024),
        /** On SIGTERM, the whole drain's deadline: past it, open connections are closed and the process exits. */
        drain_timeout_ms: ms.default(15_000),
        /** At the start of a drain, how long `/readyz` answers 503 before the listener closes. */
        drain_readiness_delay_ms: z.number().int().nonnegative().max(MAX_TIMER_MS).default(5000),
        /** Time a client has to send all request headers; a slower one gets 408. At most request_timeout_ms. */
        headers_timeout_ms: ms.default(10_000),
        /** Time a client has to send the whole request, headers and body; a slower one gets 408. */
        request_timeout_ms: ms.default(30_000),
      })
      .strict()
      .refine((s) => s.drain_readiness_delay_ms < s.drain_timeout_ms, {
        message: 'must be shorter than server.drain_timeout_ms',
        path: ['drain_readiness_delay_ms'],
      })
      .refine((s) => s.headers_timeout_ms <= s.request_timeout_ms, {
        message: 'must not exceed server.request_timeout_ms',
        path: ['headers_timeout_ms'],
      })
      .prefault({}),
    data_dir: z.string().min(1).default('./data'),
    /** The least level written (`debug` to `error`, or `silent`); see src/core/logger.ts. */
    log_level: z.enum(LOG_LEVELS).default('info'),
    store: z
      .object({
        /** `sqlite` (embedded, one process) or `postgres` (several replicas on one database). */
        kind: z.enum(['sqlite', 'postgres']).default('sqlite'),
        sqlite_path: z.string().min(1).optional(),
        /** The PostgreSQL connection URL (also `DATABASE_URL`); required with `kind: postgres`. */
        url: z.string().min(1).optional(),
        /** The PostgreSQL schema holding vidgate's tables (created when missing). */
        schema: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier').default('public'),
        /** PostgreSQL connections per process. */
        pool_size: z.number().int().positive().default(10),
      })
      .strict()
      .refine((s) => s.kind !== 'postgres' || s.url !== undefined, { message: 'store.kind postgres needs store.url (or DATABASE_URL)', path: ['url'] })
      .prefault({}),
    assets: z
      .object({
        /** Where videos are kept: `local` disk (`dir`), or an `s3`-compatible bucket shared by several replicas. */
        kind: z.enum(['local', 's3']).default('local'),
        /** local: the videos and the images made from them; s3: scratch space for files being checked or probed. */
        dir: z.string().min(1).optional(),
        retention_days: z.number().positive().default(30),
        sweep_interval_ms: ms.default(60 * 60 * 1000),
        s3: z
          .object({
            /** The S3-compatible endpoint (MinIO, R2, Ceph...); AWS's regional endpoint when unset. */
            endpoint: z.url({ protocol: /^https?$/ }).optional(),
            bucket: z.string().min(1),
            region: z.string().min(1).default('us-east-1'),
            /** Address the bucket as `<endpoint>/<bucket>` (most self-hosted stores need it). */
            force_path_style: z.boolean().default(false),
            /** Names of the environment variables holding the credentials (never the secrets themselves); both or neither. */
            access_key_id_env: envVariableName.optional(),
            secret_access_key_env: envVariableName.optional(),
            /** Prepended to each object's key, e.g. `vidgate/`. */
            prefix: z.string().regex(/^([A-Za-z0-9_.-]+\/)*$/, 'empty, or path segments each ending in /').default(''),
            /**
             * When set, the content routes answer 302 to a presigned URL of the object valid this many seconds, and
             * the client downloads from the object store itself; when unset, vidgate streams the bytes.
             */
            presigned_redirect_ttl_s: z.number().int().positive().max(7 * 24 * 3600, 'at most 7 days (604800 s), the longest S3 presigns').optional(),
          })
          .strict()
          .refine((s) => (s.access_key_id_env === undefined) === (s.secret_access_key_env === undefined), {
            message: 'give both access_key_id_env and secret_access_key_env, or neither (the SDK\'s default credentials)',
          })
          .optional(),
      })
      .strict()
      .refine((a) => a.kind !== 's3' || a.s3 !== undefined, { message: 'assets.kind s3 needs assets.s3 (at least its bucket)', path: ['s3'] })
      .prefault({}),
    auth: z
      .object({
        /** Plain API keys of the default team; only their hashes are kept in memory and in the store. */
        api_keys: z.array(z.string().min(16, 'an API key needs at least 16 characters')).default([]),
      })
      .strict()
      .prefault({}),
    teams: z
      .object({
        /** Quotas of a team created without its own (the default team included); null is no limit. */
        default_quotas: z
          .object({
            credits_per_day: z.number().int().nonnegative().nullable().default(null),
            credits_per_month: z.number().int().nonnegative().nullable().default(null),
            max_concurrent: z.number().int().positive().nullable().default(null),
            reads_per_minute: z.number().int().positive().nullable().optional(), // 1200
            submits_per_minute: z.number().int().positive().nullable().optional(), // 600
            /** Older configs: sets both of the above, where not given. */
            requests_per_minute: z.number().int().positive().nullable().optional(),
          })
          .strict()
          .transform((given) => {
            const q = splitRequestsPerMinute(given);
            return { ...q, reads_per_minute: q.reads_per_minute === undefined ? 1200 : q.reads_per_minute, submits_per_minute: q.submits_per_minute === undefined ? 600 : q.submits_per_minute };
          })
          .prefault({}),
      })
      .strict()
      .prefault({}),
    workers: z
      .object({
        /** The loops' tick, and the shortest wait between two polls of one job (src/core/poll-schedule.ts). */
        poll_interval_ms: ms.default(1000),
        /** The longest wait between two polls of one running job, unless its provider asks for longer. */
        max_poll_interval_ms: ms.default(15_000),
        lease_ms: ms.default(60_000),
        /** Pending tasks submitted at once by one process (the dispatcher's concurrency and claim size). */
        batch_size: z.number().int().positive().default(64),
        /** Jobs of one provider polled at once by one process, unless the provider sets its own. */
        poll_concurrency: z.number().int().positive().default(64),
        max_attempts: z.number().int().positive().default(3),
        retry_backoff_ms: ms.default(2000),
        /** A task silent upstream for longer than this is resubmitted. */
        upstream_deadline_ms: ms.default(30 * 60 * 1000),
        upstream_timeout_ms: ms.default(30_000),
        /**
         * After a create's answer was lost (timeout, reset), the bound on learning the job it made: the resend
         * under the same idempotency key, or the listing of recent jobs. Failover waits at most this much longer.
         */
        lost_answer_grace_ms: ms.default(5_000),
        /** Bounds a whole video download, body included. */
        download_timeout_ms: ms.default(10 * 60 * 1000),
      })
      .strict()
      .prefault({}),
    cache: z
      .object({
        enabled: z.boolean().default(true),
        /** `team`: a team only ever hits its own results; `global`: every team shares them. */
        scope: z.enum(['team', 'global']).default('team'),
        /** How long a completed result is served to identical requests; never past the video's retention. */
        ttl_ms: ms.default(24 * 60 * 60 * 1000),
        /** What a hit, or a task that follows an identical running one, is charged. */
        hit_credits: z.number().int().nonnegative().default(0),
        /** Results remembered in memory in front of the store's index. */
        memory_entries: z.number().int().positive().default(10_000),
        /** A reference image is keyed by the hash of its bytes, read with these bounds. */
        image_max_bytes: z.number().int().positive().default(20 * 1024 * 1024),
        image_timeout_ms: ms.default(10_000),
      })
      .strict()
      .prefault({}),
    outbound: z
      .object({
        /** Origins exempt from the public-address check of image and callback URLs: a private host, or tests. */
        trusted_origins: z.array(z.url()).default([]),
        /** A PEM file of extra CAs trusted for outbound HTTPS besides the system's (e.g. a private receiver's CA). */
        ca_file: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    webhooks: z
      .object({
        /**
         * The wait before each retry of a failed delivery, in ms: `[1000, 2000, 4000]` tries 4 times in all; after
         * the last retry the event is dead-lettered (kept, listed, redeliverable). Hours are fine.
         */
        retry_schedule_ms: z.array(ms).max(100).default([1000, 2000, 4000]),
        /** One delivery's bound, answer included: a slower receiver's attempt fails. */
        timeout_ms: ms.default(10_000),
        /** Deliveries under way at once in this process, so that slow receivers do not hold up the others. */
        concurrency: z.number().int().positive().default(32),
        /** How often the deliverer looks for due events (it is also woken when events are written). */
        poll_interval_ms: ms.default(1000),
        lease_ms: ms.default(60_000),
        /** After a team's secret is rotated, how long the previous one keeps signing beside the new one. */
        rotation_grace_ms: ms.default(24 * 60 * 60 * 1000),
        /**
         * The file of the key (32 bytes) that encrypts the teams' signing secrets in the store; made on first start.
         * `<data_dir>/webhook-secrets.key` by default. The environment variable VIDGATE_WEBHOOK_SECRETS_KEY
         * (64 hex digits) takes precedence, for deployments that keep keys out of the data directory.
         */
        secrets_key_file: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    credits: z
      .object({
        usd_per_credit: usd.default(0.01),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Label metrics with the team id (`team`); false leaves every `team` label out (very many teams). */
        team_label: z.boolean().default(true),
        /** The environment variable holding a token: when set, `GET /metrics` requires `Authorization: Bearer <token>`. */
        bearer_token_env: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
          .refine((name) => !name.toUpperCase().startsWith('VIDGATE_'), 'VIDGATE_ variables are settings: name another one, e.g. METRICS_TOKEN')
          .optional(),
      })
      .strict()
      .prefault({}),
    providers: z.array(ProviderSchema).min(1).prefault([{ id: 'simulated', kind: 'simulated' }]),
    routing: z
      .object({
        /** How long a task waits for some provider to become available before it fails. */
        wait_for_provider_ms: ms.default(10 * 60 * 1000),
        /** The longest wait before a task goes back to a provider that already failed it (the backoff's cap). */
        max_retry_backoff_ms: ms.default(5000),
        /** Active health checks of providers whose breaker is not closed (a cheap authenticated call each). */
        health_check: z
          .object({
            enabled: z.boolean().default(true),
            /** First check right after a breaker opens; the interval grows by half after each failed check ... */
            min_interval_ms: ms.default(1000),
            /** ... up to this. */
            max_interval_ms: ms.default(2000),
            timeout_ms: ms.default(5000),
          })
          .strict()
          .prefault({}),
        breaker: z
          .object({
            consecutive_failures: z.number().int().positive().default(5),
            error_ratio: z.number().gt(0).max(1).default(0.5),
            window_ms: ms.default(60_000),
            min_calls: z.number().int().positive().default(10),
            cooldown_ms: ms.default(30_000),
            max_cooldown_ms: ms.default(10 * 60 * 1000),
            /** How often a replica reads the breakers the others recorded in the store (src/core/shared-health.ts). */
            sync_interval_ms: ms.default(1000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((c) => new Set(c.providers.map((p) => p.id)).size === c.providers.length, {
    message: 'provider ids must be unique',
    path: ['providers'],
  });

export type Config = z.infer<typeof ConfigSchema> & {
  store: { sqlite_path: string };
  assets: { dir: string };
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const ENV_PREFIX = 'VIDGATE_';
/** VIDGATE_ variables that are not config fields: the config file's path, and secrets or CLI settings. */
const NOT_CONFIG = new Set(['VIDGATE_CONFIG', 'VIDGATE_ADMIN_TOKEN', 'VIDGATE_URL', 'VIDGATE_WEBHOOK_SECRETS_KEY']);
/**
 * What Kubernetes (and Docker links) set in every pod for a Service named `vidgate`: VIDGATE_SERVICE_HOST,
 * VIDGATE_SERVICE_PORT[_<name>], VIDGATE_PORT_<n>_<proto>[_PROTO|_PORT|_ADDR], and VIDGATE_PORT, whose value
 * is a URL such as `tcp://10.0.0.7:8080`. Source: kubernetes.io, "Service", section "Environment variables".
 */
const SERVICE_LINK_NAME = /^VIDGATE_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$/;
const SERVICE_LINK_VALUE = /^(tcp|udp|sctp):\/\//;

type SchemaNode = z.core.$ZodType;

/** The schema without its default, prefault, optional and nullable wrappers. */
function unwrap(node: SchemaNode): SchemaNode {
  // Defaults, optionals and the like wrap an innerType; a transform is a pipe whose input is the field's shape.
  const def = node._zod.def as { type: string; innerType?: SchemaNode; in?: SchemaNode };
  const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
  return inner ? unwrap(inner) : node;
}

function shapeOf(node: SchemaNode): Record<string, SchemaNode> | undefined {
  const def = unwrap(node)._zod.def as { type: string; shape?: Record<string, SchemaNode> };
  return def.type === 'object' ? def.shape : undefined;
}

/** The field at a config path, or undefined if there is none. */
function fieldAt(keys: string[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = ConfigSchema;
  for (const k of keys) node = node && shapeOf(node)?.[k];
  return node;
}

/** Every leaf field's path, e.g. `server.port`. */
function leafPaths(node: SchemaNode = ConfigSchema, prefix: string[] = []): string[][] {
  const shape = shapeOf(node);
  if (!shape) return [prefix];
  return Object.entries(shape).flatMap(([k, child]) => leafPaths(child, [...prefix, k]));
}

const envName = (keys: string[]) => ENV_PREFIX + keys.join('__').toUpperCase();

/** The variable an unknown one was probably meant to be, by edit distance to a field's path or last key. */
function likelyVariable(given: string): string | undefined {
  let best: { keys: string[]; distance: number } | undefined;
  for (const keys of leafPaths()) {
    const d = Math.min(distance(given, keys.join('__')), distance(given, keys.at(-1)!));
    if (!best || d < best.distance) best = { keys, distance: d };
  }
  return best && best.distance <= Math.max(2, Math.floor(given.length / 3)) ? `${envName(best.keys)} (${best.keys.join('.')})` : undefined;
}

/** A variable's text as its field's type: strings stay text, lists of strings split on commas, the rest is JSON. */
function parseEnvValue(field: SchemaNode, raw: string): unknown {
  const def = unwrap(field)._zod.def as { type: string; element?: SchemaNode };
  if (def.type === 'string' || def.type === 'enum') return raw;
  if (def.type === 'array' && def.element && unwrap(def.element)._zod.def.type === 'string') {
    return raw.split(',').map((s) => s.trim()).filter(Boolean);
  }
  try {
    return JSON.parse(raw);
  } catch {
    return raw; // the schema then names the field and the type it expects
  }
}

/**
 * Environment variables map onto the config by path: `VIDGATE_SERVER__PORT=9000` sets `server.port`,
 * `VIDGATE_AUTH__API_KEYS=k1,k2` sets a list of strings; text fields take the text as it is, other fields
 * read it as JSON. `PORT` is honoured as `server.port`; `VIDGATE_CONFIG` names the YAML file;
 * VIDGATE_ADMIN_TOKEN, VIDGATE_URL and VIDGATE_WEBHOOK_SECRETS_KEY are read elsewhere (the admin API, the CLI, the
 * composition root); Kubernetes' service variables are ignored.
 * @throws ConfigError naming each VIDGATE_ variable that is no field, and the one it probably meant.
 */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  return readEnv(env).config;
}

/** configFromEnv, and which variable set each field path (`server.port` → `VIDGATE_SERVER__PORT`). */
function readEnv(env: NodeJS.ProcessEnv): { config: Record<string, unknown>; sources: Map<string, string> } {
  const config: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const unknown: string[] = [];
  const set = (name: string, keys: string[], raw: string) => {
    const field = fieldAt(keys);
    if (!field) {
      const meant = likelyVariable(keys.join('__'));
      unknown.push(`  ${name} is not a vidgate setting${meant ? `: did you mean ${meant}?` : ' (a setting is VIDGATE_ and its path in capitals, levels joined by __, e.g. VIDGATE_SERVER__PORT)'}`);
      return;
    }
    let node = config;
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[keys.at(-1)!] = parseEnvValue(field, raw);
    sources.set(keys.join('.'), name);
  };
  if (env.PORT) set('PORT', ['server', 'port'], env.PORT);
  if (env.DATABASE_URL) set('DATABASE_URL', ['store', 'url'], env.DATABASE_URL);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || NOT_CONFIG.has(name) || raw === undefined) continue;
    if (SERVICE_LINK_NAME.test(name) || (name === 'VIDGATE_PORT' && SERVICE_LINK_VALUE.test(raw))) continue;
    set(name, name.slice(ENV_PREFIX.length).toLowerCase().split('__'), raw);
  }
  if (unknown.length) throw new ConfigError(`invalid configuration:\n${unknown.join('\n')}`);
  return { config, sources };
}

function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeDeep(b, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parse and validate; a bad field stops the start with a message naming it, and the environment variable
 * that set it where `sources` (field path → variable) says.
 * @throws ConfigError listing every bad field.
 */
export function parseConfig(input: unknown, sources: ReadonlyMap<string, string> = new Map()): Config {
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const where = i.path.join('.') || '(root)';
      const from = sources.get(where);
      return `  ${where}${from ? ` (${from})` : ''}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = result.data;
  return {
    ...c,
    store: { ...c.store, sqlite_path: c.store.sqlite_path ?? path.join(c.data_dir, 'vidgate.db') },
    assets: { ...c.assets, dir: c.assets.dir ?? path.join(c.data_dir, 'videos') },
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env.VIDGATE_CONFIG ?? (fs.existsSync('vidgate.yaml') ? 'vidgate.yaml' : undefined);
  let fromFile: unknown = {};
  if (file) {
    try {
      fromFile = YAML.parse(fs.readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    if (!isPlainObject(fromFile)) throw new ConfigError(`config file ${file}: expected a mapping at the top level`);
  }
  const { config, sources } = readEnv(env);
  return parseConfig(mergeDeep(fromFile as Record<string, unknown>, config), sources);
}
