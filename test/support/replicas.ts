// Several real vidgate processes (replicas) on one PostgreSQL schema and one S3-compatible bucket (s3rver), with one
// fake upstream (the tasks API, or the OpenAI shape honouring idempotency keys): what test/replicas.test.ts and test/replicas-chaos.test.ts start. Each replica has its
// own data directory (scratch space only) and port; they share the store, the bucket and the webhook secrets key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { ADMIN_TOKEN, tempDir } from './gateway';
import type { FakeOpenAI } from './fake-openai';
import type { FakeTasksApi } from './fake-tasks-api';
import { freePort } from './free-port';
import { startServerProcess, type ServerProcess } from './process';
import { S3RVER_CREDENTIALS, type TestS3 } from './s3-server';

/** The model and the request every replica test submits: 16:9, 4 s, 100 credits at $0.25/s. */
export const MODEL = 'sora-2';
export const SHAPE = { size: '1280x720', seconds: 4 } as const;
export const CREDITS_PER_TASK = 100;
export const taskBody = (prompt: string, extra: object = {}) => ({ model: MODEL, prompt, aspect_ratio: '16:9', duration: 4, ...extra });

export interface ReplicaSetup {
  postgresUrl: string;
  schema: string;
  s3: TestS3;
  /**
   * The one provider: a fake tasks API, or a fake OpenAI-shaped host that honours `Idempotency-Key` (so a create
   * whose answer a kill lost is sent again under its key, and makes no second job).
   */
  upstream: { kind: 'tasks-api'; fake: FakeTasksApi } | { kind: 'openai'; fake: FakeOpenAI };
  /** Extra VIDGATE_ settings (e.g. the webhook receiver's CA), the same for every replica. */
  extraEnv?: Record<string, string>;
}

/** One replica: its fixed port (kept across restarts) and its current process, if running. */
export interface Replica {
  index: number;
  port: number;
  url: string;
  env: Record<string, string>;
  process?: ServerProcess;
  /** Output of every process this replica ran (each start appends one). */
  outputs: (() => string)[];
}

/** The env of replica `index`: a PostgreSQL store on `schema`, videos in the s3rver bucket under `videos/`. */
export function replicaEnv(setup: ReplicaSetup, dataDir: string, port: number, secretsKeyHex: string): Record<string, string> {
  return {
    VIDGATE_DATA_DIR: dataDir,
    VIDGATE_SERVER__PORT: String(port),
    VIDGATE_SERVER__DRAIN_TIMEOUT_MS: '5000',
    VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    VIDGATE_LOG_LEVEL: 'info',
    VIDGATE_STORE__KIND: 'postgres',
    VIDGATE_STORE__URL: setup.postgresUrl,
    VIDGATE_STORE__SCHEMA: setup.schema,
    VIDGATE_STORE__POOL_SIZE: '5',
    VIDGATE_ASSETS__KIND: 's3',
    VIDGATE_ASSETS__S3: JSON.stringify({
      endpoint: setup.s3.endpoint,
      bucket: setup.s3.bucket,
      force_path_style: true,
      access_key_id_env: 'REPLICA_S3_KEY_ID',
      secret_access_key_env: 'REPLICA_S3_SECRET',
      prefix: 'videos/',
    }),
    REPLICA_S3_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    REPLICA_S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey,
    // One key for every replica: a team's signing secret stored by one is read by the others.
    VIDGATE_WEBHOOK_SECRETS_KEY: secretsKeyHex,
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
    VIDGATE_WORKERS__RETRY_BACKOFF_MS: '100',
    VIDGATE_WORKERS__LEASE_MS: '2000',
    VIDGATE_WEBHOOKS__POLL_INTERVAL_MS: '200',
    VIDGATE_WEBHOOKS__RETRY_SCHEDULE_MS: '[200, 400, 800, 1600, 3200]',
    REPLICA_UPSTREAM_KEY: setup.upstream.fake.apiKey,
    VIDGATE_PROVIDERS: JSON.stringify([
      {
        id: 'upstream',
        kind: setup.upstream.kind,
        base_url: setup.upstream.fake.url,
        api_key_env: 'REPLICA_UPSTREAM_KEY',
        timeout_ms: 10_000,
        ...(setup.upstream.kind === 'openai' && { honours_idempotency_key: true }),
        models: [{ model: MODEL, usd_per_second: { standard: 0.25 } }],
      },
    ]),
    ...setup.extraEnv,
  };
}

/**
 * Starts `count` replicas at once (they migrate the schema together, under its advisory lock).
 * `cleanup` SIGKILLs whatever still runs and removes the data directories.
 */
export async function startReplicas(setup: ReplicaSetup, count: number): Promise<{ replicas: Replica[]; cleanup: () => Promise<void> }> {
  const secretsKeyHex = crypto.randomBytes(32).toString('hex');
  const dirs: string[] = [];
  const replicas: Replica[] = [];
  for (let index = 0; index < count; index++) {
    const dataDir = tempDir('vidgate-replica-');
    dirs.push(dataDir);
    const port = await freePort();
    replicas.push({ index, port, url: `http://127.0.0.1:${port}`, env: replicaEnv(setup, dataDir, port, secretsKeyHex), outputs: [] });
  }
  const cleanup = async () => {
    await Promise.all(replicas.map((r) => killReplica(r)));
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  };
  try {
    await Promise.all(replicas.map((r) => restartReplica(r)));
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { replicas, cleanup };
}

/** Starts the replica's process again on its port (it must not run). */
export async function restartReplica(replica: Replica): Promise<void> {
  const proc = await startServerProcess(replica.env);
  replica.process = proc;
  replica.outputs.push(proc.output);
}

/** SIGKILLs the replica's process, if it runs, and waits for its exit. */
export async function killReplica(replica: Replica): Promise<void> {
  const proc = replica.process;
  replica.process = undefined;
  if (!proc) return;
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  await proc.exited;
}

/** Calls an admin route on `url` with the test admin token; throws on a non-2xx answer. */
export async function admin<T>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Every completion the replicas' logs show, as task ids (one per `task completed` line). */
export function completionsLogged(replicas: Replica[]): string[] {
  const lines = replicas.flatMap((r) => r.outputs.map((o) => o())).join('\n').split('\n');
  return lines
    .filter((l) => l.startsWith('{'))
    .map((l) => { try { return JSON.parse(l) as { msg?: string; task_id?: string }; } catch { return {}; } })
    .filter((e) => e.msg === 'task completed' && e.task_id)
    .map((e) => e.task_id!);
}
