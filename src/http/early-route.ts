// The status poll ahead of the app's general middleware. Clients poll every running video about once a second, so
// `GET /v1/tasks/{id}` is most of a gateway's traffic; through the general path it walks every layer of the app
// (the docs and health routes, the body parsers, express-openapi-validator's five middlewares, the number check, the
// door's router). Here a request of the common shape takes a shorter way with the same checks, and any other goes on
// to the general path, which answers it exactly as before (including every 400 of the spec's validation).
import Ajv from 'ajv';
import type { RequestHandler } from 'express';

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
 * body or a parameter outside the path, which the early route does not check.
 */
export function pathParamsValidator(spec: Spec, specPath: string, method: string): (params: object) => boolean {
  const item = spec.paths[specPath];
  const operation = item?.[method] as { parameters?: Parameter[]; requestBody?: unknown } | undefined;
  if (!item || !operation) throw new Error(`no operation ${method.toUpperCase()} ${specPath} in the spec`);
  if (operation.requestBody) throw new Error(`${method.toUpperCase()} ${specPath} has a body: not for an early route`);
  const parameters = [...((item.parameters as Parameter[] | undefined) ?? []), ...(operation.parameters ?? [])].map((p) => resolve(spec, p));
  const outside = parameters.find((p) => p.in !== 'path');
  if (outside) throw new Error(`${method.toUpperCase()} ${specPath} has the ${outside.in} parameter ${outside.name}: not for an early route`);
  const schema = {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
    required: parameters.filter((p) => p.required).map((p) => p.name),
  };
  return new Ajv({ strict: false }).compile(schema);
}

/**
 * Handlers for `app.get(expressPath, ...)` placed before the general middleware: a request with no query string and
 * no body whose path parameters the spec's schemas accept runs `auth` then `handler`; any other goes to the next
 * route (`next('route')`), i.e. the general path, before anything is counted or read. `auth` and `handler` must be
 * those the general path runs for this operation, so that both ways answer alike.
 */
export function earlyRoute(validParams: (params: object) => boolean, auth: RequestHandler, handler: RequestHandler): RequestHandler[] {
  const commonShape: RequestHandler = (req, _res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
    next(req.url.includes('?') || hasBody || !validParams(req.params) ? 'route' : undefined);
  };
  return [commonShape, auth, handler];
}
