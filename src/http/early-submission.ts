// The submission's short way through the Express app. A create (`POST /v1/videos/generations`) on the general
// path walks every layer mounted before the door's router (health, metrics, docs and playground routes) and
// express-openapi-validator's chain, which together cost more than the create itself. Mounted first, this route runs
// the general path's own middleware in the general path's order (the API key, the JSON parser, the number check,
// the door's handler) with the spec's checks of this one operation in place of the library's; a body or header the
// spec refuses goes on to the general path (`next('route')`) with the request already identified, counted and
// parsed, where the library refuses it with its own message. Every error of the shared middleware goes to the one
// error mapper, as on the general path.
import type { RequestHandler } from 'express';
import type { OperationValidators } from './spec-validators';

/**
 * Handlers for `app.post(path, ...)` mounted before the rest of the app: a JSON request to exactly `path` (no query
 * string, no trailing slash, the spec's case: Express's own matching is looser than the spec's) runs
 * `apiKey`, `json`, then (when `valid` accepts its headers and body) `exactNumbers` and `handler`; any other request
 * goes to the general path before anything ran. `apiKey` must skip a request it has identified already (see
 * requireApiKey), as the general path meets the refused ones again.
 */
export function earlySubmission(path: string, valid: OperationValidators, apiKey: RequestHandler, json: RequestHandler, exactNumbers: RequestHandler, handler: RequestHandler): RequestHandler[] {
  const check = valid.jsonBody;
  if (!check) throw new Error('earlySubmission: the operation takes no JSON body');
  const commonShape: RequestHandler = (req, _res, next) => next(req.url === path && req.is('application/json') ? undefined : 'route');
  const specChecks: RequestHandler = (req, _res, next) => next(valid.headers(req.headers) && check(req.body) ? undefined : 'route');
  return [commonShape, apiKey, json, specChecks, exactNumbers, handler];
}
