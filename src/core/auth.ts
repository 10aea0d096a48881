// API keys: only SHA-256 hashes are kept; a request's bearer key is hashed and looked up.
import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Store } from '../store/types';
import { unauthorized } from './errors';

export interface Caller {
  key_id: string;
  /** Whose tasks the caller sees: until teams exist, each key owns its own tasks. */
  owner_id: string;
}

const KEY_PREFIX = 'vg_';

export function hashApiKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('hex');
}

/** A new random key; the caller shows it once and stores only its hash. */
export function generateApiKey(): string {
  return KEY_PREFIX + crypto.randomBytes(24).toString('base64url');
}

/** Store the configured keys (by hash) and, when there are none at all, create a development key. */
export async function ensureApiKeys(store: Store, configuredKeys: string[], nowMs: number): Promise<{ devKey?: string }> {
  for (const key of configuredKeys) await registerKey(store, key, 'configured', nowMs);
  if (configuredKeys.length > 0 || (await store.countApiKeys()) > 0) return {};
  const devKey = generateApiKey();
  await registerKey(store, devKey, 'development', nowMs);
  return { devKey };
}

async function registerKey(store: Store, key: string, name: string, nowMs: number): Promise<void> {
  const key_hash = hashApiKey(key);
  if (await store.findApiKeyByHash(key_hash)) return;
  await store.insertApiKey({
    id: 'key_' + key_hash.slice(0, 16),
    name,
    key_hash,
    prefix: key.slice(0, 7),
    created_at_ms: nowMs,
  });
}

export function requireApiKey(store: Store): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) return next(unauthorized('missing API key: send "Authorization: Bearer <key>"'));
    const record = await store.findApiKeyByHash(hashApiKey(match[1]!));
    if (!record) return next(unauthorized('invalid API key'));
    res.locals.caller = { key_id: record.id, owner_id: record.id } satisfies Caller;
    next();
  };
}
