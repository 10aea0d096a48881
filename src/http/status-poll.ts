// The status polls in front of Express. Clients poll every running video about once a second (`GET /v1/tasks/{id}`,
// or the OpenAI SDK's `GET /v1/videos/{id}`), so polls are most of a gateway's traffic; through Express each walks
// every layer of the app (the router's matching, the docs and health routes, the body parsers,
// express-openapi-validator, the door's router), which cost four times what the poll itself does. A poll of the
// common shape is answered here, on node:http's own request and response, by the same steps as the general path
// (identifyOnce, the task read, admitRequest, the door's presenter and headers) with the same answer, request id,
// access line and latency metric. Any other request, and any poll that is
// not a plain success (no key or a refused one, an unknown task, a 429, an error), is handed to the Express app
// untouched: nothing counted, no header set, so the general path answers it exactly as it would have (every error
// of the spec's validation included).
import type http from 'node:http';
import { ApiError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';
import type { Store } from '../store/types';
import { admitRequest, identifyOnce } from './auth';
import { presentOwnTask, requestBaseUrl, type NativeRoutesDeps } from './native/routes';
import { pollHeaders, presentOwnVideo, type OpenAIRoutesDeps } from './openai/routes';
import { REQUEST_ID_HEADER, pathOf, requestIdOf, requestStartedMs, writeAccessLine } from './request-log';
import { JSON_TYPE } from './send-json';
import { operationValidators, type OperationValidators, type Spec } from './spec-validators';
import type { Caller } from '../core/teams';

export interface StatusPollDeps extends NativeRoutesDeps, OpenAIRoutesDeps {
  store: Store;
  metrics: Metrics;
  log: Logger;
  now: () => number;
}

/** A poll route of a door: its spec route, and its answer to the caller's task `id`. */
interface PollRoute {
  /** The spec's route template, `/v1/<collection>/{id}`. */
  route: string;
  /** The door's body for the caller's task. @throws ApiError 404 when the caller has no such task. */
  present: (caller: Caller, id: string, req: http.IncomingMessage) => Promise<unknown>;
  /** The door's own headers on a success, after the rate-limit headers (as its route sets them). */
  headers: Record<string, string>;
  /** Checks of the operation's path and header parameters, from the spec. */
  valid: OperationValidators;
}

/**
 * A request listener: `GET` or `HEAD /v1/tasks/{id}` or `/v1/videos/{id}` with no query string, no body and an `id`
 * (not percent-encoded) that the spec's schema accepts is answered here when it succeeds; everything else goes to
 * `general` (the Express app), as does one with a header parameter of the operation that the spec refuses. Throws at
 * startup if a spec operation is not one this lane can check (see `operationValidators`).
 */
export function withStatusPollLane(spec: Spec, deps: StatusPollDeps, general: http.RequestListener): http.RequestListener {
  const { store, metrics, log, now } = deps;
  const routes = new Map<string, PollRoute>(
    (
      [
        ['/v1/tasks/{id}', (caller, id, req) => presentOwnTask(deps, caller, id, requestBaseUrl(deps.publicUrl, req)), {}],
        ['/v1/videos/{id}', (caller, id) => presentOwnVideo(deps, caller, id), pollHeaders],
      ] satisfies [string, PollRoute['present'], PollRoute['headers']][]
    ).map(([route, present, headers]) => {
      const valid = operationValidators(spec, route, 'get');
      if (valid.jsonBody) throw new Error(`GET ${route} takes a body: not for the status-poll lane`);
      return [route.slice(0, -'{id}'.length), { route, present, headers, valid }];
    }),
  );

  /** The route and the task's id when the request has the lane's shape, else undefined. */
  const pollTarget = (req: http.IncomingMessage): { target: PollRoute; id: string } | undefined => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return undefined;
    if (req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined) return undefined;
    const url = req.url!;
    const cut = url.lastIndexOf('/') + 1;
    const poll = routes.get(url.slice(0, cut));
    const id = url.slice(cut);
    if (!poll || /[?%]/.test(id) || !poll.valid.path({ id }) || !poll.valid.headers(req.headers)) return undefined;
    return { target: poll, id };
  };

  /** What the lane knows of a request while it decides. */
  interface Poll {
    req: http.IncomingMessage;
    res: http.ServerResponse;
    target: PollRoute;
    id: string;
    startedMs: number;
    /** Made when first needed (the answer, or the access line of a client that left). */
    requestId?: string;
    teamId?: string;
    /** Handed to Express, which then logs and times it. */
    handed: boolean;
  }

  /**
   * Answers a successful poll and returns true; returns false, having written and counted nothing, otherwise. A poll
   * whose client left before the answer is dropped (true): its access line is written at `close`.
   */
  async function answer(p: Poll): Promise<boolean> {
    const { req, res, target, id } = p;
    const caller = await identifyOnce(store, req, now);
    if (caller instanceof ApiError) return false;
    p.teamId = caller.team.id;
    let view;
    try {
      view = await target.present(caller, id, req);
    } catch (err) {
      if (err instanceof ApiError) return false; // 404: the general path answers it
      throw err;
    }
    if (res.destroyed) return true; // nobody to answer nor count
    const { headers, refusal } = await admitRequest(store, caller, req.method!, req.url!.slice('/v1'.length), now());
    if (refusal) return false; // a refused request counted nothing
    const body = JSON.stringify(view);
    // As on the general path: the latency of answered requests (the access line is written at close).
    res.once('finish', () => metrics.httpRequestDuration.observe({ method: req.method!, route: target.route, status: '200' }, (performance.now() - p.startedMs) / 1000));
    res.writeHead(200, { [REQUEST_ID_HEADER]: (p.requestId = requestIdOf(req)), ...headers, ...target.headers, 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  }

  return (req, res) => {
    const shape = pollTarget(req);
    if (shape === undefined) return general(req, res);
    const p: Poll = { req, res, ...shape, startedMs: requestStartedMs(req), handed: false };
    // Every request the lane keeps has its access line, also one whose client leaves while the lane reads.
    res.once('close', () => {
      if (!p.handed) writeAccessLine(log, res, { method: req.method!, path: pathOf(req.url), route: p.target.route, startedMs: p.startedMs, teamId: p.teamId, requestId: p.requestId ?? requestIdOf(req) });
    });
    const handOver = () => {
      p.handed = true;
      if (!res.destroyed) general(req, res);
    };
    answer(p).then(
      (answered) => answered || handOver(),
      handOver, // a store error: the general path meets it too, and answers it in the error shape
    );
  };
}
