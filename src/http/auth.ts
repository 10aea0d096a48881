// Who is calling (HTTP middleware): the bearer key is hashed and looked up with its team on every request (one indexed
// read, no cache), so a revoked or expired key stops at once in every process. Then the request is counted against the
// per-minute quota of its kind (in this process's memory; see src/store/request-rates.ts for several replicas):
// reads (GET, HEAD, and POST /v1/estimates, which changes nothing) and submissions (every other POST, DELETE) have
// limits of their own, so polling or estimating cannot starve submission.
import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import type { RequestKind, Store } from '../store/types';
import { ApiError, unauthorized } from '../core/errors';
import { hashApiKey, type Caller } from '../core/teams';

const secondsToNextMinute = (nowMs: number) => 60 - Math.floor((nowMs % 60_000) / 1000);
const READ_METHODS = new Set(['GET', 'HEAD']);
/** POSTs that only ask (a body too rich for a query string) and change nothing; paths below /v1. */
const READ_POSTS = new Set(['/estimates']);
const requestKind = (method: string, path: string): RequestKind => (READ_METHODS.has(method) || (method === 'POST' && READ_POSTS.has(path)) ? 'read' : 'submit');
/** `X-RateLimit-Resource` names the limit that counted the request, as GitHub's API does. */
const RESOURCE = { reads_per_minute: 'reads', submits_per_minute: 'submits' } as const;

/**
 * The API-key middleware of /v1: sets `res.locals.caller` (a Caller), or fails with 401 `invalid_api_key`, or 429
 * `reads_per_minute_exceeded` / `submits_per_minute_exceeded` with Retry-After (seconds to the next UTC minute).
 * Sets X-RateLimit-Resource, -Limit, -Remaining and -Reset for the per-minute limit that counted the request.
 */
export function requireApiKey(store: Store, now: () => number): RequestHandler {
  return async (req, res, next) => {
    const match = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '');
    if (!match) return next(unauthorized('missing API key: send "Authorization: Bearer <key>"'));
    const found = await store.findCaller(hashApiKey(match[1]!));
    const t = now();
    if (!found) return next(unauthorized('invalid API key'));
    const { key, team } = found;
    if (key.revoked_at_ms !== null && key.revoked_at_ms <= t) return next(unauthorized('this API key was revoked'));
    if (key.expires_at_ms !== null && key.expires_at_ms <= t) return next(unauthorized('this API key has expired'));

    // Known before the rate check, so that a 429's access line names the team too.
    res.locals.caller = { key, team, owner_id: team.id } satisfies Caller;
    const admission = await store.admitRequest(key, team, requestKind(req.method, req.path), t);
    if (admission.limit !== null) {
      res.set({
        'X-RateLimit-Resource': RESOURCE[admission.quota],
        'X-RateLimit-Limit': String(admission.limit),
        'X-RateLimit-Remaining': String(admission.remaining),
        'X-RateLimit-Reset': String(secondsToNextMinute(t)),
      });
    }
    if (!admission.allowed) {
      return next(
        new ApiError(
          429,
          'rate_limit_error',
          `${admission.quota}_exceeded`,
          admission.quota === 'reads_per_minute'
            ? `over ${admission.limit} reads (GET, HEAD, estimates) per minute; submissions have a limit of their own`
            : `over ${admission.limit} submissions (other POSTs, DELETE) per minute; reads have a limit of their own`,
          null,
          { 'Retry-After': String(secondsToNextMinute(t)) },
        ),
      );
    }
    next();
  };
}

/** The admin token, compared in constant time (both sides hashed to the same length first). */
export function requireAdminToken(adminToken: string | undefined): RequestHandler {
  const expected = adminToken ? crypto.createHash('sha256').update(adminToken).digest() : undefined;
  return (req, _res, next) => {
    if (!expected) {
      return next(new ApiError(404, 'not_found_error', 'admin_disabled', 'the admin API is off: set VIDGATE_ADMIN_TOKEN to enable it'));
    }
    const given = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1] ?? '';
    const ok = crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), expected);
    next(ok ? undefined : unauthorized('invalid admin token'));
  };
}
