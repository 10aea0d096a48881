// The one error mapper: whatever threw (a use case, the body parser, the spec validator, sendFile),
// the client gets the documented error shape, which is also the shape the OpenAI SDK parses.
import type { ErrorRequestHandler } from 'express';
import { AssetStoreError } from '../assets/types';
import { ApiError, internalError } from '../core/errors';
import type { Logger } from '../core/logger';
import { requestLog } from './request-log';
import { StoreUnavailable, UniqueViolation } from '../store/types';

type HttpLikeError = Error & {
  status?: number;
  /** body-parser's: the raw body that did not parse. */
  body?: unknown;
  type?: string;
  code?: string;
  expose?: boolean;
  headers?: Record<string, string>;
  errors?: { path: string; message: string; errorCode?: string }[];
};

/** Node's codes for a client that went away mid-request or mid-response (send's ECONNABORTED included). */
const CLIENT_GONE = new Set(['ECONNABORTED', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The client hung up (body-parser's `request.aborted`, or a write to a closed socket): nothing to answer, not a fault. */
export const isClientGone = (err: HttpLikeError) => err.type === 'request.aborted' || CLIENT_GONE.has(err.code ?? '');

/** Every error, whatever threw it, as an ApiError; anything unknown is a 500 `internal_error`. */
export function toApiError(err: HttpLikeError, multipart = false): ApiError {
  if (err instanceof ApiError) return err;
  if (multipart && Array.isArray(err.errors)) {
    const refused = fromMultipartError(err);
    if (refused) return refused;
  }
  if (err.type === 'entity.too.large') {
    return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
  }
  if (err.type === 'entity.parse.failed') {
    // The JSON parser takes only objects and arrays: `null`, `1` or `"x"` are JSON, the wrong kind of body.
    if (isJson(err.body)) return new ApiError(400, 'invalid_request_error', 'invalid_value', 'body: must be object', 'body');
    return new ApiError(400, 'invalid_request_error', 'invalid_json', 'the request body is not valid JSON');
  }
  if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') {
    return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as JSON in UTF-8, uncompressed or gzip/deflate');
  }
  if (err.code?.startsWith('Z_')) {
    // zlib's Z_DATA_ERROR and kin: the body is not what its Content-Encoding says.
    return new ApiError(400, 'invalid_request_error', 'invalid_encoding', `the body does not decode as its Content-Encoding says (${err.message})`, 'Content-Encoding');
  }
  // A violation the domain did not expect: still the client's conflict, named without the store's table and column.
  if (err instanceof UniqueViolation) return new ApiError(409, 'conflict_error', 'already_exists', 'a value that must be unique is already taken');
  if (err instanceof StoreUnavailable) {
    return new ApiError(503, 'service_unavailable_error', 'store_unavailable', 'the store is busy or unavailable; try again shortly', null, { 'Retry-After': '1' });
  }
  if (err instanceof AssetStoreError) {
    return new ApiError(503, 'service_unavailable_error', 'store_unavailable', 'the video store is unavailable; try again shortly', null, { 'Retry-After': '1' });
  }
  if (err.status === 416) {
    // From sendFile; its headers carry the Content-Range with the file's size.
    return new ApiError(416, 'invalid_request_error', 'range_not_satisfiable', 'the requested range is outside the video', 'Range', err.headers);
  }
  if (Array.isArray(err.errors) && typeof err.status === 'number') return fromValidationError(err);
  // The router decodes a route's path parameters before any handler runs: `%ZZ` is the URL's fault.
  if (err instanceof URIError && err.status === 400) return malformedPathParameter();
  // Any other client error from the HTTP stack (http-errors with `expose`), e.g. a malformed URL or Content-Length.
  if (err.expose && err.status && err.status >= 400 && err.status < 500) {
    return new ApiError(err.status, 'invalid_request_error', 'bad_request', err.message);
  }
  return internalError();
}

/**
 * The validator's multipart parser (multer over busboy) reports a body it cannot read as a 500 ("Unexpected end of
 * form", "Malformed part header") and too many files as a 413: both are the request's fault. A file too large stays 413.
 */
function fromMultipartError(err: HttpLikeError): ApiError | undefined {
  if (err.status === 413 && /too many (files|parts)/i.test(err.message)) {
    return new ApiError(400, 'invalid_request_error', 'invalid_multipart', 'send at most one file part (input_reference)', 'input_reference');
  }
  if (err.status === 500) {
    return new ApiError(400, 'invalid_request_error', 'invalid_multipart', `the multipart body cannot be read (${err.message.slice(0, 100)})`);
  }
  return undefined;
}

/** Where express-openapi-validator's errors about a field point (the first segment of an error's path). */
const REQUEST_PARTS = new Set(['body', 'query', 'path', 'headers', 'cookies']);

const malformedPathParameter = () => new ApiError(400, 'invalid_request_error', 'invalid_value', 'a path parameter is not valid percent-encoding');

const isJson = (text: unknown) => {
  if (typeof text !== 'string') return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

function fromValidationError(err: HttpLikeError): ApiError {
  const first = err.errors?.[0];
  switch (err.status) {
    case 404:
      return new ApiError(404, 'not_found_error', 'route_not_found', 'no such route; see /docs');
    case 405:
      return methodNotAllowed(err.headers?.Allow?.toUpperCase() ?? '');
    case 413:
      return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
    case 415:
      return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as application/json, or as multipart/form-data where the route takes it (see /docs)');
  }
  if (err.status !== 400 || !first) return internalError();
  // Paths look like "/body/duration", "/query/limit" or "/body/image_urls/0".
  const [, where, ...rest] = first.path.split('/');
  // An error about the request as a whole names the request's URL path instead (e.g. "/v1/tasks/%E0%A4%A").
  if (!REQUEST_PARTS.has(where ?? '')) {
    return /malformed uri/i.test(first.message) ? malformedPathParameter() : new ApiError(400, 'invalid_request_error', 'bad_request', first.message);
  }
  const param = rest.length ? rest.join('.') : (where ?? null);
  const code = first.errorCode?.startsWith('required') ? 'missing_field' : first.errorCode?.startsWith('additionalProperties') ? 'unknown_field' : 'invalid_value';
  return new ApiError(400, 'invalid_request_error', code, `${param ?? 'request'}: ${first.message}`, param);
}

/** 405 with the `Allow` header RFC 9110 §15.5.6 requires; `allow` is e.g. `GET, POST`. */
export function methodNotAllowed(allow: string): ApiError {
  return new ApiError(405, 'invalid_request_error', 'method_not_allowed', `this route allows only ${allow}`, null, { Allow: allow });
}

/**
 * The last middleware of the app: maps the error and logs only what is the server's fault; a client that hung up is
 * logged at info. The answer is JSON whatever the failed route had set (sendFile's `video/mp4`, its caching).
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: HttpLikeError, req, res, _next) => {
    if (isClientGone(err)) {
      requestLog(res, log).info({ method: req.method, path: req.path, code: err.code ?? err.type }, 'client closed the connection');
      return void (res.headersSent ? res.end() : res.destroy());
    }
    const apiError = toApiError(err, Boolean(req.is('multipart/form-data')));
    if (apiError.status >= 500) requestLog(res, log).error({ method: req.method, path: req.path, error: err.message, stack: err.stack }, 'request failed');
    if (res.headersSent) return void res.end();
    res.removeHeader('Cache-Control');
    res.status(apiError.status).set(apiError.headers).type('application/json').json(apiError.toBody());
  };
}
