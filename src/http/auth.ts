// Who is calling (HTTP middleware): the bearer key is hashed and looked up with its team on every request (one indexed
// read, no cache), so a revoked or expired key stops at once in every process. Then the request is counted against the
// per-minute quota of its kind (in this process's memory; see src/store/request-rates.ts for several replicas):
// reads (GET, HEAD, and POST /v1/estimates, which changes nothing) and submissions (every other POST, DELETE) have
// limits of their own, so polling or estimating cannot starve submission.
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
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
 * The caller of a request from its `Authorization` header at `nowMs`: the key (by its SHA-256) and its team in one
 * store read, or the 401 `invalid_api_key` (ApiError) that refuses it: no `Bearer` key, an unknown key, a revoked or
 * expired one. Reads only: nothing is counted.
 */
async function identifyCaller(store: Store, authorization: string | undefined, now: () => number): Promise<Caller | ApiError> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!match) return unauthorized('missing API key: send "Authorization: Bearer <key>"');
  const found = await store.findCaller(hashApiKey(match[1]!));
  const t = now();
  if (!found) return unauthorized('invalid API key');
  const { key, team } = found;
  if (key.revoked_at_ms !== null && key.revoked_at_ms <= t) return unauthorized('this API key was revoked');
  if (key.expires_at_ms !== null && key.expires_at_ms <= t) return unauthorized('this API key has expired');
  return { key, team, owner_id: team.id };
}

/** On a request: what `identifyCaller` found (a property: see STARTED_MS in ./request-log.ts). */
const IDENTIFIED = Symbol('vidgate.identified');

/**
 * `identifyCaller` once per request: what the status-poll lane found is reused by the general path when the lane
 * hands the request over, so a declined poll does not read its key twice.
 */
export async function identifyOnce(store: Store, req: IncomingMessage, now: () => number): Promise<Caller | ApiError> {
  const r = req as IncomingMessage & { [IDENTIFIED]?: Caller | ApiError };
  return (r[IDENTIFIED] ??= await identifyCaller(store, req.headers.authorization, now));
}

/** What counting one request against its per-minute limit decided: the headers to send, and the 429 if refused. */
export interface Admission {
  /** X-RateLimit-Resource, -Limit, -Remaining and -Reset of the limit that counted it; none without a limit. */
  headers: Record<string, string>;
  /** 429 `reads_per_minute_exceeded` / `submits_per_minute_exceeded` with Retry-After; a refused request counts nothing. */
  refusal?: ApiError;
}

/** Counts a request of `method` on `path` (below /v1) against the caller's per-minute limits at `nowMs`. */
export async function admitRequest(store: Store, caller: Caller, method: string, path: string, nowMs: number): Promise<Admission> {
  const admission = await store.admitRequest(caller.key, caller.team, requestKind(method, path), nowMs);
  const headers: Record<string, string> =
    admission.limit === null
      ? {}
      : {
          'X-RateLimit-Resource': RESOURCE[admission.quota],
          'X-RateLimit-Limit': String(admission.limit),
          'X-RateLimit-Remaining': String(admission.remaining),
          'X-RateLimit-Reset': String(secondsToNextMinute(nowMs)),
        };
  if (admission.allowed) return { headers };
  const refusal = new ApiError(
    429,
    'rate_limit_error',
    `${admission.quota}_exceeded`,
    admission.quota === 'reads_per_minute'
      ? `over ${admission.limit} reads (GET, HEAD, estimates) per minute; submissions have a limit of their own`
      : `over ${admission.limit} submissions (other POSTs, DELETE) per minute; reads have a limit of their own`,
    null,
    { 'Retry-After': String(secondsToNextMinute(nowMs)) },
  );
  return { headers, refusal };
}

/**
 * The API-key middleware of /v1 (`identifyOnce`, then `admitRequest`): sets `res.locals.caller` (a Caller) and the
 * X-RateLimit-* headers, or fails with the 401 or the 429. A request it let through already on its way (the early
 * submission route, then the general path) is not identified nor counted again.
 */
export function requireApiKey(store: Store, now: () => number): RequestHandler {
  return async (req, res, next) => {
    if (res.locals.caller !== undefined) return next();
    const caller = await identifyOnce(store, req, now);
    if (caller instanceof ApiError) return next(caller);
    // Known before the rate check, so that a 429's access line names the team too.
    res.locals.caller = caller;
    const { headers, refusal } = await admitRequest(store, caller, req.method, req.path, now());
    res.set(headers);
    next(refusal);
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
