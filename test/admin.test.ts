// The admin API over HTTP: teams, keys (create, list, update, rotate, revoke, expiry), the admin token, and the
// isolation between teams on the task routes. Keys are shown once and never again: not in listings, logs,
// errors or metrics.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../src/core/gateway';
import { hashApiKey } from '../src/core/teams';
import { createSqliteStore } from '../src/store/sqlite';
import { ADMIN_TOKEN, KEY_A, KEY_B, auth, startTestGateway, tempDir, waitFor } from './support/gateway';
import { captureLogger } from './support/log-capture';
import { startServerProcess } from './support/process';

type Harness = Awaited<ReturnType<typeof startTestGateway>>;
let h: Harness;
const captured = captureLogger();
/** Every key created in this file, to look for in logs, error bodies, metrics and the database. */
const secrets: string[] = [KEY_A, KEY_B];

beforeAll(async () => {
  // Response validation is off in this harness because the spec's ApiKeyCreated cannot be satisfied (see
  // "answers match the spec" below, which checks the admin answers against the spec with validation on).
  h = await startTestGateway({}, { log: captured.log });
});
afterAll(async () => {
  await h.close();
});

const admin = auth(ADMIN_TOKEN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowS = () => Math.floor(Date.now() / 1000);
const NO_LIMITS = { credits_per_day: null, credits_per_month: null, max_concurrent: null, reads_per_minute: null, submits_per_minute: null };

function expectError(res: { status: number; body: unknown }, status: number, type: string, code: string, param: string | null) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String), type, param } });
}

async function createTeam(name: string, quotas?: object) {
  const res = await h.http.post('/admin/teams').set(admin).send({ name, ...(quotas && { quotas }) });
  expect(res.status).toBe(201);
  return res.body as { id: string; name: string; quotas: Record<string, number | null> };
}

async function createKey(teamId: string, body: object = {}) {
  const res = await h.http.post(`/admin/teams/${teamId}/keys`).set(admin).send(body);
  expect(res.status).toBe(201);
  secrets.push(res.body.key);
  return res.body as { id: string; key: string; prefix: string; name: string; expires_at: number | null; revoked_at: number | null; allowed_models: string[] | null; quotas: Record<string, number | null> };
}

async function defaultTeamId(): Promise<string> {
  const res = await h.http.get('/admin/teams').set(admin);
  return res.body.data.find((t: { name: string }) => t.name === 'default').id;
}

const models = (key: string) => h.http.get('/v1/models').set(auth(key));

describe('teams', () => {
  it('creates a team with quotas and gets it back, listed with the others', async () => {
    const before = nowS();
    const res = await h.http.post('/admin/teams').set(admin).send({ name: 'Video Team', quotas: { credits_per_day: 500, max_concurrent: 3 } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^team_video-team_[0-9a-f]{6}$/),
      object: 'team',
      name: 'Video Team',
      created: expect.any(Number),
      // Unset quotas take the configured defaults (1200 reads and 600 submissions per minute).
      quotas: { credits_per_day: 500, credits_per_month: null, max_concurrent: 3, reads_per_minute: 1200, submits_per_minute: 600 },
    });
    expect(res.body.created).toBeGreaterThanOrEqual(before);
    expect(res.body.created).toBeLessThanOrEqual(nowS());

    const got = await h.http.get(`/admin/teams/${res.body.id}`).set(admin);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);

    const list = await h.http.get('/admin/teams').set(admin);
    expect(list.status).toBe(200);
    expect(list.body.object).toBe('list');
    const names = list.body.data.map((t: { name: string }) => t.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'team-b', 'Video Team']));
    expect(list.body.data.find((t: { id: string }) => t.id === res.body.id)).toEqual(res.body);
  });

  it('renames a team and changes its quotas; null removes a limit, absent fields stay', async () => {
    const team = await createTeam('to rename', { credits_per_day: 100, credits_per_month: 1000 });
    const res = await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ name: 'renamed', quotas: { credits_per_day: null, submits_per_minute: 5 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: team.id, name: 'renamed', quotas: { credits_per_day: null, credits_per_month: 1000, max_concurrent: null, reads_per_minute: 1200, submits_per_minute: 5 } });
    expect((await h.http.get(`/admin/teams/${team.id}`).set(admin)).body).toEqual(res.body);

    // An older client's requests_per_minute sets both per-minute limits, except one given beside it; it is never returned.
    const legacy = await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ quotas: { requests_per_minute: 7 } });
    expect(legacy.body.quotas).toEqual({ credits_per_day: null, credits_per_month: 1000, max_concurrent: null, reads_per_minute: 7, submits_per_minute: 7 });
    const mixed = await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ quotas: { requests_per_minute: 8, reads_per_minute: null } });
    expect(mixed.body.quotas).toMatchObject({ reads_per_minute: null, submits_per_minute: 8 });
    const restored = await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ quotas: { reads_per_minute: 1200, submits_per_minute: 5 } });
    expect(restored.body).toEqual(res.body);

    // An empty patch changes nothing; renaming to its own name is not a conflict.
    expect((await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({})).body).toEqual(res.body);
    expect((await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ name: 'renamed' })).status).toBe(200);
  });

  it('a duplicate name answers 409, on create and on rename', async () => {
    await createTeam('unique name');
    const other = await createTeam('other name');
    expectError(await h.http.post('/admin/teams').set(admin).send({ name: 'unique name' }), 409, 'conflict_error', 'team_exists', null);
    expectError(await h.http.patch(`/admin/teams/${other.id}`).set(admin).send({ name: 'unique name' }), 409, 'conflict_error', 'team_exists', null);
    expect((await h.http.get(`/admin/teams/${other.id}`).set(admin)).body.name).toBe('other name');
  });

  it('concurrent creations of one name: one 201, the others 409, never a 500', async () => {
    const answers = await Promise.all(Array.from({ length: 8 }, () => h.http.post('/admin/teams').set(admin).send({ name: 'raced name' })));
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    for (const r of answers.filter((a) => a.status === 409)) expectError(r, 409, 'conflict_error', 'team_exists', null);
    expect((await h.http.get('/admin/teams').set(admin)).body.data.filter((t: { name: string }) => t.name === 'raced name')).toHaveLength(1);
  });

  it('an unknown team answers 404 on every team route', async () => {
    for (const req of [
      h.http.get('/admin/teams/team_nope'),
      h.http.patch('/admin/teams/team_nope').send({ name: 'x' }),
      h.http.post('/admin/teams/team_nope/keys').send({}),
      h.http.get('/admin/teams/team_nope/keys'),
      h.http.get('/admin/teams/team_nope/usage'),
    ]) {
      const res = await req.set(admin);
      expectError(res, 404, 'not_found_error', 'team_not_found', 'team_id');
      expect(res.body.error.message).toContain('team_nope');
    }
  });

  it.each([
    ['no name', {}, 'missing_field', 'name'],
    ['an empty name', { name: '' }, 'invalid_value', 'name'],
    ['a name over 100 characters', { name: 'x'.repeat(101) }, 'invalid_value', 'name'],
    ['an unknown field', { name: 'ok', colour: 'red' }, 'unknown_field', 'colour'],
    ['an unknown quota', { name: 'ok', quotas: { credits_per_year: 5 } }, 'unknown_field', 'quotas.credits_per_year'],
    ['a negative credit quota', { name: 'ok', quotas: { credits_per_day: -1 } }, 'invalid_value', 'quotas.credits_per_day'],
    ['max_concurrent 0', { name: 'ok', quotas: { max_concurrent: 0 } }, 'invalid_value', 'quotas.max_concurrent'],
    ['a fractional quota', { name: 'ok', quotas: { requests_per_minute: 1.5 } }, 'invalid_value', 'quotas.requests_per_minute'],
    ['a quota given as text', { name: 'ok', quotas: { credits_per_month: 'lots' } }, 'invalid_value', 'quotas.credits_per_month'],
  ])('creating a team with %s answers 400', async (_what, body, code, param) => {
    const before = (await h.http.get('/admin/teams').set(admin)).body.data.length;
    expectError(await h.http.post('/admin/teams').set(admin).send(body), 400, 'invalid_request_error', code, param);
    expect((await h.http.get('/admin/teams').set(admin)).body.data.length).toBe(before);
  });

  it('bad team updates and malformed JSON answer 400', async () => {
    const team = await createTeam('bad updates');
    expectError(await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ name: '' }), 400, 'invalid_request_error', 'invalid_value', 'name');
    expectError(await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ id: 'team_other' }), 400, 'invalid_request_error', 'unknown_field', 'id');
    expectError(await h.http.patch(`/admin/teams/${team.id}`).set(admin).send({ quotas: { max_concurrent: 0 } }), 400, 'invalid_request_error', 'invalid_value', 'quotas.max_concurrent');
    const res = await h.http.post('/admin/teams').set(admin).set('Content-Type', 'application/json').send('{"name": ');
    expectError(res, 400, 'invalid_request_error', 'invalid_json', null);
    expect((await h.http.get(`/admin/teams/${team.id}`).set(admin)).body.name).toBe('bad updates');
  });
});

describe('keys', () => {
  it('shows a new key once: in the create answer, never in list or elsewhere; its prefix matches', async () => {
    const team = await createTeam('key owners');
    const before = nowS();
    const res = await h.http.post(`/admin/teams/${team.id}/keys`).set(admin).send({});
    expect(res.status).toBe(201);
    secrets.push(res.body.key);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^key_[0-9a-f]{16}$/),
      object: 'api_key',
      team_id: team.id,
      name: 'unnamed',
      prefix: expect.any(String),
      created: expect.any(Number),
      expires_at: null,
      revoked_at: null,
      allowed_models: null,
      quotas: NO_LIMITS,
      key: expect.stringMatching(/^vg_[A-Za-z0-9_-]{32}$/),
    });
    expect(res.body.created).toBeGreaterThanOrEqual(before);
    expect(res.body.key.startsWith(res.body.prefix)).toBe(true);
    expect(res.body.prefix.length).toBeLessThan(res.body.key.length / 2);

    const list = await h.http.get(`/admin/teams/${team.id}/keys`).set(admin);
    expect(list.status).toBe(200);
    const { key, ...withoutKey } = res.body;
    expect(list.body).toEqual({ object: 'list', data: [withoutKey] });
    expect(list.text).not.toContain(key);

    // The key works at once, for its team.
    const usage = await h.http.get('/v1/usage').set(auth(key));
    expect(usage.status).toBe(200);
    expect(usage.body.team).toEqual({ id: team.id, name: 'key owners' });
    expect(usage.text).not.toContain(key);
  });

  it('creates a key with a name, an expiry, allowed models and quotas, which apply at once', async () => {
    const team = await createTeam('configured keys');
    const expires = nowS() + 3600;
    const k = await createKey(team.id, { name: 'ci', expires_at: expires, allowed_models: ['sora-2'], quotas: { credits_per_day: 80, reads_per_minute: 7 } });
    expect(k).toMatchObject({
      name: 'ci',
      expires_at: expires,
      revoked_at: null,
      allowed_models: ['sora-2'],
      quotas: { credits_per_day: 80, credits_per_month: null, max_concurrent: null, reads_per_minute: 7, submits_per_minute: null },
    });
    const listed = (await h.http.get(`/admin/teams/${team.id}/keys`).set(admin)).body.data;
    expect(listed).toEqual([expect.objectContaining({ id: k.id, name: 'ci', expires_at: expires, allowed_models: ['sora-2'], quotas: k.quotas })]);

    const m = await models(k.key);
    expect(m.status).toBe(200);
    expect(m.headers['x-ratelimit-limit']).toBe('7'); // the key's limit is tighter than the team's 1200
    const pro = await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ model: 'sora-2-pro', prompt: 'not allowed' });
    expectError(pro, 403, 'permission_error', 'model_not_allowed', 'model');
  });

  it('several keys of a team are listed oldest first, each with its own prefix', async () => {
    const team = await createTeam('many keys');
    const a = await createKey(team.id, { name: 'a' });
    const b = await createKey(team.id, { name: 'b' });
    const c = await createKey(team.id, { name: 'c' });
    const list = await h.http.get(`/admin/teams/${team.id}/keys`).set(admin);
    expect(list.body.data.map((k: { id: string }) => k.id)).toEqual([a.id, b.id, c.id]);
    expect(list.body.data.map((k: { prefix: string }) => k.prefix)).toEqual([a.key, b.key, c.key].map((k) => k.slice(0, a.prefix.length)));
    for (const k of [a, b, c]) expect(list.text).not.toContain(k.key);
    // Another team's listing does not show them.
    const other = await h.http.get(`/admin/teams/${h.teamB.id}/keys`).set(admin);
    expect(other.body.data.map((k: { id: string }) => k.id)).not.toContain(a.id);
  });

  it.each([
    ['an empty allowed_models', { allowed_models: [] }, 'invalid_value', 'allowed_models'],
    ['an expiry in the past', { expires_at: 1_000_000 }, 'invalid_value', 'expires_at'],
    ['an expiry given as text', { expires_at: 'tomorrow' }, 'invalid_value', 'expires_at'],
    ['an unknown field', { team_id: 'team_x' }, 'unknown_field', 'team_id'],
    ['an empty name', { name: '' }, 'invalid_value', 'name'],
    ['a bad quota', { quotas: { reads_per_minute: 0 } }, 'invalid_value', 'quotas.reads_per_minute'],
  ])('creating a key with %s answers 400 and creates nothing', async (what, body, code, param) => {
    const team = await createTeam(`bad key: ${what}`);
    expectError(await h.http.post(`/admin/teams/${team.id}/keys`).set(admin).send(body), 400, 'invalid_request_error', code, param);
    expect((await h.http.get(`/admin/teams/${team.id}/keys`).set(admin)).body.data).toEqual([]);
  });

  it('updates a key: name, expiry, models and quotas, each taking effect on the next request', async () => {
    const team = await createTeam('updated keys');
    const k = await createKey(team.id, { name: 'before', allowed_models: ['sora-2'], quotas: { reads_per_minute: 50, credits_per_day: 10 } });
    const submitPro = () => h.http.post('/v1/videos/generations').set(auth(k.key)).send({ model: 'sora-2-pro', prompt: 'pro' });
    expect((await submitPro()).status).toBe(403);

    const expires = nowS() + 600;
    const res = await h.http.patch(`/admin/keys/${k.id}`).set(admin).send({ name: 'after', expires_at: expires, allowed_models: null, quotas: { reads_per_minute: 9, credits_per_day: null } });
    expect(res.status).toBe(200);
    const { key: _k, ...settings } = k;
    expect(res.body).toEqual({ ...settings, name: 'after', expires_at: expires, allowed_models: null, quotas: { ...NO_LIMITS, reads_per_minute: 9 } });
    expect(res.text).not.toContain(k.key);

    const m = await models(k.key);
    expect(m.headers['x-ratelimit-limit']).toBe('9');
    expect((await submitPro()).status).toBe(202); // any model now, and no daily credit limit

    // expires_at null removes the expiry; an absent field stays as it is.
    const cleared = await h.http.patch(`/admin/keys/${k.id}`).set(admin).send({ expires_at: null });
    expect(cleared.body).toMatchObject({ name: 'after', expires_at: null, quotas: { reads_per_minute: 9 } });
  });

  it('bad key updates answer 400; an unknown key answers 404 on every key route', async () => {
    const team = await createTeam('key update errors');
    const k = await createKey(team.id, { name: 'stays' });
    expectError(await h.http.patch(`/admin/keys/${k.id}`).set(admin).send({ key_hash: 'x' }), 400, 'invalid_request_error', 'unknown_field', 'key_hash');
    expectError(await h.http.patch(`/admin/keys/${k.id}`).set(admin).send({ quotas: { credits_per_day: -5 } }), 400, 'invalid_request_error', 'invalid_value', 'quotas.credits_per_day');
    expectError(await h.http.patch(`/admin/keys/${k.id}`).set(admin).send({ expires_at: 'soon' }), 400, 'invalid_request_error', 'invalid_value', 'expires_at');
    expectError(await h.http.post(`/admin/keys/${k.id}/rotate`).set(admin).send({ grace_seconds: -1 }), 400, 'invalid_request_error', 'invalid_value', 'grace_seconds');
    expectError(await h.http.post(`/admin/keys/${k.id}/rotate`).set(admin).send({ grace_seconds: 2_592_001 }), 400, 'invalid_request_error', 'invalid_value', 'grace_seconds');
    expectError(await h.http.post(`/admin/keys/${k.id}/rotate`).set(admin).send({ grace: 5 }), 400, 'invalid_request_error', 'unknown_field', 'grace');
    // Nothing changed, and the key still works (a refused rotation does not revoke it).
    expect((await h.http.get(`/admin/teams/${team.id}/keys`).set(admin)).body.data).toEqual([expect.objectContaining({ id: k.id, name: 'stays', revoked_at: null, expires_at: null })]);
    expect((await models(k.key)).status).toBe(200);

    for (const req of [
      h.http.patch('/admin/keys/key_0000000000000000').send({ name: 'x' }),
      h.http.post('/admin/keys/key_0000000000000000/rotate').send({}),
      h.http.post('/admin/keys/key_0000000000000000/revoke'),
    ]) {
      expectError(await req.set(admin), 404, 'not_found_error', 'key_not_found', 'key_id');
    }
  });

  it('rotate: the new key works with the same settings, the old one stops at once', async () => {
    const team = await createTeam('rotation');
    const old = await createKey(team.id, { name: 'svc', allowed_models: ['sora-2'], quotas: { reads_per_minute: 11 } });
    expect((await models(old.key)).status).toBe(200);

    const res = await h.http.post(`/admin/keys/${old.id}/rotate`).set(admin);
    expect(res.status).toBe(201);
    secrets.push(res.body.key);
    expect(res.body).toMatchObject({ object: 'api_key', team_id: team.id, name: 'svc', allowed_models: ['sora-2'], quotas: { ...NO_LIMITS, reads_per_minute: 11 }, revoked_at: null, expires_at: null });
    expect(res.body.id).not.toBe(old.id);
    expect(res.body.key).not.toBe(old.key);
    expect(res.body.key.startsWith(res.body.prefix)).toBe(true);

    expectError(await models(old.key), 401, 'authentication_error', 'invalid_api_key', null);
    const fresh = await models(res.body.key);
    expect(fresh.status).toBe(200);
    expect(fresh.headers['x-ratelimit-limit']).toBe('11');

    const listed = (await h.http.get(`/admin/teams/${team.id}/keys`).set(admin)).body.data;
    expect(listed.map((k: { id: string; revoked_at: number | null }) => [k.id, k.revoked_at !== null])).toEqual([[old.id, true], [res.body.id, false]]);
    // A revoked key cannot be rotated again.
    expectError(await h.http.post(`/admin/keys/${old.id}/rotate`).set(admin), 409, 'conflict_error', 'key_revoked', null);
  });

  it('rotate with grace_seconds: the old key keeps working until then, and then stops', async () => {
    const team = await createTeam('graceful rotation');
    const old = await createKey(team.id, { name: 'worker' });
    const started = Date.now();
    const res = await h.http.post(`/admin/keys/${old.id}/rotate`).set(admin).send({ grace_seconds: 2 });
    expect(res.status).toBe(201);
    secrets.push(res.body.key);
    expect((await models(res.body.key)).status).toBe(200);
    expect((await models(old.key)).status).toBe(200);
    const listed = (await h.http.get(`/admin/teams/${team.id}/keys`).set(admin)).body.data;
    const oldListed = listed.find((k: { id: string }) => k.id === old.id);
    expect(oldListed.revoked_at).toBeNull();
    expect(oldListed.expires_at).toBeGreaterThanOrEqual(Math.floor(started / 1000) + 1);
    expect(oldListed.expires_at).toBeLessThanOrEqual(nowS() + 2);

    await sleep(Math.max(0, started + 2100 - Date.now()));
    const expired = await models(old.key);
    expectError(expired, 401, 'authentication_error', 'invalid_api_key', null);
    expect(expired.body.error.message).toContain('expired');
    expect((await models(res.body.key)).status).toBe(200);
  });

  it('revoke: the key stops at once, also in another running process that has used it', async () => {
    const team = await createTeam('revocation');
    const k = await createKey(team.id, { name: 'doomed' });
    // A second gateway on the same database: a replica that has already served this key.
    const replica = await createGateway(h.config, { env: { VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN }, log: captured.log });
    const replicaUrl = await replica.start();
    try {
      const viaReplica = () => fetch(`${replicaUrl}/v1/models`, { headers: auth(k.key) });
      expect((await viaReplica()).status).toBe(200);
      expect((await models(k.key)).status).toBe(200);

      const before = nowS();
      const res = await h.http.post(`/admin/keys/${k.id}/revoke`).set(admin);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: k.id, object: 'api_key', team_id: team.id, name: 'doomed' });
      expect(res.body.revoked_at).toBeGreaterThanOrEqual(before);
      expect(res.text).not.toContain(k.key);

      const there = await viaReplica();
      expect(there.status).toBe(401);
      expect(await there.json()).toEqual({ error: { code: 'invalid_api_key', message: expect.stringContaining('revoked'), type: 'authentication_error', param: null } });
      expectError(await models(k.key), 401, 'authentication_error', 'invalid_api_key', null);
      expectError(await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ prompt: 'after revoke' }), 401, 'authentication_error', 'invalid_api_key', null);

      // Revoking again keeps the first revocation time.
      const again = await h.http.post(`/admin/keys/${k.id}/revoke`).set(admin);
      expect(again.body.revoked_at).toBe(res.body.revoked_at);
    } finally {
      await replica.stop();
    }
  });

  it('an expired key answers 401, whether it ran out or its expiry was moved into the past', async () => {
    const team = await createTeam('expiry');
    const soon = await createKey(team.id, { expires_at: nowS() + 1 });
    expect((await models(soon.key)).status).toBe(200);
    await sleep(Math.max(0, (soon.expires_at! * 1000) - Date.now() + 50));
    const res = await models(soon.key);
    expectError(res, 401, 'authentication_error', 'invalid_api_key', null);
    expect(res.body.error.message).toContain('expired');
    expect(res.headers['www-authenticate']).toBe('Bearer');

    const later = await createKey(team.id, { expires_at: nowS() + 3600 });
    expect((await models(later.key)).status).toBe(200);
    expect((await h.http.patch(`/admin/keys/${later.id}`).set(admin).send({ expires_at: nowS() - 10 })).status).toBe(200);
    expectError(await models(later.key), 401, 'authentication_error', 'invalid_api_key', null);
    // And moving it back into the future revives it.
    await h.http.patch(`/admin/keys/${later.id}`).set(admin).send({ expires_at: null });
    expect((await models(later.key)).status).toBe(200);
  });
});

describe('the admin token', () => {
  const routes = () => [
    h.http.get('/admin/teams'),
    h.http.post('/admin/teams').send({ name: 'sneaky' }),
    h.http.get(`/admin/teams/${h.teamB.id}`),
    h.http.patch(`/admin/teams/${h.teamB.id}`).send({ name: 'hijacked' }),
    h.http.get(`/admin/teams/${h.teamB.id}/keys`),
    h.http.post(`/admin/teams/${h.teamB.id}/keys`).send({}),
    h.http.get(`/admin/teams/${h.teamB.id}/usage`),
    h.http.get('/admin/usage'),
    h.http.patch('/admin/keys/key_0000000000000000').send({ name: 'x' }),
    h.http.post('/admin/keys/key_0000000000000000/rotate'),
    h.http.post('/admin/keys/key_0000000000000000/revoke'),
  ];

  it.each([
    ['no token', {}],
    ['a wrong token', auth('wrong-admin-token-0123456789')],
    ['the token with a suffix', auth(`${ADMIN_TOKEN}x`)],
    ['an API key', auth(KEY_A)],
    ['the token without Bearer', { Authorization: ADMIN_TOKEN }],
  ])('%s answers 401 with the error shape on every admin route, changing nothing', async (_what, headers) => {
    const teamsBefore = (await h.http.get('/admin/teams').set(admin)).body;
    const keysBefore = (await h.http.get(`/admin/teams/${h.teamB.id}/keys`).set(admin)).body;
    for (const req of routes()) {
      const res = await req.set(headers);
      expectError(res, 401, 'authentication_error', 'invalid_api_key', null);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.text).not.toContain(ADMIN_TOKEN);
    }
    expect((await h.http.get('/admin/teams').set(admin)).body).toEqual(teamsBefore);
    expect((await h.http.get(`/admin/teams/${h.teamB.id}/keys`).set(admin)).body).toEqual(keysBefore);
  });

  it('the admin token is not an API key', async () => {
    expectError(await models(ADMIN_TOKEN), 401, 'authentication_error', 'invalid_api_key', null);
  });

  it('with VIDGATE_ADMIN_TOKEN unset, every admin route answers 404 admin_disabled', async () => {
    const off = await startTestGateway({}, { env: { VIDGATE_ADMIN_TOKEN: '' } });
    try {
      for (const headers of [admin, {}]) {
        for (const req of [
          off.http.get('/admin/teams'),
          off.http.post('/admin/teams').send({ name: 'x' }),
          off.http.get(`/admin/teams/${off.teamB.id}/keys`),
          off.http.post(`/admin/teams/${off.teamB.id}/keys`).send({}),
          off.http.post('/admin/keys/key_0000000000000000/revoke'),
          off.http.get('/admin/usage'),
        ]) {
          const res = await req.set(headers);
          expectError(res, 404, 'not_found_error', 'admin_disabled', null);
          expect(res.body.error.message).toContain('VIDGATE_ADMIN_TOKEN');
        }
      }
      expect((await off.http.get('/v1/models').set(auth(KEY_A))).status).toBe(200);
      expect((await off.gateway.store.listTeams()).map((t) => t.name).sort()).toEqual(['default', 'team-b']);
    } finally {
      await off.close();
    }
  });
});

describe('answers match the spec', () => {
  // With response validation on (as every other HTTP test runs): an answer outside the spec fails with 500.
  it('team and key routes answer as documented', async () => {
    const v = await startTestGateway({}, { validateResponses: true });
    try {
      const team = await v.http.post('/admin/teams').set(admin).send({ name: 'validated', quotas: { credits_per_day: 5 } });
      expect(team.status).toBe(201);
      expect((await v.http.get('/admin/teams').set(admin)).status).toBe(200);
      expect((await v.http.patch(`/admin/teams/${team.body.id}`).set(admin).send({ name: 'validated 2' })).status).toBe(200);
      expect((await v.http.get(`/admin/teams/${team.body.id}/usage`).set(admin)).status).toBe(200);
      expect((await v.http.get('/admin/usage').set(admin)).status).toBe(200);

      const created = await v.http.post(`/admin/teams/${team.body.id}/keys`).set(admin).send({ name: 'v' });
      expect(created.body.error).toBeUndefined();
      expect(created.status).toBe(201);
      secrets.push(created.body.key);
      expect((await v.http.get(`/admin/teams/${team.body.id}/keys`).set(admin)).status).toBe(200);
      expect((await v.http.patch(`/admin/keys/${created.body.id}`).set(admin).send({ name: 'v2' })).status).toBe(200);
      const rotated = await v.http.post(`/admin/keys/${created.body.id}/rotate`).set(admin);
      expect(rotated.body.error).toBeUndefined();
      expect(rotated.status).toBe(201);
      secrets.push(rotated.body.key);
      expect((await v.http.post(`/admin/keys/${rotated.body.id}/revoke`).set(admin)).status).toBe(200);
    } finally {
      await v.close();
    }
  });
});

describe('isolation between teams', () => {
  const submit = (key: string, body: object = { prompt: 'isolated' }) => h.http.post('/v1/videos/generations').set(auth(key)).send(body);
  const MISSING = 'task_ffffffffffffffffffffffff';

  /** The answer with the task id blanked, to compare another team's task with a missing one. */
  const blank = (res: { status: number; headers: Record<string, string>; body: unknown }, id: string) => ({
    status: res.status,
    type: res.headers['content-type'],
    body: JSON.parse(JSON.stringify(res.body).replaceAll(id, 'ID')),
  });

  async function expectLikeMissing(key: string, id: string) {
    for (const [method, suffix] of [['get', ''], ['post', '/cancel'], ['get', '/content']] as const) {
      const theirs = await h.http[method](`/v1/tasks/${id}${suffix}`).set(auth(key));
      const missing = await h.http[method](`/v1/tasks/${MISSING}${suffix}`).set(auth(key));
      expect(theirs.status).toBe(404);
      expect(blank(theirs, id)).toEqual(blank(missing, MISSING));
      expect(theirs.body.error.code).toBe('task_not_found');
    }
  }

  it("another team's running or finished task answers exactly like a missing one, on every task route", async () => {
    const running = (await submit(KEY_A, { prompt: 'still running', duration: 12 })).body.id as string;
    await expectLikeMissing(KEY_B, running);
    // B's cancel did not cancel it.
    const done = await waitFor(async () => {
      const res = await h.http.get(`/v1/tasks/${running}`).set(auth(KEY_A));
      return ['completed', 'failed', 'cancelled'].includes(res.body.status) ? res.body : undefined;
    });
    expect(done.status).toBe('completed');
    await expectLikeMissing(KEY_B, running);
    expect((await h.http.get(`/v1/tasks/${running}/content`).set(auth(KEY_A))).status).toBe(200);

    // And the other way round.
    const bs = (await submit(KEY_B, { prompt: 'team b' })).body.id as string;
    await expectLikeMissing(KEY_A, bs);

    for (const q of ['', '?status=completed', '?limit=100']) {
      const listB = await h.http.get(`/v1/tasks${q}`).set(auth(KEY_B));
      expect(listB.body.data.map((t: { id: string }) => t.id)).not.toContain(running);
      const listA = await h.http.get(`/v1/tasks${q}`).set(auth(KEY_A));
      expect(listA.body.data.map((t: { id: string }) => t.id)).not.toContain(bs);
    }
  });

  it("keys of the same team see, list, download and cancel each other's tasks", async () => {
    const second = await createKey(await defaultTeamId(), { name: 'second key of the default team' });
    const finished = (await submit(KEY_A, { prompt: 'shared' })).body.id as string;
    await waitFor(async () => ((await h.http.get(`/v1/tasks/${finished}`).set(auth(KEY_A))).body.status === 'completed' ? true : undefined));
    const seen = await h.http.get(`/v1/tasks/${finished}`).set(auth(second.key));
    expect(seen.status).toBe(200);
    expect(seen.body.id).toBe(finished);
    expect((await h.http.get(`/v1/tasks/${finished}/content`).set(auth(second.key))).status).toBe(200);
    expect((await h.http.get('/v1/tasks?limit=100').set(auth(second.key))).body.data.map((t: { id: string }) => t.id)).toContain(finished);

    const running = (await submit(second.key, { prompt: 'cancel me', duration: 12 })).body.id as string;
    const cancelled = await h.http.post(`/v1/tasks/${running}/cancel`).set(auth(KEY_A));
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
  });
});

describe('keys never leak', () => {
  it('the development key of a first start belongs to the default team', async () => {
    const dir = tempDir();
    const server = await startServerProcess({ VIDGATE_DATA_DIR: dir, VIDGATE_SERVER__PORT: '0', VIDGATE_AUTH__API_KEYS: '', VIDGATE_LOG_LEVEL: 'info' });
    let key: string | undefined;
    try {
      key = /^\s+(vg_\S+)$/m.exec(server.output())?.[1];
      expect(key).toBeDefined();
      const usage = await fetch(`${server.url}/v1/usage`, { headers: auth(key!) });
      expect(usage.status).toBe(200);
      expect(((await usage.json()) as { team: { name: string } }).team.name).toBe('default');
      // Printed once, in the banner (the key line and the curl line), and nowhere else in the output.
      expect(server.output().split(key!).length - 1).toBe(2);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const store = createSqliteStore(path.join(dir, 'vidgate.db'));
    try {
      const teams = await store.listTeams();
      expect(teams.map((t) => t.name)).toEqual(['default']);
      const keys = await store.listApiKeys(teams[0]!.id);
      expect(keys).toEqual([expect.objectContaining({ team_id: teams[0]!.id, name: 'development', key_hash: hashApiKey(key!), revoked_at_ms: null, expires_at_ms: null })]);
      expect(key!.startsWith(keys[0]!.prefix)).toBe(true);
      expect(keys[0]!.prefix.length).toBeLessThan(key!.length / 2);
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the real server starts with VIDGATE_ADMIN_TOKEN and VIDGATE_URL set, as the README shows, and serves /admin', async () => {
    const dir = tempDir();
    try {
      const server = await startServerProcess({
        VIDGATE_DATA_DIR: dir,
        VIDGATE_SERVER__PORT: '0',
        VIDGATE_AUTH__API_KEYS: KEY_A,
        VIDGATE_ADMIN_TOKEN: ADMIN_TOKEN,
        VIDGATE_URL: 'http://127.0.0.1:8080',
      });
      try {
        const res = await fetch(`${server.url}/admin/teams`, { headers: admin });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { data: { name: string }[] }).data.map((t) => t.name)).toEqual(['default']);
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no key appears in any log line, error body, /metrics, or the database', async () => {
    // Traffic of every kind: keys created, used, refused, rotated, revoked; tasks completed and cancelled.
    const team = await createTeam('leak check', { requests_per_minute: 1000 });
    const k = await createKey(team.id, { allowed_models: ['sora-2'], quotas: { credits_per_day: 40 } });
    const errors: string[] = [];
    const ok = await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ prompt: 'leak check' });
    expect(ok.status).toBe(202);
    errors.push((await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ prompt: 'over the day' })).text); // 402
    errors.push((await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ model: 'sora-2-pro', prompt: 'x' })).text); // 403
    errors.push((await h.http.get(`/v1/tasks/${MISSING_ID}`).set(auth(k.key))).text); // 404
    errors.push((await h.http.post('/v1/videos/generations').set(auth(k.key)).send({ prompt: 'x', colour: 1 })).text); // 400
    await waitFor(async () => ((await h.http.get(`/v1/tasks/${ok.body.id}`).set(auth(k.key))).body.status === 'completed' ? true : undefined));
    const rotated = await h.http.post(`/admin/keys/${k.id}/rotate`).set(admin);
    secrets.push(rotated.body.key);
    errors.push((await models(k.key)).text); // 401 rotated away
    await h.http.post(`/admin/keys/${rotated.body.id}/revoke`).set(admin);
    errors.push((await models(rotated.body.key)).text); // 401 revoked
    errors.push((await models(`${KEY_A}-not`)).text); // 401 unknown
    errors.push((await h.http.get('/admin/teams').set(auth(KEY_A))).text); // 401 admin
    for (const text of errors) expect(JSON.parse(text).error).toBeDefined();

    const metrics = (await h.http.get('/metrics')).text;
    expect(metrics).toContain('vidgate_credits_total');
    // The log saw this traffic (so an empty log cannot pass the check below).
    expect(captured.lines.some((l) => l.includes(ok.body.id))).toBe(true);
    const db = fs.readdirSync(h.dir).filter((n) => n.startsWith('vidgate.db')).map((n) => fs.readFileSync(path.join(h.dir, n)));
    expect(db.length).toBeGreaterThan(0);

    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const secret of secrets) {
      for (const line of captured.lines) expect(line).not.toContain(secret);
      for (const text of errors) expect(text).not.toContain(secret);
      expect(metrics).not.toContain(secret);
      for (const file of db) expect(file.includes(Buffer.from(secret))).toBe(false);
    }
  });
});

const MISSING_ID = 'task_eeeeeeeeeeeeeeeeeeeeeeee';
