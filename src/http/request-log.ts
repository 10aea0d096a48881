// Every request's id and its access line. The id is the client's `X-Request-Id` when it is a sane token, else a new
// UUID; it is returned in the `X-Request-Id` response header of every answer (errors too) and bound to every line
// logged about the request. One access line per request, when its response ends: method, path (never the query
// string: signed links carry their signature there), route, status, latency, team: never a key, a header or a body.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { RequestHandler, Response } from 'express';
import { REDACTED, type Logger } from '../core/logger';
import { MADE_KEY } from '../core/teams';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** What a client's id may be to be kept: 1 to 128 characters of letters, digits and `._:-`. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Probes polled every few seconds: their access lines are at `debug`, not to drown the others. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The client's `X-Request-Id` when it is a sane token (one header, 1–128 of `[A-Za-z0-9._:-]`, not holding a vidgate
 * API key), else a random UUID.
 */
export function requestIdOf(req: http.IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) && !keyIn(given) ? given : crypto.randomUUID();
}

const keyIn = (text: string) => text.search(MADE_KEY) !== -1;

/**
 * The request's path without its query string, as the client sent it, with anything shaped like a vidgate API key
 * (a key pasted where an id goes) replaced by `[redacted]`.
 */
export const pathOf = (url: string | undefined): string => (url ?? '').split('?', 1)[0]!.replace(MADE_KEY, REDACTED);

/** On a request: when it came in (a property, not a WeakMap: one entry per request would weigh on every collection). */
const STARTED_MS = Symbol('vidgate.startedMs');

/**
 * When the request came in (`performance.now()`): the first call for a request fixes it. The status-poll lane calls
 * it on arrival, so a poll it hands to Express is timed and logged from then, not from Express's entry.
 */
export function requestStartedMs(req: http.IncomingMessage): number {
  const r = req as http.IncomingMessage & { [STARTED_MS]?: number };
  return (r[STARTED_MS] ??= performance.now());
}

/** What an access line says of a request besides its response's status. */
export interface AccessLine {
  /** The method as sent (HEAD stays HEAD). */
  method: string;
  /** `pathOf` the request's URL. */
  path: string;
  /** The spec's route template of the path. */
  route: string;
  /** `performance.now()` when the request came in. */
  startedMs: number;
  teamId: string | undefined;
  /** For a `log` that does not carry it already. */
  requestId?: string;
}

/**
 * Writes a request's access line once its response is done (at `close`) on `log` (which carries its `request_id`):
 * at `info`, or `debug` for the probes; `aborted: true` when the client left first.
 */
export function writeAccessLine(log: Logger, res: http.ServerResponse, line: AccessLine): void {
  log[PROBES.has(line.path) ? 'debug' : 'info'](
    {
      request_id: line.requestId, // undefined: left out of the line
      method: line.method,
      path: line.path,
      route: line.route,
      status: res.statusCode,
      latency_ms: Math.round((performance.now() - line.startedMs) * 10) / 10,
      team_id: line.teamId,
      ...(!res.writableFinished && { aborted: true }),
    },
    'request',
  );
}

/**
 * The first middleware of the app: gives the request its id (header set at once, so every answer has it), binds a
 * child logger with `request_id` to `res.locals.log` (read it with `requestLog`), and writes the access line
 * (`writeAccessLine`) when the response is done. `routeOf`: the spec's route template of a path
 * (src/http/route-templates.ts), the same as the metrics' label.
 */
export function requestLogging(log: Logger, routeOf: (path: string) => string): RequestHandler {
  return (req, res, next) => {
    const startedMs = requestStartedMs(req);
    const requestId = requestIdOf(req);
    const method = req.method; // before HEAD is served as GET
    const requestPath = pathOf(req.originalUrl);
    const child = log.child({ request_id: requestId });
    res.locals.log = child;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.once('close', () => {
      const caller = res.locals.caller as { team: { id: string } } | undefined;
      writeAccessLine(child, res, { method, path: requestPath, route: routeOf(requestPath), startedMs, teamId: caller?.team.id });
    });
    next();
  };
}

/** The logger of this request (lines carry its `request_id`); `fallback` outside `requestLogging`. */
export function requestLog(res: Response, fallback: Logger): Logger {
  return (res.locals.log as Logger | undefined) ?? fallback;
}
