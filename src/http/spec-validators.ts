// Validators of one operation's request, compiled once from openapi/vidgate.yaml with ajv, for the routes that go
// a shorter way than express-openapi-validator (src/http/status-poll.ts, src/http/early-submission.ts). They use
// the library's own request settings (JSON Schema 2020-12 for OpenAPI 3.1, defaults filled in, numbers strict) and
// ajv-formats' full formats, so that what they accept the library accepts too; what they refuse is handed to the
// library, which answers it.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** The spec's parts read here (OpenAPI 3.1). */
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema: object;
  $ref?: string;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: object }> };
}
export interface Spec {
  paths: Record<string, Record<string, Operation | Parameter[]>>;
  components: { parameters: Record<string, Parameter> };
}

/** Checks a value: `(value) => boolean` (ajv's validate function; it may fill in the schema's defaults). */
export type Check = (value: unknown) => boolean;

/** The request checks of one operation; see `operationValidators`. */
export interface OperationValidators {
  /** The path parameters, by name. */
  path: Check;
  /** The header parameters, by lower-case name (Node's `req.headers`). */
  headers: Check;
  /** The JSON body, when the operation takes one (its defaults filled in, as the library does). */
  jsonBody?: Check;
}

/**
 * The validators of the operation `method specPath` (its own and its path's parameters, `$ref`s resolved).
 * @throws Error at startup when the operation is not in the spec, or has query or cookie parameters, which a
 *   route that leaves the query string to the library does not check.
 */
export function operationValidators(spec: Spec, specPath: string, method: string): OperationValidators {
  const name = `${method.toUpperCase()} ${specPath}`;
  const item = spec.paths[specPath];
  const operation = item?.[method] as Operation | undefined;
  if (!item || !operation) throw new Error(`no operation ${name} in the spec`);
  const resolve = (p: Parameter) => (p.$ref ? spec.components.parameters[p.$ref.replace('#/components/parameters/', '')]! : p);
  const parameters = [...((item.parameters as Parameter[] | undefined) ?? []), ...(operation.parameters ?? [])].map(resolve);
  const other = parameters.find((p) => p.in !== 'path' && p.in !== 'header');
  if (other) throw new Error(`${name} has the ${other.in} parameter ${other.name}: not checked here`);

  const ajv = new Ajv2020({ strict: false, strictNumbers: true, strictTuples: true, allowUnionTypes: false, useDefaults: true, validateSchema: false });
  addFormats(ajv, { mode: 'full' });
  ajv.addSchema({ ...spec, $id: 'spec' });
  const objectOf = (where: string, key: (p: Parameter) => string) => {
    const own = parameters.filter((p) => p.in === where);
    return ajv.compile({
      type: 'object',
      properties: Object.fromEntries(own.map((p) => [key(p), p.schema])),
      required: own.filter((p) => p.required).map(key),
    }) as Check;
  };
  const json = operation.requestBody?.content['application/json'];
  return {
    path: objectOf('path', (p) => p.name),
    headers: objectOf('header', (p) => p.name.toLowerCase()),
    ...(json && { jsonBody: ajv.compile({ $ref: `spec#/paths/${pointer(specPath)}/${method}/requestBody/content/application~1json/schema` }) as Check }),
  };
}

/** A JSON Pointer token (RFC 6901): `~` as `~0`, `/` as `~1`. */
const pointer = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');
