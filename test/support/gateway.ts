// A real gateway for tests: real SQLite file (or PostgreSQL: TEST_STORE), real disk, the real simulated provider (fast settings).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import ffprobe from '@ffprobe-installer/ffprobe';
import supertest from 'supertest';
import { parseConfig } from '../../src/core/config';
import { createGateway, type GatewayOptions } from '../../src/core/gateway';
import { createLogger } from '../../src/core/logger';
import { newPostgresSchema, postgresUrl } from './postgres';

export const KEY_A = 'test-key-team-a-0123456789';
export const KEY_B = 'test-key-team-b-0123456789';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export function tempDir(prefix = 'vidgate-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Config overrides for tests, deep-merged one level under each section. */
export type ConfigOverrides = { [section: string]: Record<string, unknown> | unknown };

/**
 * The store of a test gateway: its data directory's SQLite file, or with TEST_STORE=postgres a fresh schema of
 * the run's PostgreSQL database (a second gateway made from the same config is a second replica on it).
 */
function testStore(): Record<string, unknown> {
  const kind = process.env.TEST_STORE ?? 'sqlite';
  if (kind === 'sqlite') return {};
  if (kind !== 'postgres') throw new Error(`TEST_STORE must be sqlite or postgres, not ${kind}`);
  return { kind: 'postgres', url: postgresUrl(), schema: newPostgresSchema(), pool_size: 5 };
}

export function testConfig(dataDir: string, overrides: ConfigOverrides = {}) {
  const base: Record<string, Record<string, unknown>> = {
    server: { port: 0, drain_readiness_delay_ms: 0 },
    auth: { api_keys: [KEY_A] },
    workers: { poll_interval_ms: 50, retry_backoff_ms: 50, lease_ms: 5000 },
    // Most tests submit identical requests and expect each to generate; the cache tests turn it on.
    cache: { enabled: false },
    store: testStore(),
  };
  const merged: Record<string, unknown> = {
    data_dir: dataDir,
    log_level: 'silent',
    providers: [{ id: 'simulated', kind: 'simulated', duration_ms: 300, fps: 4 }],
  };
  for (const key of new Set([...Object.keys(base), ...Object.keys(overrides)])) {
    const o = overrides[key];
    merged[key] = typeof o === 'object' && o !== null && !Array.isArray(o) ? { ...base[key], ...o } : (o ?? base[key] ?? merged[key]);
  }
  return parseConfig(merged);
}

export async function startTestGateway(overrides: ConfigOverrides = {}, options: GatewayOptions = {}) {
  const dir = tempDir();
  const config = testConfig(dir, overrides);
  const gateway = await createGateway(config, {
    log: createLogger('silent'),
    validateResponses: true,
    ...options,
    env: { VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...options.env },
  });
  // KEY_A belongs to the default team (from the config), KEY_B to a second team.
  const teamB = await gateway.teams.createTeam('team-b');
  await gateway.teams.addKey(teamB.id, { name: 'b' }, KEY_B);
  const url = await gateway.start();
  return {
    gateway,
    config,
    dir,
    url,
    teamB,
    http: supertest(gateway.app),
    async close() {
      await gateway.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const auth = (key: string) => ({ Authorization: `Bearer ${key}` });

export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface VideoFacts {
  codec: string;
  width: number;
  height: number;
  duration_s: number;
}

/** What ffprobe says of an MP4; throws when ffprobe rejects the file. */
export function probeVideo(file: string): VideoFacts {
  const out = spawnSync(ffprobe.path, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height:format=duration', '-of', 'json', file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`ffprobe rejected ${file}: ${out.stderr}`);
  const json = JSON.parse(out.stdout) as { streams: { codec_name: string; width: number; height: number }[]; format: { duration: string } };
  const s = json.streams[0]!;
  return { codec: s.codec_name, width: s.width, height: s.height, duration_s: Number(json.format.duration) };
}
