// How every JSON answer is written: the body serialized once and sent with its length in one `end` call.
import type express from 'express';

/** The Content-Type of every JSON answer. */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Replaces `res.json` for one app (through `app.response`, Express's per-app prototype of responses). Express's own
 * `res.json` -> `res.send` also parses the Content-Type to add its charset, checks the request's freshness
 * (If-None-Match, If-Modified-Since: never a hit here, as no response has an ETag or Last-Modified) and looks at the
 * status for 204/304; on a status poll that was about a fifth of the gateway's CPU. The answer is the same:
 * `Content-Type: application/json; charset=utf-8` (unless a route set another type), `Content-Length`, the body;
 * a HEAD request (routed as GET) gets the headers only, as Node drops the body of a response to HEAD.
 * Wrappers of `res.json` on a response (express-openapi-validator's response validation) still wrap this one.
 */
export function sendJsonDirectly(app: express.Express): void {
  app.response.json = function json(this: express.Response, value: unknown) {
    const text = JSON.stringify(value) ?? '';
    const type = this.getHeader('Content-Type');
    if (type === undefined || type === 'application/json') this.setHeader('Content-Type', JSON_TYPE);
    this.setHeader('Content-Length', Buffer.byteLength(text));
    this.end(text);
    return this;
  };
}
