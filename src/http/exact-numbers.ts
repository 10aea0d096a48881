// Numbers that JSON or a query string can carry but no field can use, refused before any use case sees them.
import type { RequestHandler } from 'express';
import { invalidRequest } from '../core/errors';

/**
 * The first number in `value` (depth-first) that is not finite (`1e400` and `Infinity` parse as Infinity) or is an
 * integer beyond ±(2^53 - 1), which a JavaScript number and so SQLite's binding cannot hold exactly
 * (`9007199254740993` arrives as ...992). Returns its path (`quotas.credits_per_day`) or undefined.
 */
export function inexactNumberAt(value: unknown, path: string[] = []): string | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)) ? undefined : path.join('.');
  }
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value)) {
    const at = inexactNumberAt(v, [...path, k]);
    if (at !== undefined) return at;
  }
  return undefined;
}

/**
 * After spec validation (which coerces query numbers): a 400 `invalid_value` naming the field for any number of the
 * query or body that cannot be stored exactly. The spec's maxima bound each field's meaning; this bounds what a
 * number can be at all, for every route, including those added later.
 */
export function refuseInexactNumbers(): RequestHandler {
  return (req, _res, next) => {
    for (const [where, value] of [['query', req.query], ['body', req.body]] as const) {
      const at = inexactNumberAt(value);
      if (at !== undefined) {
        const param = at || where;
        return next(invalidRequest('invalid_value', `${param}: must be a finite number; integers must lie within ±9007199254740991`, param));
      }
    }
    next();
  };
}
