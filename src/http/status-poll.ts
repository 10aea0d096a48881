// The status poll in front of Express. Clients poll every running video about once a second, so
// `GET /v1/tasks/{id}` is most of a gateway's traffic; through Express it walks every layer of the app (the router's
// matching, the docs and health routes, the body parsers, express-openapi-validator, the door's router), which cost
// four times what the poll itself does. A poll of the common shape is answered here, on node:http's own request and
// response, by the same steps as the general path (identifyCaller, the task read, admitRequest, the door's Task
// shape) with the same answer, request id, access line and latency metric. Any other request, and any poll that is
// not a plain success (no key or a refused one, an unknown task, a 429, an error), is handed to the Express app
// untouched: nothing counted, no header set, so the general path answers it exactly as it would have (every error
// of the spec's validation included).
import type http from 'node:http';
import { ApiError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';
import type { Store } from '../store/types';
import { admitRequest, identifyCaller } from './auth';
import { presentOwnTask, requestBaseUrl, type NativeRoutesDeps } from './native/routes';
import { REQUEST_ID_HEADER, pathOf, requestIdOf, writeAccessLine } from './request-log';
import { JSON_TYPE } from './send-json';
import { operationValidators, type Spec } from './spec-validators';

export interface StatusPollDeps extends NativeRoutesDeps {
  store: Store;
  metrics: Metrics;
  log: Logger;
  now: () => number;
}

const PREFIX = '/v1/tasks/';
const ROUTE = '/v1/tasks/{id}';

/**
 * A request listener: `GET` or `HEAD /v1/tasks/{id}` with no query string, no body and an `id` (not percent-encoded)
 * that the spec's schema accepts is answered here when it succeeds; everything else goes to `general` (the Express
 * app), as does one with a header parameter of the operation that the spec refuses. Throws at startup if the
 * spec's operation is not one this lane can check (see `operationValidators`).
 */
export function withStatusPollLane(spec: Spec, deps: StatusPollDeps, general: http.RequestListener): http.RequestListener {
  const valid = operationValidators(spec, ROUTE, 'get');
  if (valid.jsonBody) throw new Error(`GET ${ROUTE} takes a body: not for the status-poll lane`);
  const { store, metrics, log, now } = deps;

  /** The task's id when the request has the lane's shape, else undefined. */
  const pollTarget = (req: http.IncomingMessage): string | undefined => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return undefined;
    const url = req.url!;
    if (!url.startsWith(PREFIX) || req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined) return undefined;
    const id = url.slice(PREFIX.length);
    if (/[/?%]/.test(id) || !valid.path({ id }) || !valid.headers(req.headers)) return undefined;
    return id;
  };

  /** Answers a successful poll and returns true; returns false, having written and counted nothing, otherwise. */
  async function answer(req: http.IncomingMessage, res: http.ServerResponse, id: string, startedMs: number): Promise<boolean> {
    const caller = await identifyCaller(store, req.headers.authorization, now);
    if (caller instanceof ApiError) return false;
    let task;
    try {
      task = await presentOwnTask(deps, caller, id, requestBaseUrl(deps.publicUrl, req));
    } catch (err) {
      if (err instanceof ApiError) return false; // 404: the general path answers it
      throw err;
    }
    const { headers, refusal } = await admitRequest(store, caller, req.method!, `/tasks/${id}`, now());
    if (refusal) return false; // a refused request counted nothing
    const requestId = requestIdOf(req);
    const body = JSON.stringify(task);
    // As on the general path: the latency of answered requests, and an access line for every one.
    res.once('finish', () => metrics.httpRequestDuration.observe({ method: req.method!, route: ROUTE, status: '200' }, (performance.now() - startedMs) / 1000));
    res.once('close', () => writeAccessLine(log, res, { method: req.method!, path: pathOf(req.url), route: ROUTE, startedMs, teamId: caller.team.id, requestId }));
    res.writeHead(200, { [REQUEST_ID_HEADER]: requestId, ...headers, 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  }

  return (req, res) => {
    const id = pollTarget(req);
    if (id === undefined) return general(req, res);
    answer(req, res, id, performance.now()).then(
      (answered) => answered || general(req, res),
      () => general(req, res), // a store error: the general path meets it too, and answers it in the error shape
    );
  };
}
