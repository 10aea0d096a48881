// The audit trail of admin changes: one `info` line each, with `audit: true`, saying who changed what. Ids, the
// names of the changed fields and quota values only: never a key, a secret, a token or a note's text.
import type { Logger } from './logger';
import { QUOTA_NAMES, type Quotas } from '../store/types';

/** The product token of the User-Agent the vidgate CLI sends (`vidgate-cli/<version>`), for the audit's `via`. */
export const CLI_USER_AGENT = 'vidgate-cli';

/** Who made a change: the admin token over HTTP, or the configuration at start (configured and development keys). */
export type AuditActor = 'admin_token' | 'config';

/** The admin changes that are audited. */
export type AuditAction =
  | 'team.created'
  | 'team.updated'
  | 'key.created'
  | 'key.updated'
  | 'key.rotated'
  | 'key.revoked'
  | 'webhook_secret.rotated'
  | 'credits.adjusted'
  | 'ledger.verified';

/** One change: what was done to which team or key, which fields it set, and the quotas' new values. */
export interface AuditEntry {
  action: AuditAction;
  actor: AuditActor;
  /** `cli` when the vidgate CLI sent the request (its User-Agent), absent otherwise. */
  via?: 'cli';
  team_id?: string;
  key_id?: string;
  /** The names of the fields the change set (e.g. `name`, `expires_at_ms`, `credits_per_day`); never their values. */
  fields?: string[];
  /** The quota limits the change set, with their values (null: no limit). */
  quotas?: Partial<Quotas>;
  /** Anything else that identifies or measures the change: ids, counts, credits, seconds. */
  detail?: Record<string, string | number | null>;
}

/** The quota limits among `changes`, with their values; undefined when it sets none. */
export function quotasIn(changes: object): Partial<Quotas> | undefined {
  const found = QUOTA_NAMES.filter((q) => q in changes && (changes as Partial<Quotas>)[q] !== undefined);
  return found.length ? Object.fromEntries(found.map((q) => [q, (changes as Partial<Quotas>)[q]])) : undefined;
}

/** The names of the fields `changes` sets (those not undefined). */
export const fieldsIn = (changes: object): string[] => Object.entries(changes).filter(([, v]) => v !== undefined).map(([k]) => k);

/** Writes the audit line of one admin change on `log` (a request's logger carries its `request_id`). */
export function audit(log: Logger, entry: AuditEntry): void {
  log.info({ audit: true, ...entry }, `admin change: ${entry.action}`);
}
