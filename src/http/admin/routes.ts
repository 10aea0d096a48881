// The admin API (/admin): teams, their keys and quotas, and everyone's usage. Guarded by the admin token.
import express from 'express';
import type { components } from '../../generated/vidgate-api';
import type { ApiKeyRecord, Quotas, Store, TeamRecord } from '../../store/types';
import { splitRequestsPerMinute, type TeamService } from '../../core/teams';
import { usageReport, type UsageQuery } from '../../core/usage';
import type { WebhookService } from '../../core/webhooks';
import { presentEvents } from '../webhook-events';
import { audit, CLI_USER_AGENT, fieldsIn, quotasIn, type AuditEntry } from '../../core/audit';
import type { Logger } from '../../core/logger';
import { requestLog } from '../request-log';

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
  log: Logger;
}

/** The admin routes; the app checks the admin token before the body is read. */
export function createAdminRouter({ store, teams, microUsdPerCredit, now, webhooks, log }: AdminDeps): express.Router {
  const router = express.Router();
  /** The audit line of a change made by this request (the admin token's; `via: 'cli'` from the CLI). */
  const audited = (req: express.Request, res: express.Response, entry: Omit<AuditEntry, 'actor' | 'via'>) =>
    audit(requestLog(res, log), { ...entry, actor: 'admin_token', ...(req.get('user-agent')?.startsWith(`${CLI_USER_AGENT}/`) && { via: 'cli' as const }) });

  router.get('/teams/:team_id/webhook-secret', async (req, res) => {
    const teamId = req.params.team_id!;
    const secret = await webhooks.currentSecret(teamId);
    res.json({ object: 'webhook_secret', team_id: teamId, secret: secret.secret, created: toUnixS(secret.created_at_ms)!, previous_expires_at: toUnixS(secret.previous_expire_at_ms ?? null) });
  });
  router.post('/teams/:team_id/webhook-secret', async (req, res) => {
    const teamId = req.params.team_id!;
    const body = (req.body ?? {}) as Schemas['WebhookSecretRotate'];
    const made = await webhooks.rotateSecret(teamId, body.grace_s === undefined ? undefined : body.grace_s * 1000);
    audited(req, res, { action: 'webhook_secret.rotated', team_id: teamId, fields: fieldsIn(body), detail: { grace_s: body.grace_s ?? null } });
    res.status(201).json({ object: 'webhook_secret', team_id: teamId, secret: made.secret, created: toUnixS(made.created_at_ms)!, previous_expires_at: toUnixS(made.previous_expire_at_ms ?? null) });
  });
  router.get('/teams/:team_id/dead-letters', async (req, res) => {
    res.json(presentEvents(await webhooks.deadLetters(req.params.team_id!, Number(req.query.limit ?? 100))));
  });

  router.post('/teams', async (req, res) => {
    const body = req.body as Schemas['TeamCreate'];
    const quotas = quotasFrom(body.quotas);
    const team = await teams.createTeam(body.name, quotas);
    audited(req, res, { action: 'team.created', team_id: team.id, fields: ['name', ...fieldsIn(quotas)], quotas: quotasIn(quotas) });
    res.status(201).json(presentTeam(team));
  });
  router.get('/teams', async (_req, res) => {
    res.json({ object: 'list', data: (await teams.listTeams()).map(presentTeam) });
  });
  router.get('/teams/:team_id', async (req, res) => {
    res.json(presentTeam(await teams.team(req.params.team_id!)));
  });
  router.patch('/teams/:team_id', async (req, res) => {
    const body = req.body as Schemas['TeamUpdate'];
    const patch = { ...(body.name !== undefined && { name: body.name }), ...quotasFrom(body.quotas) };
    const team = await teams.updateTeam(req.params.team_id!, patch);
    audited(req, res, { action: 'team.updated', team_id: team.id, fields: fieldsIn(patch), quotas: quotasIn(patch) });
    res.json(presentTeam(team));
  });

  router.post('/teams/:team_id/keys', async (req, res) => {
    const body = req.body as Schemas['KeyCreate'];
    const options = { name: body.name, expires_at_ms: fromUnixS(body.expires_at), allowed_models: body.allowed_models, ...quotasFrom(body.quotas) };
    const { record, key } = await teams.addKey(req.params.team_id!, options);
    audited(req, res, { action: 'key.created', team_id: record.team_id, key_id: record.id, fields: fieldsIn(options), quotas: quotasIn(options) });
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
    audited(req, res, { action: 'credits.adjusted', team_id: team.id, fields: fieldsIn(body), detail: { credits: entry.credits, ledger_entry_id: entry.id } });
    res.status(201).json({ object: 'ledger_entry', id: entry.id, team_id: entry.team_id, kind: entry.kind, credits: entry.credits, day: entry.day, note: entry.note, created: toUnixS(entry.created_at_ms)! });
  });
  router.post('/ledger/verify', async (req, res) => {
    const corrected = await store.recomputeUsage();
    audited(req, res, { action: 'ledger.verified', detail: { counters_corrected: corrected } });
    res.json({ object: 'ledger_verification', counters_corrected: corrected });
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
    const record = await teams.updateKey(req.params.key_id!, patch);
    audited(req, res, { action: 'key.updated', team_id: record.team_id, key_id: record.id, fields: fieldsIn(patch), quotas: quotasIn(patch) });
    res.json(presentKey(record));
  });
  router.post('/keys/:key_id/rotate', async (req, res) => {
    const grace = (req.body as { grace_seconds?: number } | undefined)?.grace_seconds ?? 0;
    const { record, key } = await teams.rotateKey(req.params.key_id!, grace * 1000);
    audited(req, res, { action: 'key.rotated', team_id: record.team_id, key_id: req.params.key_id!, detail: { new_key_id: record.id, grace_s: grace } });
    res.status(201).json({ ...presentKey(record), key });
  });
  router.post('/keys/:key_id/revoke', async (req, res) => {
    const record = await teams.revokeKey(req.params.key_id!);
    audited(req, res, { action: 'key.revoked', team_id: record.team_id, key_id: record.id });
    res.json(presentKey(record));
  });
  return router;
}
