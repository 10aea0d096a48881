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
import Ajv from 'ajv';
import { ApiError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';
import type { Store } from '../store/types';
import { admitRequest, identifyCaller } from './auth';
import { presentOwnTask, requestBaseUrl, type NativeRoutesDeps } from './native/routes';
import { REQUEST_ID_HEADER, pathOf, requestIdOf, writeAccessLine } from './request-log';
import { JSON_TYPE } from './send-json';

/** The spec's parts read here (OpenAPI 3.1). */
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema: object;
  $ref?: string;
}
interface Spec {
  paths: Record<string, Record<string, { parameters?: Parameter[]; requestBody?: unknown } | Parameter[]>>;
  components: { parameters: Record<string, Parameter> };
}

const resolve = (spec: Spec, p: Parameter): Parameter =>
  p.$ref ? spec.components.parameters[p.$ref.replace('#/components/parameters/', '')]! : p;

/**
 * A validator of the path parameters of the operation `method path` of the spec (its own and its path's parameters,
 * `$ref`s resolved), compiled once with ajv: `(params) => boolean`. Throws at startup if the operation has a request
 * body or a parameter outside the path, which a lane in front of the spec's validation does not check.
 */
export function pathParamsValidator(spec: Spec, specPath: string, method: string): (params: object) => boolean {
  const item = spec.paths[specPath];
  const operation = item?.[method] as { parameters?: Parameter[]; requestBody?: unknown } | undefined;
  if (!item || !operation) throw new Error(`no operation ${method.toUpperCase()} ${specPath} in the spec`);
  if (operation.requestBody) throw new Error(`${method.toUpperCase()} ${specPath} has a body: not for the status-poll lane`);
  const parameters = [...((item.parameters as Parameter[] | undefined) ?? []), ...(operation.parameters ?? [])].map((p) => resolve(spec, p));
  const outside = parameters.find((p) => p.in !== 'path');
  if (outside) throw new Error(`${method.toUpperCase()} ${specPath} has the ${outside.in} parameter ${outside.name}: not for the status-poll lane`);
  const schema = {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
    required: parameters.filter((p) => p.required).map((p) => p.name),
  };
  return new Ajv({ strict: false }).compile(schema);
}

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
 * app). Throws at startup if the spec's operation is not one this lane can check (see `pathParamsValidator`).
 */
export function withStatusPollLane(spec: Spec, deps: StatusPollDeps, general: http.RequestListener): http.RequestListener {
  const validParams = pathParamsValidator(spec, ROUTE, 'get');
  const { store, metrics, log, now } = deps;

  /** The task's id when the request has the lane's shape, else undefined. */
  const pollTarget = (req: http.IncomingMessage): string | undefined => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return undefined;
    const url = req.url!;
    if (!url.startsWith(PREFIX) || req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined) return undefined;
    const id = url.slice(PREFIX.length);
    if (/[/?%]/.test(id) || !validParams({ id })) return undefined;
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
