// The one error mapper: whatever threw (a use case, the body parser, the spec validator, sendFile),
// the client gets the documented error shape, which is also the shape the OpenAI SDK parses.
import type { ErrorRequestHandler } from 'express';
import { ApiError, internalError } from '../core/errors';
import type { Logger } from '../core/logger';

type HttpLikeError = Error & {
  status?: number;
  type?: string;
  headers?: Record<string, string>;
  errors?: { path: string; message: string; errorCode?: string }[];
};

/** Every error, whatever threw it, as an ApiError; anything unknown is a 500 `internal_error`. */
export function toApiError(err: HttpLikeError): ApiError {
  if (err instanceof ApiError) return err;
  if (err.type === 'entity.too.large') {
    return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
  }
  if (err.type === 'entity.parse.failed') {
    return new ApiError(400, 'invalid_request_error', 'invalid_json', 'the request body is not valid JSON');
  }
  if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') {
    return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as JSON in UTF-8, uncompressed or gzip/deflate');
  }
  if (err.status === 416) {
    // From sendFile; its headers carry the Content-Range with the file's size.
    return new ApiError(416, 'invalid_request_error', 'range_not_satisfiable', 'the requested range is outside the video', 'Range', err.headers);
  }
  if (Array.isArray(err.errors) && typeof err.status === 'number') return fromValidationError(err);
  return internalError();
}

function fromValidationError(err: HttpLikeError): ApiError {
  const first = err.errors?.[0];
  switch (err.status) {
    case 404:
      return new ApiError(404, 'not_found_error', 'route_not_found', 'no such route; see /docs');
    case 405:
      return new ApiError(405 as number, 'invalid_request_error', 'method_not_allowed', err.message);
    case 413:
      return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
    case 415:
      return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as application/json');
  }
  if (err.status !== 400 || !first) return internalError();
  // Paths look like "/body/duration", "/query/limit" or "/body/image_urls/0".
  const [, where, ...rest] = first.path.split('/');
  const param = rest.length ? rest.join('.') : (where ?? null);
  const code = first.errorCode?.startsWith('required') ? 'missing_field' : first.errorCode?.startsWith('additionalProperties') ? 'unknown_field' : 'invalid_value';
  return new ApiError(400, 'invalid_request_error', code, `${param ?? 'request'}: ${first.message}`, param);
}

/** The last middleware of the app: maps the error and logs only what is the server's fault. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: HttpLikeError, req, res, _next) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500) log.error('request failed', { method: req.method, path: req.path, error: err.message, stack: err.stack });
    if (res.headersSent) return void res.end();
    res.status(apiError.status).set(apiError.headers).json(apiError.toBody());
  };
}
