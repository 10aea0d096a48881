// The admin API (/admin): teams, their keys and quotas, and everyone's usage. Guarded by the admin token.
import express from 'express';
import type { components } from '../../generated/vidgate-api';
import type { ApiKeyRecord, Quotas, Store, TeamRecord } from '../../store/types';
import { splitRequestsPerMinute, type TeamService } from '../../core/teams';
import { usageReport, type UsageQuery } from '../../core/usage';
import type { WebhookService } from '../../core/webhooks';
import { presentEvents } from '../webhook-events';

type Schemas = components['schemas'];

const toUnixS = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));
const fromUnixS = (s: number | null | undefined) => (s === undefined ? undefined : s === null ? null : s * 1000);

function quotasOf(q: Quotas): Schemas['QuotaLimits'] {
  return {
    credits_per_day: q.credits_per_day,
    credits_per_month: q.credits_per_month,
    max_concurrent: q.max_concurrent,
    reads_per_minute: q.reads_per_minute,
    submits_per_minute: q.submits_per_minute,
  };
}

/** Quotas of a request body; an older client's `requests_per_minute` sets both per-minute limits. */
const quotasFrom = (q: Schemas['QuotaLimits'] | undefined): Partial<Quotas> => (q ? splitRequestsPerMinute(q) : {});

export function presentTeam(t: TeamRecord): Schemas['Team'] {
  return { id: t.id, object: 'team', name: t.name, created: toUnixS(t.created_at_ms)!, quotas: quotasOf(t) };
}

export function presentKey(k: ApiKeyRecord): Schemas['ApiKey'] {
  return {
    id: k.id,
    object: 'api_key',
    team_id: k.team_id,
    name: k.name,
    prefix: k.prefix,
    created: toUnixS(k.created_at_ms)!,
    expires_at: toUnixS(k.expires_at_ms),
    revoked_at: toUnixS(k.revoked_at_ms),
    allowed_models: k.allowed_models,
    quotas: quotasOf(k),
  };
}

export interface AdminDeps {
  store: Store;
  teams: TeamService;
  /** The value of one credit, in whole micro-USD. */
  microUsdPerCredit: number;
  now: () => number;
  webhooks: WebhookService;
}

/** The admin routes; the app checks the admin token before the body is read. */
export function createAdminRouter({ store, teams, microUsdPerCredit, now, webhooks }: AdminDeps): express.Router {
  const router = express.Router();

  router.get('/teams/:team_id/webhook-secret', async (req, res) => {
    const teamId = req.params.team_id!;
    const secret = await webhooks.currentSecret(teamId);
    res.json({ object: 'webhook_secret', team_id: teamId, secret: secret.secret, created: toUnixS(secret.created_at_ms)!, previous_expires_at: toUnixS(secret.previous_expire_at_ms ?? null) });
  });
  router.post('/teams/:team_id/webhook-secret', async (req, res) => {
    const teamId = req.params.team_id!;
    const body = (req.body ?? {}) as Schemas['WebhookSecretRotate'];
    const made = await webhooks.rotateSecret(teamId, body.grace_s === undefined ? undefined : body.grace_s * 1000);
    res.status(201).json({ object: 'webhook_secret', team_id: teamId, secret: made.secret, created: toUnixS(made.created_at_ms)!, previous_expires_at: toUnixS(made.previous_expire_at_ms ?? null) });
  });
  router.get('/teams/:team_id/dead-letters', async (req, res) => {
    res.json(presentEvents(await webhooks.deadLetters(req.params.team_id!, Number(req.query.limit ?? 100))));
  });

  router.post('/teams', async (req, res) => {
    const body = req.body as Schemas['TeamCreate'];
    res.status(201).json(presentTeam(await teams.createTeam(body.name, quotasFrom(body.quotas))));
  });
  router.get('/teams', async (_req, res) => {
    res.json({ object: 'list', data: (await teams.listTeams()).map(presentTeam) });
  });
  router.get('/teams/:team_id', async (req, res) => {
    res.json(presentTeam(await teams.team(req.params.team_id!)));
  });
  router.patch('/teams/:team_id', async (req, res) => {
    const body = req.body as Schemas['TeamUpdate'];
    res.json(presentTeam(await teams.updateTeam(req.params.team_id!, { ...(body.name !== undefined && { name: body.name }), ...quotasFrom(body.quotas) })));
  });

  router.post('/teams/:team_id/keys', async (req, res) => {
    const body = req.body as Schemas['KeyCreate'];
    const { record, key } = await teams.addKey(req.params.team_id!, {
      name: body.name,
      expires_at_ms: fromUnixS(body.expires_at),
      allowed_models: body.allowed_models,
      ...quotasFrom(body.quotas),
    });
    res.status(201).json({ ...presentKey(record), key });
  });
  router.get('/teams/:team_id/keys', async (req, res) => {
    res.json({ object: 'list', data: (await teams.listKeys(req.params.team_id!)).map(presentKey) });
  });
  router.get('/teams/:team_id/usage', async (req, res) => {
    const team = await teams.team(req.params.team_id!);
    res.json(await usageReport(store, team, undefined, req.query as UsageQuery, now(), microUsdPerCredit));
  });
  router.post('/teams/:team_id/adjustments', async (req, res) => {
    const team = await teams.team(req.params.team_id!);
    const body = req.body as Schemas['AdjustmentCreate'];
    const entry = await store.adjustCredits(team.id, body.credits, body.note, now());
    res.status(201).json({ object: 'ledger_entry', id: entry.id, team_id: entry.team_id, kind: entry.kind, credits: entry.credits, day: entry.day, note: entry.note, created: toUnixS(entry.created_at_ms)! });
  });
  router.post('/ledger/verify', async (_req, res) => {
    res.json({ object: 'ledger_verification', counters_corrected: await store.recomputeUsage() });
  });
  router.get('/usage', async (req, res) => {
    const all = await teams.listTeams();
    const data = await Promise.all(all.map((t) => usageReport(store, t, undefined, req.query as UsageQuery, now(), microUsdPerCredit)));
    res.json({ object: 'list', data });
  });

  router.patch('/keys/:key_id', async (req, res) => {
    const body = req.body as Schemas['KeyUpdate'];
    const patch = {
      ...(body.name !== undefined && { name: body.name }),
      ...(body.expires_at !== undefined && { expires_at_ms: fromUnixS(body.expires_at) }),
      ...(body.allowed_models !== undefined && { allowed_models: body.allowed_models }),
      ...quotasFrom(body.quotas),
    };
    res.json(presentKey(await teams.updateKey(req.params.key_id!, patch)));
  });
  router.post('/keys/:key_id/rotate', async (req, res) => {
    const grace = (req.body as { grace_seconds?: number } | undefined)?.grace_seconds ?? 0;
    const { record, key } = await teams.rotateKey(req.params.key_id!, grace * 1000);
    res.status(201).json({ ...presentKey(record), key });
  });
  router.post('/keys/:key_id/revoke', async (req, res) => {
    res.json(presentKey(await teams.revokeKey(req.params.key_id!)));
  });
  return router;
}
