// One error family for the public API, mapped once (in the error middleware) to the documented shape.
import type { components } from '../generated/vidgate-api';
import type { QuotaExceededError } from '../store/types';

export type ErrorBody = components['schemas']['Error'];
export type ErrorType = ErrorBody['error']['type'];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, type: this.type, param: this.param } };
  }
}

export const invalidRequest = (code: string, message: string, param: string | null = null) =>
  new ApiError(400, 'invalid_request_error', code, message, param);

export const unauthorized = (message: string) =>
  new ApiError(401, 'authentication_error', 'invalid_api_key', message, null, { 'WWW-Authenticate': 'Bearer' });

export const forbidden = (code: string, message: string, param: string | null = null) =>
  new ApiError(403, 'permission_error', code, message, param);

export const taskNotFound = (id: string) =>
  new ApiError(404, 'not_found_error', 'task_not_found', `no task '${id}'`, 'id');

export const conflict = (code: string, message: string) => new ApiError(409, 'conflict_error', code, message);

export const gone = (code: string, message: string) => new ApiError(410, 'gone_error', code, message);

export const internalError = () =>
  new ApiError(500, 'internal_server_error', 'internal_error', 'internal error; it was logged');

/** A quota the request would exceed: 402 for credits, 429 for concurrency, with Retry-After where waiting helps. */
export function quotaError(err: QuotaExceededError, nowMs: number): ApiError {
  const whose = err.scope === 'team' ? "the team's" : "this key's";
  const detail = `${whose} ${err.quota.replaceAll('_', ' ')} is ${err.limit} and ${err.used} are used`;
  if (err.quota === 'max_concurrent') {
    return new ApiError(429, 'rate_limit_error', 'max_concurrent_exceeded', `too many unfinished tasks: ${detail}`, null, { 'Retry-After': '10' });
  }
  const now = new Date(nowMs);
  const nextWindow =
    err.quota === 'credits_per_day'
      ? Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)
      : Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return new ApiError(402, 'insufficient_quota_error', `${err.quota}_exceeded`, `not enough credits: ${detail}`, null, {
    'Retry-After': String(Math.ceil((nextWindow - nowMs) / 1000)),
  });
}
