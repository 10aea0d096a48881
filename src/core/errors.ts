// One error family for the public API, mapped once (in the error middleware) to the documented shape.
import type { components } from '../generated/vidgate-api';

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

export const taskNotFound = (id: string) =>
  new ApiError(404, 'not_found_error', 'task_not_found', `no task '${id}'`, 'id');

export const conflict = (code: string, message: string) => new ApiError(409, 'conflict_error', code, message);

export const gone = (code: string, message: string) => new ApiError(410, 'gone_error', code, message);

export const serviceUnavailable = (code: string, message: string) =>
  new ApiError(503, 'service_unavailable_error', code, message);

export const internalError = () =>
  new ApiError(500, 'internal_server_error', 'internal_error', 'internal error; it was logged');
