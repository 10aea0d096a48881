// The command line (`npx vidgate ...`) against a running gateway: teams, keys and usage through runCli, usage
// errors (thrown, exit code 2 from the entry point) and API errors (exit code 1, the error printed).
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli';
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

/** Runs the CLI; returns its exit code and what it printed (parsed as JSON where it is JSON). */
async function cli(args: string[], environment: NodeJS.ProcessEnv = env) {
  const printed: string[] = [];
  const code = await runCli(args, environment, (s) => printed.push(s));
  const text = printed.join('\n');
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { code, text, json };
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

describe('usage errors', () => {
  it('no command prints the usage and returns 2; --help returns 0', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.text).toMatch(/^usage: vidgate <command>/);
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.text).toContain('keys rotate <key_id> [--grace-seconds N]');
  });

  it.each([
    [['teams', 'delete', 'x'], /unknown command 'teams delete'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['keys'], /unknown command 'keys'/],
    [['keys', 'list'], /missing <team_id>/],
    [['keys', 'revoke'], /missing <key_id>/],
    [['teams', 'create'], /missing <name>/],
    [['teams', 'create', 'x', '--credits-per-day', 'lots'], /--credits-per-day must be a whole number or none/],
    [['keys', 'create', 'team_x', '--expires-at', 'someday'], /--expires-at must be a date/],
  ])('%j throws a usage error and sends nothing', async (args, message) => {
    const before = (await h.gateway.store.listTeams()).length;
    await expect(cli(args)).rejects.toThrow(message);
    expect((await h.gateway.store.listTeams()).length).toBe(before);
  });

  it('a missing admin token is a usage error, before anything is sent', async () => {
    await expect(cli(['teams', 'create', 'tokenless'], { VIDGATE_URL: h.url })).rejects.toThrow(/VIDGATE_ADMIN_TOKEN/);
    expect(await h.gateway.store.findTeamByName('tokenless')).toBeUndefined();
  });

  it('the vidgate command exits 2 on a usage error, 1 on an API error and 0 on success', async () => {
    const run = (args: string[], environment: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ['bin/vidgate.js', ...args], { env: { PATH: process.env.PATH, ...environment } }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
        );
      });
    const [usageError, apiError, ok] = await Promise.all([
      run(['teams', 'delete', 'x'], env),
      run(['teams', 'update', 'team_nope', '--name', 'x'], env),
      run(['teams', 'list'], env),
    ]);
    expect(usageError.code).toBe(2);
    expect(usageError.stderr).toContain("vidgate: unknown command 'teams delete'");
    expect(usageError.stderr).toContain('usage: vidgate <command>');
    expect(apiError.code).toBe(1);
    expect(JSON.parse(apiError.stdout).error.code).toBe('team_not_found');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).data.map((t: { name: string }) => t.name)).toContain('default');
  });
});
