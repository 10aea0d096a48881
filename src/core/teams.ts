// Teams and their API keys: create, update, rotate, revoke. A key is shown once; only its hash is kept.
import crypto from 'node:crypto';
import { UniqueViolation, type ApiKeyRecord, type Quotas, type Store, type TeamRecord } from '../store/types';
import { ApiError, conflict, invalidRequest } from './errors';
import { audit } from './audit';
import type { Logger } from './logger';

/** How every key vidgate makes starts: `vg_` and 32 base64url characters. */
const KEY_PREFIX = 'vg_';
/** Text shaped like a key vidgate made, wherever it appears (logs clear it from request ids and paths). */
export const MADE_KEY = /vg_[A-Za-z0-9_-]{32}/g;
export const DEFAULT_TEAM = 'default';

export function hashApiKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('hex');
}

/** A new random key; the caller shows it once and stores only its hash. */
export function generateApiKey(): string {
  return KEY_PREFIX + crypto.randomBytes(24).toString('base64url');
}

/** Per-minute quotas as older configs and admin calls may give them, with one `requests_per_minute`. */
export interface RateQuotasInput {
  reads_per_minute?: number | null;
  submits_per_minute?: number | null;
  requests_per_minute?: number | null;
}

/**
 * Before reads and submissions were limited apart, one `requests_per_minute` limited every request. It now
 * sets both `reads_per_minute` and `submits_per_minute`, each unless given itself; the result is without it.
 */
export function splitRequestsPerMinute<Q extends RateQuotasInput>(quotas: Q): Omit<Q, 'requests_per_minute'> {
  const { requests_per_minute: both, ...rest } = quotas;
  if (both === undefined) return rest;
  return {
    ...rest,
    reads_per_minute: rest.reads_per_minute === undefined ? both : rest.reads_per_minute,
    submits_per_minute: rest.submits_per_minute === undefined ? both : rest.submits_per_minute,
  };
}

export interface NewKeyOptions extends Partial<Quotas> {
  name?: string;
  expires_at_ms?: number | null;
  allowed_models?: string[] | null;
}

export type TeamService = ReturnType<typeof createTeamService>;

/** `onCreated` is told of each team this service creates (the metrics set its counters to 0). */
export function createTeamService(store: Store, defaultQuotas: Quotas, now: () => number, onCreated: (team: TeamRecord) => void = () => {}) {
  const teamNotFound = (id: string) => new ApiError(404, 'not_found_error', 'team_not_found', `no team '${id}'`, 'team_id');
  const keyNotFound = (id: string) => new ApiError(404, 'not_found_error', 'key_not_found', `no API key '${id}'`, 'key_id');
  const teamExists = (name: string) => conflict('team_exists', `a team named '${name}' exists`);
  /** A name taken between our check and the write (two concurrent requests) is the same 409 as one taken before. */
  const nameTaken = (name: string) => (err: unknown) => {
    throw err instanceof UniqueViolation && err.constraint === 'teams.name' ? teamExists(name) : err;
  };

  async function team(id: string): Promise<TeamRecord> {
    const t = await store.getTeam(id);
    if (!t) throw teamNotFound(id);
    return t;
  }

  async function key(id: string): Promise<ApiKeyRecord> {
    const k = await store.getApiKey(id);
    if (!k) throw keyNotFound(id);
    return k;
  }

  async function createTeam(name: string, quotas: Partial<Quotas> = {}): Promise<TeamRecord> {
    if (await store.findTeamByName(name)) throw teamExists(name);
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'team';
    const id = `team_${slug}_${crypto.randomBytes(3).toString('hex')}`;
    const created = await store.createTeam({ id, name, created_at_ms: now(), ...defaultQuotas, ...quotas }).catch(nameTaken(name));
    onCreated(created);
    return created;
  }

  /** Store a key (by hash) for a team; returns the record and the key itself, to show once. */
  async function addKey(teamId: string, options: NewKeyOptions, plainKey = generateApiKey()): Promise<{ record: ApiKeyRecord; key: string }> {
    await team(teamId);
    const key_hash = hashApiKey(plainKey);
    const record: ApiKeyRecord = {
      id: `key_${crypto.randomBytes(8).toString('hex')}`,
      team_id: teamId,
      name: options.name ?? 'unnamed',
      key_hash,
      // Enough to recognize a key in a listing, too little to matter: 'vg_' and 4 more characters.
      prefix: plainKey.slice(0, 7),
      created_at_ms: now(),
      expires_at_ms: options.expires_at_ms ?? null,
      revoked_at_ms: null,
      allowed_models: options.allowed_models ?? null,
      credits_per_day: options.credits_per_day ?? null,
      credits_per_month: options.credits_per_month ?? null,
      max_concurrent: options.max_concurrent ?? null,
      reads_per_minute: options.reads_per_minute ?? null,
      submits_per_minute: options.submits_per_minute ?? null,
    };
    if (record.expires_at_ms !== null && record.expires_at_ms <= now()) {
      throw invalidRequest('invalid_value', 'expires_at must be in the future', 'expires_at');
    }
    await store.insertApiKey(record);
    return { record, key: plainKey };
  }

  return {
    team,
    key,
    createTeam,
    addKey,
    listTeams: () => store.listTeams(),
    async updateTeam(id: string, patch: Partial<Quotas> & { name?: string }): Promise<TeamRecord> {
      await team(id);
      if (patch.name !== undefined) {
        const other = await store.findTeamByName(patch.name);
        if (other && other.id !== id) throw teamExists(patch.name);
      }
      return (await store.updateTeam(id, patch).catch(nameTaken(patch.name ?? '')))!;
    },
    async listKeys(teamId: string): Promise<ApiKeyRecord[]> {
      await team(teamId);
      return store.listApiKeys(teamId);
    },
    async updateKey(id: string, patch: Partial<Quotas> & Pick<NewKeyOptions, 'name' | 'expires_at_ms' | 'allowed_models'>): Promise<ApiKeyRecord> {
      await key(id);
      return (await store.updateApiKey(id, patch))!;
    },
    async revokeKey(id: string): Promise<ApiKeyRecord> {
      const k = await key(id);
      if (k.revoked_at_ms !== null) return k;
      return (await store.updateApiKey(id, { revoked_at_ms: now() }))!;
    },
    /** A new key with the old one's settings; the old one stops at once, or after `graceMs`. */
    async rotateKey(id: string, graceMs = 0): Promise<{ record: ApiKeyRecord; key: string }> {
      const old = await key(id);
      if (old.revoked_at_ms !== null) throw conflict('key_revoked', `API key '${id}' is revoked`);
      if (old.expires_at_ms !== null && old.expires_at_ms <= now()) throw conflict('key_expired', `API key '${id}' has expired; create a new one`);
      const { id: _id, key_hash: _h, prefix: _p, created_at_ms: _c, revoked_at_ms: _r, team_id, ...settings } = old;
      const fresh = await addKey(team_id, settings);
      await store.updateApiKey(id, graceMs > 0 ? { expires_at_ms: Math.min(old.expires_at_ms ?? Infinity, now() + graceMs) } : { revoked_at_ms: now() });
      return fresh;
    },
  };
}

export interface Caller {
  key: ApiKeyRecord;
  team: TeamRecord;
  /** Whose tasks the caller sees: the team's. */
  owner_id: string;
}

/**
 * Store the configured keys (by hash) in the default team and, when no key exists at all, create a development key.
 * Each team and key made here gets its audit line (actor `config`) on `log`.
 */
export async function ensureApiKeys(store: Store, teams: TeamService, configuredKeys: string[], log: Logger): Promise<{ devKey?: string }> {
  const needed = configuredKeys.filter((k) => k);
  let defaultTeam: TeamRecord | undefined;
  const addToDefaultTeam = async (name: string, plainKey?: string): Promise<string> => {
    if (!defaultTeam) {
      defaultTeam = await store.findTeamByName(DEFAULT_TEAM);
      if (!defaultTeam) {
        // Replicas starting together on one database race to create it: the loser uses the winner's.
        const created = await teams.createTeam(DEFAULT_TEAM).catch(async (err: unknown) => {
          if (err instanceof ApiError && err.code === 'team_exists') return undefined;
          throw err;
        });
        if (created) audit(log, { action: 'team.created', actor: 'config', team_id: created.id, fields: ['name'] });
        defaultTeam = created ?? (await store.findTeamByName(DEFAULT_TEAM));
        if (!defaultTeam) throw new Error(`the team '${DEFAULT_TEAM}' exists and cannot be read`);
      }
    }
    const { record, key } = await teams.addKey(defaultTeam.id, { name }, plainKey);
    audit(log, { action: 'key.created', actor: 'config', team_id: record.team_id, key_id: record.id, fields: ['name'] });
    return key;
  };
  for (const key of needed) {
    if (await store.findApiKeyByHash(hashApiKey(key))) continue;
    // A replica starting at the same time may store the same key first: then it is there, as wanted.
    await addToDefaultTeam('configured', key).catch((err: unknown) => {
      if (!(err instanceof UniqueViolation && err.constraint.endsWith('.key_hash'))) throw err;
    });
  }
  if (needed.length > 0 || (await store.countApiKeys()) > 0) return {};
  return { devKey: await addToDefaultTeam('development') };
}
