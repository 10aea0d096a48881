// One validated configuration: defaults, then a YAML file, then environment variables.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';

const ms = z.number().int().positive();

const ConfigSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Base of the URLs vidgate puts in `results`; defaults to the request's own host. */
        public_url: z.url().optional(),
        body_limit_bytes: z.number().int().positive().default(64 * 1024),
        drain_timeout_ms: ms.default(15_000),
      })
      .strict()
      .prefault({}),
    data_dir: z.string().min(1).default('./data'),
    log_level: z.enum(['info', 'warn', 'silent']).default('info'),
    store: z
      .object({
        sqlite_path: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    assets: z
      .object({
        dir: z.string().min(1).optional(),
        retention_days: z.number().positive().default(30),
        sweep_interval_ms: ms.default(60 * 60 * 1000),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /** Plain API keys accepted by the gateway; only their hashes are kept in memory and in the store. */
        api_keys: z.array(z.string().min(16, 'an API key needs at least 16 characters')).default([]),
      })
      .strict()
      .prefault({}),
    workers: z
      .object({
        poll_interval_ms: ms.default(1000),
        lease_ms: ms.default(60_000),
        batch_size: z.number().int().positive().default(16),
        max_attempts: z.number().int().positive().default(3),
        retry_backoff_ms: ms.default(2000),
        /** A task silent upstream for longer than this is resubmitted. */
        upstream_deadline_ms: ms.default(30 * 60 * 1000),
        upstream_timeout_ms: ms.default(30_000),
      })
      .strict()
      .prefault({}),
    credits: z
      .object({
        usd_per_credit: z.number().positive().default(0.01),
      })
      .strict()
      .prefault({}),
    simulated: z
      .object({
        enabled: z.boolean().default(true),
        duration_ms: ms.default(4000),
        failure_rate: z.number().min(0).max(1).default(0),
        failure_kind: z.enum(['retryable', 'terminal']).default('retryable'),
        fps: z.number().int().min(1).max(60).default(24),
        work_dir: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema> & {
  store: { sqlite_path: string };
  assets: { dir: string };
  simulated: { work_dir: string };
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const ENV_PREFIX = 'VIDGATE_';

/**
 * Environment variables map onto the config by path: `VIDGATE_SERVER__PORT=9000` sets `server.port`,
 * `VIDGATE_AUTH__API_KEYS=k1,k2` sets a list. Values are read as JSON where they parse, else as text.
 * `PORT` is honoured as `server.port`; `VIDGATE_CONFIG` names the YAML file.
 */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (keys: string[], raw: string) => {
    let node = out;
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[keys.at(-1)!] = parseEnvValue(keys.at(-1)!, raw);
  };
  if (env.PORT) set(['server', 'port'], env.PORT);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === 'VIDGATE_CONFIG' || raw === undefined) continue;
    set(name.slice(ENV_PREFIX.length).toLowerCase().split('__'), raw);
  }
  return out;
}

function parseEnvValue(key: string, raw: string): unknown {
  if (key === 'api_keys') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
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

/** Parse and validate; a bad field stops the start with a message naming it. */
export function parseConfig(input: unknown): Config {
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = result.data;
  return {
    ...c,
    store: { sqlite_path: c.store.sqlite_path ?? path.join(c.data_dir, 'vidgate.db') },
    assets: { ...c.assets, dir: c.assets.dir ?? path.join(c.data_dir, 'videos') },
    simulated: { ...c.simulated, work_dir: c.simulated.work_dir ?? path.join(c.data_dir, 'simulated') },
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
  return parseConfig(mergeDeep(fromFile as Record<string, unknown>, configFromEnv(env)));
}
