// express-openapi-validator 5.6 matches each request against the spec's routes by compiling every route with
// path-to-regexp again, on every request (dist/middlewares/openapi.metadata.js, `lookupRoute`): with the spec's 30
// paths that was the largest single cost of a status poll. The routes are fixed once the spec is loaded, so their
// compiled forms are kept here, keyed by route and options; the matching itself is the library's, unchanged.
import { createRequire } from 'node:module';

type PathToRegexp = (path: string, options?: { sensitive?: boolean; strict?: boolean; end?: boolean }) => { regexp: RegExp; keys: unknown[] };

let installed = false;

/**
 * Makes `pathToRegexp`, as express-openapi-validator requires it, return each route's compiled form from a cache.
 * Idempotent. The compiled RegExps have no `g` or `y` flag, so sharing them between requests keeps no state.
 */
export function cacheOpenApiRouteMatching(): void {
  if (installed) return;
  // The path-to-regexp module the validator loads (resolved from its own package), not whichever one is ours.
  const fromValidator = createRequire(createRequire(import.meta.url).resolve('express-openapi-validator'));
  const module = fromValidator('path-to-regexp') as { pathToRegexp: PathToRegexp };
  const compile = module.pathToRegexp;
  // By route, then by the options' combination (an index from their 3 flags, `end` unset or false counting apart):
  // the lookup runs for every route of the spec on every request, so it builds no key string.
  const compiled = new Map<string, Array<ReturnType<PathToRegexp> | undefined>>();
  module.pathToRegexp = (path, options = {}) => {
    const slot = (options.sensitive ? 1 : 0) + (options.strict ? 2 : 0) + (options.end === undefined ? 0 : options.end ? 4 : 8);
    let forPath = compiled.get(path);
    if (!forPath) compiled.set(path, (forPath = []));
    return (forPath[slot] ??= compile(path, options));
  };
  installed = true;
}
