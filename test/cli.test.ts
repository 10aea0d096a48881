// The command line (`npx vidgate ...`) against a running gateway: teams, keys and usage through runCli (with
// --json, as a script would), tables for people, and the exit codes: 2 usage error, 1 API error, 3 unreachable.
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../src/cli';
import { ADMIN_TOKEN, auth, startTestGateway, waitFor } from './support/gateway';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  // Response validation off, as a real server runs: with it on, key creation answers 500 (see admin.test.ts).
  h = await startTestGateway({});
  env = { VIDGATE_URL: h.url, VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN };
});
afterAll(async () => {
  await h.close();
});

/** Runs the CLI as people do; returns its exit code and what it wrote. */
async function human(args: string[], environment: NodeJS.ProcessEnv = env) {
  let out = '';
  let err = '';
  const code = await runCli(args, environment, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

/** Runs the CLI with --json; returns its exit code and what it printed (parsed as JSON where it is JSON). */
async function cli(args: string[], environment: NodeJS.ProcessEnv = env) {
  const { code, out: text, err } = await human(['--json', ...args], environment);
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { code, text, json, err };
}

const models = (key: string) => fetch(`${h.url}/v1/models`, { headers: auth(key) });
const nowS = () => Math.floor(Date.now() / 1000);

describe('teams', () => {
  it('create, list and update', async () => {
    const created = await cli(['teams', 'create', 'CLI Team', '--credits-per-day', '500', '--max-concurrent', '3']);
    expect(created.code).toBe(0);
    expect(created.json).toMatchObject({ object: 'team', name: 'CLI Team', quotas: { credits_per_day: 500, credits_per_month: null, max_concurrent: 3, reads_per_minute: 1200, submits_per_minute: 600 } });
    const id = created.json.id as string;
    expect((await h.gateway.store.getTeam(id))?.name).toBe('CLI Team');

    const list = await cli(['teams', 'list']);
    expect(list.code).toBe(0);
    expect(list.json.data.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['default', 'team-b', 'CLI Team']));

    const updated = await cli(['teams', 'update', id, '--name', 'CLI Team 2', '--credits-per-day', 'none', '--reads-per-minute', '30', '--submits-per-minute', '20']);
    expect(updated.code).toBe(0);
    expect(updated.json).toMatchObject({ id, name: 'CLI Team 2', quotas: { credits_per_day: null, max_concurrent: 3, reads_per_minute: 30, submits_per_minute: 20 } });
    expect(await h.gateway.store.getTeam(id)).toMatchObject({ name: 'CLI Team 2', credits_per_day: null, reads_per_minute: 30, submits_per_minute: 20 });
  });

  it('an API error exits 1 and prints the error', async () => {
    const dup = await cli(['teams', 'create', 'team-b']);
    expect(dup.code).toBe(1);
    expect(dup.json.error).toMatchObject({ code: 'team_exists', type: 'conflict_error' });
    const missing = await cli(['teams', 'update', 'team_nope', '--name', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.json.error.code).toBe('team_not_found');
    const wrongToken = await cli(['teams', 'list'], { ...env, VIDGATE_ADMIN_TOKEN: 'not-the-admin-token-0000' });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.json.error).toMatchObject({ code: 'invalid_api_key', type: 'authentication_error' });
  });
});

describe('keys', () => {
  let teamId: string;
  beforeAll(async () => {
    teamId = (await cli(['teams', 'create', 'CLI keys'])).json.id;
  });

  it('create prints the key once, and it works against /v1/models; list never shows it', async () => {
    const expires = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
    const created = await cli(['keys', 'create', teamId, '--name', 'ci', '--models', 'sora-2, sora-2-pro', '--expires-at', expires, '--credits-per-day', '40']);
    expect(created.code).toBe(0);
    expect(created.json).toMatchObject({
      object: 'api_key',
      team_id: teamId,
      name: 'ci',
      expires_at: Math.floor(Date.parse(expires) / 1000),
      allowed_models: ['sora-2', 'sora-2-pro'],
      quotas: { credits_per_day: 40, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null },
      key: expect.stringMatching(/^vg_/),
    });
    const key = created.json.key as string;
    expect(key.startsWith(created.json.prefix)).toBe(true);
    const res = await models(key);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { object: string }).object).toBe('list');

    const list = await cli(['keys', 'list', teamId]);
    expect(list.code).toBe(0);
    expect(list.json.data.map((k: { id: string }) => k.id)).toContain(created.json.id);
    expect(list.text).not.toContain(key);
  });

  it("webhooks: creates, shows and rotates a team's signing secret, and lists its dead letters", async () => {
    const made = await cli(['webhooks', 'secret', 'rotate', teamId]);
    expect(made.code).toBe(0);
    expect(made.json).toMatchObject({ object: 'webhook_secret', team_id: teamId, secret: expect.stringMatching(/^whsec_/) });
    expect((await cli(['webhooks', 'secret', 'show', teamId])).json.secret).toBe(made.json.secret);
    const rotated = await cli(['webhooks', 'secret', 'rotate', teamId, '--grace-seconds', '60']);
    expect(rotated.json.secret).not.toBe(made.json.secret);
    expect(rotated.json.previous_expires_at - rotated.json.created).toBe(60);
    expect((await cli(['webhooks', 'secret', 'rotate', teamId, '--grace-seconds', 'soon'])).code).toBe(2);
    expect((await cli(['webhooks', 'dead-letters', teamId])).json).toEqual({ object: 'list', data: [] });
    expect((await cli(['webhooks', 'dead-letters', teamId, '--limit', '5'])).json).toEqual({ object: 'list', data: [] });
    expect((await cli(['webhooks', 'dead-letters', teamId, '--limit', '0'])).code).toBe(2);
    expect((await cli(['webhooks', 'secret', 'show', 'team_nope'])).code).toBe(1);
  });

  it('update, rotate (at once and with a grace period) and revoke', async () => {
    const created = await cli(['keys', 'create', teamId, '--name', 'svc', '--models', 'sora-2']);
    const first = created.json as { id: string; key: string };
    const pro = () =>
      fetch(`${h.url}/v1/videos/generations`, { method: 'POST', headers: { ...auth(current), 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'sora-2-pro', prompt: 'cli' }) });
    let current = first.key;
    expect((await pro()).status).toBe(403);

    const updated = await cli(['keys', 'update', first.id, '--name', 'svc 2', '--models', 'all', '--max-concurrent', '2']);
    expect(updated.code).toBe(0);
    expect(updated.json).toMatchObject({ id: first.id, name: 'svc 2', allowed_models: null, quotas: { max_concurrent: 2 } });
    expect(updated.text).not.toContain(first.key);
    expect((await pro()).status).toBe(202);

    const rotated = await cli(['keys', 'rotate', first.id]);
    expect(rotated.code).toBe(0);
    expect(rotated.json).toMatchObject({ name: 'svc 2', team_id: teamId, quotas: { max_concurrent: 2 } });
    expect(rotated.json.id).not.toBe(first.id);
    expect((await models(rotated.json.key)).status).toBe(200);
    expect((await models(first.key)).status).toBe(401);

    const graceful = await cli(['keys', 'rotate', rotated.json.id, '--grace-seconds', '60']);
    expect(graceful.code).toBe(0);
    expect((await models(graceful.json.key)).status).toBe(200);
    expect((await models(rotated.json.key)).status).toBe(200); // still within its grace period
    const old = (await cli(['keys', 'list', teamId])).json.data.find((k: { id: string }) => k.id === rotated.json.id);
    expect(old.expires_at).toBeGreaterThanOrEqual(nowS() + 58);
    expect(old.expires_at).toBeLessThanOrEqual(nowS() + 60);

    const revoked = await cli(['keys', 'revoke', graceful.json.id]);
    expect(revoked.code).toBe(0);
    expect(revoked.json).toMatchObject({ id: graceful.json.id, revoked_at: expect.any(Number) });
    expect((await models(graceful.json.key)).status).toBe(401);
    // A revoked key cannot be rotated: the API says so, and the CLI exits 1.
    const again = await cli(['keys', 'rotate', graceful.json.id]);
    expect(again.code).toBe(1);
    expect(again.json.error.code).toBe('key_revoked');
  });

  it('--expires-at none clears an expiry', async () => {
    const k = (await cli(['keys', 'create', teamId, '--expires-at', new Date(Date.now() + 3600_000).toISOString()])).json;
    expect(k.expires_at).not.toBeNull();
    const cleared = await cli(['keys', 'update', k.id, '--expires-at', 'none']);
    expect(cleared.json.expires_at).toBeNull();
  });
});

describe('usage', () => {
  it("shows every team's usage, or one team's, with what its tasks spent", async () => {
    const team = (await cli(['teams', 'create', 'CLI spenders'])).json;
    const key = (await cli(['keys', 'create', team.id])).json.key as string;
    const submitted = await fetch(`${h.url}/v1/videos/generations`, {
      method: 'POST',
      headers: { ...auth(key), 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'sora-2', prompt: 'cli usage', duration: 4 }),
    });
    const id = ((await submitted.json()) as { id: string }).id;
    await waitFor(async () => (((await (await fetch(`${h.url}/v1/tasks/${id}`, { headers: auth(key) })).json()) as { status: string }).status === 'completed' ? true : undefined));

    const one = await cli(['usage', team.id]);
    expect(one.code).toBe(0);
    expect(one.json).toMatchObject({ object: 'usage', team: { id: team.id, name: 'CLI spenders' }, totals: { credits: 40, usd: 0.4, tasks: 1 } });
    expect(one.json.spend).toEqual([{ day: one.json.day, model: 'sora-2', provider: 'simulated', tasks: 1, credits: 40, usd: 0.4 }]);

    const all = await cli(['usage']);
    expect(all.code).toBe(0);
    expect(all.json.object).toBe('list');
    const mine = all.json.data.find((u: { team: { id: string } }) => u.team.id === team.id);
    expect(mine.totals).toEqual(one.json.totals);
    expect(all.json.data.map((u: { team: { name: string } }) => u.team.name)).toEqual(expect.arrayContaining(['default', 'team-b', 'CLI spenders']));

    const unknown = await cli(['usage', 'team_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.json.error.code).toBe('team_not_found');
  });
});

describe('tables for people', () => {
  it('a list is a table with a column per field; one object is a field/value table', async () => {
    const list = await human(['teams', 'list']);
    expect(list.code).toBe(EXIT.ok);
    const header = list.out.split('\n').find((l) => l.includes('name'))!;
    for (const column of ['id', 'name', 'quotas.credits_per_day', 'quotas.reads_per_minute']) expect(header).toContain(column);
    expect(list.out).toMatch(/│ team-b +│/);
    expect(list.out).toMatch(/│ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +│/); // created, as a date
    const usage = await human(['usage', h.teamB.id]);
    expect(usage.out).toMatch(/│ totals\.credits +│ \d+ +│/);
    expect(usage.out).toMatch(/│ quotas\.team\.submits_per_minute\.limit +│ 600 +│/);
    const created = await human(['keys', 'create', h.teamB.id, '--name', 'table', '--expires-at', '2030-01-02T03:04:05Z']);
    expect(created.code).toBe(EXIT.ok);
    expect(created.out).toMatch(/│ name +│ table +│/);
    expect(created.out).toMatch(/│ expires_at +│ 2030-01-02T03:04:05Z +│/);
    expect(created.out).toMatch(/│ key +│ vg_\S+ +│/);
    expect(created.out).toContain('shown only this once');
    expect(() => JSON.parse(created.out)).toThrow();
  });

  it('an API error is one line on stderr', async () => {
    const missing = await human(['teams', 'update', 'team_nope', '--name', 'x']);
    expect(missing.code).toBe(EXIT.apiError);
    expect(missing.out).toBe('');
    expect(missing.err).toMatch(/^vidgate: 404 team_not_found: .+\n$/);
  });
});

describe('usage errors (exit 2, nothing sent)', () => {
  it('no command prints the help and exits 2; --help, help per command and --version exit 0', async () => {
    const none = await human([]);
    expect(none.code).toBe(EXIT.usage);
    expect(none.err).toMatch(/^Usage: vidgate \[options\] \[command\]/);
    expect(none.err).toContain('Exit codes: 0 done, 1 the gateway refused');
    const help = await human(['--help']);
    expect(help.code).toBe(EXIT.ok);
    expect(help.out).toContain('VIDGATE_ADMIN_TOKEN');
    const rotate = await human(['keys', 'rotate', '--help']);
    expect(rotate.code).toBe(EXIT.ok);
    expect(rotate.out).toMatch(/Usage: vidgate keys rotate \[options\] <key_id>[\s\S]*--grace-seconds <n>/);
    const version = await human(['--version']);
    expect(version.code).toBe(EXIT.ok);
    expect(version.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it.each([
    [['teams', 'delete', 'x'], /unknown command 'delete'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['keys'], /Usage: vidgate keys/],
    [['keys', 'list'], /missing required argument 'team_id'/],
    [['keys', 'revoke'], /missing required argument 'key_id'/],
    [['teams', 'create'], /missing required argument 'name'/],
    [['teams', 'create', 'x', '--credits-per-day', 'lots'], /--credits-per-day <n>' argument 'lots' is invalid/],
    [['keys', 'create', 'team_x', '--expires-at', 'someday'], /--expires-at <date>' argument 'someday' is invalid/],
    [['teams', 'adjust', 'team_x', '--credits', '5'], /required option '--note <text>' not specified/],
  ])('%j', async (args, message) => {
    const before = (await h.gateway.store.listTeams()).length;
    const run = await human(args);
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toMatch(message);
    expect((await h.gateway.store.listTeams()).length).toBe(before);
  });

  it('a missing admin token says the gateway must be started with it', async () => {
    const run = await human(['teams', 'create', 'tokenless'], { VIDGATE_URL: h.url });
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain('the gateway must be started with the same VIDGATE_ADMIN_TOKEN');
    expect(await h.gateway.store.findTeamByName('tokenless')).toBeUndefined();
  });
});

describe('a gateway that cannot serve the command', () => {
  it('nobody listening: exit 3, "cannot reach vidgate at <url>"', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
    await new Promise((r) => probe.close(r));
    for (const run of [await human(['teams', 'list'], { ...env, VIDGATE_URL: url }), await human(['--url', url, 'teams', 'list'])]) {
      expect(run.code).toBe(EXIT.unreachable);
      expect(run.err).toBe(`vidgate: cannot reach vidgate at ${url} (ECONNREFUSED): is the gateway running there? Set VIDGATE_URL or --url\n`);
    }
  });

  it('something else answering (an HTML page, or JSON from another service): exit 3, not a silent success', async () => {
    const other = http.createServer((req, res) => {
      if (req.url?.startsWith('/admin/teams')) res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>hello</html>');
      else res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(other.address() as net.AddressInfo).port}`;
    try {
      for (const args of [['teams', 'create', 'zz'], ['--json', 'teams', 'list'], ['keys', 'list', 'team_x']]) {
        const run = await human(['--url', url, ...args]);
        expect({ args, code: run.code, out: run.out }).toEqual({ args, code: EXIT.unreachable, out: '' });
        expect(run.err).toMatch(new RegExp(`^vidgate: what answers at ${url} is not vidgate \\(HTTP (200|404), text/`));
      }
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('the admin API off: says to start the gateway with VIDGATE_ADMIN_TOKEN', async () => {
    const off = await startTestGateway({}, { env: { VIDGATE_ADMIN_TOKEN: '' } });
    try {
      const run = await human(['teams', 'list'], { ...env, VIDGATE_URL: off.url });
      expect(run.code).toBe(EXIT.apiError);
      expect(run.err).toBe(`vidgate: the admin API of the gateway at ${off.url} is off: start the gateway with VIDGATE_ADMIN_TOKEN set, and use the same token here\n`);
    } finally {
      await off.close();
    }
  });
});

describe('the vidgate command', () => {
  it('exits 2 on a usage error, 1 on an API error, 3 when unreachable and 0 on success', async () => {
    const run = (args: string[], environment: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ['bin/vidgate.js', ...args], { env: { PATH: process.env.PATH, ...environment } }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
        );
      });
    const [usageError, apiError, unreachable, ok] = await Promise.all([
      run(['teams', 'delete', 'x'], env),
      run(['--json', 'teams', 'update', 'team_nope', '--name', 'x'], env),
      run(['teams', 'list'], { ...env, VIDGATE_URL: 'http://127.0.0.1:9' }),
      run(['--json', 'teams', 'list'], env),
    ]);
    expect(usageError.code).toBe(2);
    expect(usageError.stderr).toContain("error: unknown command 'delete'");
    expect(apiError.code).toBe(1);
    expect(JSON.parse(apiError.stdout).error.code).toBe('team_not_found');
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach vidgate at http://127.0.0.1:9');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).data.map((t: { name: string }) => t.name)).toContain('default');
  }, 60_000);
});
