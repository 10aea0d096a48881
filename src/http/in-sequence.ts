// Several middlewares as one Express layer.
import type { RequestHandler } from 'express';

/**
 * One middleware that runs `handlers` in order, as `app.use(...handlers)` would, and passes the first error (an
 * argument to `next`, or a throw) to the app's error handlers. Express walks its whole layer stack for every request,
 * so a library's five middlewares cost five layers per request; as one they cost one. `next('route')` and
 * `next('router')` are not supported (no middleware given here uses them).
 */
export function inSequence(handlers: readonly RequestHandler[]): RequestHandler {
  return (req, res, next) => {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err !== undefined && err !== null) return next(err);
      const handler = handlers[i++];
      if (!handler) return next();
      try {
        void handler(req, res, step);
      } catch (thrown) {
        next(thrown);
      }
    };
    step();
  };
}
