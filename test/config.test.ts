// Configuration: defaults need nothing, files and environment variables layer on top, bad fields are named.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, loadConfig, parseConfig } from '../src/core/config';
import { tempDir } from './support/gateway';
import { startServerProcess } from './support/process';

describe('config', () => {
  it('needs nothing: the defaults are the embedded gateway', () => {
    const c = parseConfig({});
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.store.sqlite_path).toBe(path.join('data', 'vidgate.db'));
    expect(c.assets.dir).toBe(path.join('data', 'videos'));
    expect(c.providers).toEqual([{ id: 'simulated', kind: 'simulated', duration_ms: 4000, failure_rate: 0, failure_kind: 'retryable', fps: 24 }]);
    expect(c.credits.usd_per_credit).toBe(0.01);
  });

  it('names the store: SQLite by default, PostgreSQL with its URL from store.url or DATABASE_URL', () => {
    expect(parseConfig({}).store).toMatchObject({ kind: 'sqlite', schema: 'public', pool_size: 10 });
    expect(() => parseConfig({ store: { kind: 'postgres' } })).toThrow(/store\.url: store\.kind postgres needs store\.url \(or DATABASE_URL\)/);
    const c = loadConfig({ VIDGATE_STORE__KIND: 'postgres', DATABASE_URL: 'postgres://vidgate@127.0.0.1:5432/vidgate' });
    expect(c.store).toMatchObject({ kind: 'postgres', url: 'postgres://vidgate@127.0.0.1:5432/vidgate', schema: 'public' });
    expect(() => parseConfig({ store: { kind: 'postgres', url: 'postgres://x@127.0.0.1/y', schema: 'Bad-Name' } })).toThrow(/store\.schema/);
  });

  it('layers a YAML file and then environment variables', () => {
    const dir = tempDir();
    const file = path.join(dir, 'vidgate.yaml');
    fs.writeFileSync(file, 'server:\n  port: 9000\n  host: 0.0.0.0\ndata_dir: /srv/vidgate\nproviders:\n  - id: sim\n    kind: simulated\n    failure_rate: 0.5\n');
    const c = loadConfig({ VIDGATE_CONFIG: file, VIDGATE_SERVER__PORT: '9100', VIDGATE_AUTH__API_KEYS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb' });
    expect(c.server.port).toBe(9100);
    expect(c.server.host).toBe('0.0.0.0');
    expect(c.store.sqlite_path).toBe('/srv/vidgate/vidgate.db');
    expect(c.providers).toMatchObject([{ id: 'sim', kind: 'simulated', failure_rate: 0.5 }]);
    expect(c.auth.api_keys).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    fs.rmSync(dir, { recursive: true });
  });

  it('leaves the admin token and the CLI URL out of the config', () => {
    expect(() => loadConfig({ VIDGATE_ADMIN_TOKEN: 'secret-admin-token', VIDGATE_URL: 'http://127.0.0.1:8080' })).not.toThrow();
    expect(configFromEnv({ VIDGATE_ADMIN_TOKEN: 'x', VIDGATE_URL: 'y', VIDGATE_CONFIG: 'z' })).toEqual({});
  });

  it('a VIDGATE_ variable that is no setting is named, with the setting it probably meant', () => {
    expect(() => loadConfig({ VIDGATE_PORT: '9000' })).toThrow('VIDGATE_PORT is not a vidgate setting: did you mean VIDGATE_SERVER__PORT (server.port)?');
    let message = '';
    try {
      loadConfig({ VIDGATE_SERVER__PROT: '9000', VIDGATE_DATA_DRI: '/srv', VIDGATE_WORKERS__LEASE: '10', VIDGATE_FROBNICATE: 'x' });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain('VIDGATE_SERVER__PROT is not a vidgate setting: did you mean VIDGATE_SERVER__PORT (server.port)?');
    expect(message).toContain('VIDGATE_DATA_DRI is not a vidgate setting: did you mean VIDGATE_DATA_DIR (data_dir)?');
    expect(message).toContain('VIDGATE_WORKERS__LEASE is not a vidgate setting: did you mean VIDGATE_WORKERS__LEASE_MS (workers.lease_ms)?');
    expect(message).toMatch(/VIDGATE_FROBNICATE is not a vidgate setting \(a setting is VIDGATE_ and its path/);
  });

  it('ignores the variables Kubernetes sets for a service named vidgate', () => {
    const k8s = {
      VIDGATE_SERVICE_HOST: '10.96.0.12',
      VIDGATE_SERVICE_PORT: '8080',
      VIDGATE_SERVICE_PORT_HTTP: '8080',
      VIDGATE_PORT: 'tcp://10.96.0.12:8080',
      VIDGATE_PORT_8080_TCP: 'tcp://10.96.0.12:8080',
      VIDGATE_PORT_8080_TCP_PROTO: 'tcp',
      VIDGATE_PORT_8080_TCP_PORT: '8080',
      VIDGATE_PORT_8080_TCP_ADDR: '10.96.0.12',
    };
    expect(configFromEnv(k8s)).toEqual({});
    expect(loadConfig({ ...k8s, VIDGATE_SERVER__PORT: '9000' }).server.port).toBe(9000);
  });

  it("reads a variable as its field's type: text as text, lists of text split on commas, the rest as JSON", () => {
    expect(configFromEnv({ VIDGATE_DATA_DIR: '2024', VIDGATE_SERVER__HOST: '0', VIDGATE_LOG_LEVEL: 'warn' })).toEqual({ data_dir: '2024', server: { host: '0' }, log_level: 'warn' });
    expect(loadConfig({ VIDGATE_DATA_DIR: '2024' }).store.sqlite_path).toBe(path.join('2024', 'vidgate.db'));
    expect(configFromEnv({ VIDGATE_OUTBOUND__TRUSTED_ORIGINS: 'http://a.internal, http://b.internal' })).toEqual({ outbound: { trusted_origins: ['http://a.internal', 'http://b.internal'] } });
    expect(configFromEnv({ VIDGATE_CACHE__ENABLED: 'false', VIDGATE_TEAMS__DEFAULT_QUOTAS__MAX_CONCURRENT: 'null', VIDGATE_WORKERS__LEASE_MS: '5000' })).toEqual({
      cache: { enabled: false },
      teams: { default_quotas: { max_concurrent: null } },
      workers: { lease_ms: 5000 },
    });
  });

  it('a bad value names the variable that set it', () => {
    expect(() => loadConfig({ VIDGATE_SERVER__PORT: 'eighty' })).toThrow('server.port (VIDGATE_SERVER__PORT): ');
  });

  it('a duration beyond the longest timer Node keeps (2^31 - 1 ms) is refused, naming the setting', () => {
    expect(() => loadConfig({ VIDGATE_WEBHOOKS__TIMEOUT_MS: '2147483648' })).toThrow(/webhooks\.timeout_ms \(VIDGATE_WEBHOOKS__TIMEOUT_MS\): .*at most 2147483647 ms/);
    expect(() => loadConfig({ VIDGATE_WEBHOOKS__RETRY_SCHEDULE_MS: '[1000, 3000000000]' })).toThrow(/webhooks\.retry_schedule_ms/);
    expect(() => loadConfig({ VIDGATE_WORKERS__LEASE_MS: '9999999999' })).toThrow(/workers\.lease_ms/);
    expect(loadConfig({ VIDGATE_WEBHOOKS__TIMEOUT_MS: '2147483647' }).webhooks.timeout_ms).toBe(2_147_483_647);
  });

  it('the readiness delay of a drain must be shorter than its deadline', () => {
    expect(() => parseConfig({ server: { drain_timeout_ms: 5000, drain_readiness_delay_ms: 5000 } })).toThrow('server.drain_readiness_delay_ms: must be shorter than server.drain_timeout_ms');
    expect(parseConfig({ server: { drain_timeout_ms: 5000, drain_readiness_delay_ms: 0 } }).server.drain_readiness_delay_ms).toBe(0);
  });

  it('reads PORT as server.port', () => {
    expect(configFromEnv({ PORT: '3000' })).toEqual({ server: { port: 3000 } });
  });

  it.each([
    [{ server: { port: 'eighty' } }, 'server.port'],
    [{ server: { port: 70000 } }, 'server.port'],
    [{ providers: [{ id: 'sim', kind: 'simulated', failure_rate: 2 }] }, 'providers.0.failure_rate'],
    [{ providers: [{ id: 'a', kind: 'openai', base_url: 'https://x.example', api_key_env: 'K', models: [{ model: 'sora-2', usd_per_second: { standard: -1 } }] }] }, 'providers.0.models.0.usd_per_second.standard'],
    [{ providers: [{ id: 'a', kind: 'tasks-api', base_url: 'ftp://x.example', api_key_env: 'K', models: [{ model: 'sora-2', usd_per_second: { standard: 1 } }] }] }, 'providers.0.base_url'],
    [{ providers: [{ id: 'a', kind: 'carrier-pigeon' }] }, 'providers.0.kind'],
    [{ providers: [{ id: 'a', kind: 'simulated' }, { id: 'a', kind: 'simulated' }] }, 'provider ids must be unique'],
    [{ workers: { poll_interval_ms: -1 } }, 'workers.poll_interval_ms'],
    [{ auth: { api_keys: ['short'] } }, 'auth.api_keys.0'],
    [{ servr: {} }, 'servr'],
  ])('names the bad field of %j', (input, field) => {
    expect(() => parseConfig(input)).toThrow(ConfigError);
    expect(() => parseConfig(input)).toThrow(field);
  });

  it('a wrong config stops the start with a message naming the field, and Kubernetes service variables do not', async () => {
    const dir = tempDir();
    await expect(startServerProcess({ VIDGATE_DATA_DIR: dir, VIDGATE_ROUTING__BREAKER__ERROR_RATIO: '7' })).rejects.toThrow(/exited \(1\)[\s\S]*routing\.breaker\.error_ratio \(VIDGATE_ROUTING__BREAKER__ERROR_RATIO\)/);
    await expect(startServerProcess({ VIDGATE_DATA_DIR: dir, VIDGATE_PORT: '9000' })).rejects.toThrow(/exited \(1\)[\s\S]*did you mean VIDGATE_SERVER__PORT/);
    const server = await startServerProcess({ VIDGATE_DATA_DIR: dir, VIDGATE_SERVER__PORT: '0', VIDGATE_PORT: 'tcp://10.96.0.12:8080', VIDGATE_SERVICE_HOST: '10.96.0.12', VIDGATE_PORT_8080_TCP_ADDR: '10.96.0.12' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 90_000);

  it('a first start with no keys creates a development key and prints a ready curl line', async () => {
    const dir = tempDir();
    const server = await startServerProcess({ VIDGATE_DATA_DIR: dir, VIDGATE_SERVER__PORT: '0', VIDGATE_AUTH__API_KEYS: '' });
    const key = /^\s+(vg_\S+)$/m.exec(server.output())?.[1];
    expect(key).toBeDefined();
    expect(server.output()).toContain(`curl -s ${server.url}/v1/videos/generations -H 'Authorization: Bearer ${key}'`);
    const res = await fetch(`${server.url}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    // Only a hash is stored.
    for (const f of fs.readdirSync(dir).filter((n) => n.startsWith('vidgate.db'))) {
      expect(fs.readFileSync(path.join(dir, f)).includes(Buffer.from(key!))).toBe(false);
    }
    server.child.kill('SIGTERM');
    await server.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('a simulated provider on a shared database', () => {
  it('warns when its jobs would stay in one replica\'s data_dir, and not once it has a shared work_dir', async () => {
    const { providersFromConfig } = await import('../src/core/providers-from-config');
    const { createOutbound } = await import('../src/net/outbound');
    const outbound = createOutbound({ trusted_origins: [] });
    const warnings = (providers: object[]) => {
      const said: string[] = [];
      const config = parseConfig({ data_dir: tempDir(), store: { kind: 'postgres', url: 'postgres://127.0.0.1/x' }, providers });
      providersFromConfig(config, {}, outbound, (message) => void said.push(message));
      return said;
    };
    expect(warnings([{ id: 'sim', kind: 'simulated' }])).toEqual([expect.stringContaining('set one shared work_dir')]);
    expect(warnings([{ id: 'sim', kind: 'simulated', work_dir: tempDir() }])).toEqual([]);
  });
});
