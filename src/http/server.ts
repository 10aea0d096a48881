// The HTTP server around the app: how long a client may take to send a request, and the answers Node gives before
// Express sees a request (oversized headers, unparsable requests, timeouts), in the documented error shape.
import crypto from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from '../core/config';
import { ApiError } from '../core/errors';
import type { Logger } from '../core/logger';
import { REQUEST_ID_HEADER } from './request-log';

/** Node's `clientError` codes -> the answer; anything else unparsable is a 400. */
function answerFor(code: string | undefined): ApiError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError(431, 'invalid_request_error', 'headers_too_large', 'the request headers are over 16 KB');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(408, 'invalid_request_error', 'request_timeout', 'the request was not received in time');
    default:
      return new ApiError(400, 'invalid_request_error', 'malformed_request', 'the request is not valid HTTP/1.1');
  }
}

/**
 * Set on a response Express was still working on when Node answered its request itself (a body not received within
 * `server.request_timeout_ms`: 408): the status written, so the request metrics count it (src/http/app.ts).
 */
export const RAW_ANSWER_STATUS = Symbol('vidgate.rawAnswerStatus');

/** The response to write on a socket Express never saw, as raw HTTP/1.1 text, with the request's id. */
export function rawErrorResponse(err: ApiError, requestId: string): string {
  const body = JSON.stringify(err.toBody());
  return [
    `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status]}`,
    `${REQUEST_ID_HEADER}: ${requestId}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * An http.Server for `app` with `server.headers_timeout_ms` and `server.request_timeout_ms` (408 past them; Node's
 * defaults of 60 s and 300 s held a stalled body for 330 s), checked every second, and JSON answers for what Node
 * refuses before Express (431 over its 16 KB header limit, 400 unparsable, 408), per the `clientError` event's
 * contract (https://nodejs.org/api/http.html#event-clienterror): write on the socket unless a response has begun.
 * Such an answer carries an `X-Request-Id` and gets its access line like any other: the one of the request Express
 * was reading (a stalled body), whose line then has this status, else a new one logged here. After `close()`, every
 * answer carries `Connection: close`.
 */
export function createHttpServer(app: http.RequestListener, config: Pick<Config['server'], 'headers_timeout_ms' | 'request_timeout_ms'>, log: Logger): http.Server {
  const server = http.createServer(
    {
      headersTimeout: config.headers_timeout_ms,
      requestTimeout: config.request_timeout_ms,
      connectionsCheckingInterval: Math.min(1000, config.headers_timeout_ms),
    },
    app,
  );
  // Once the listener is closed (a drain), Node still serves the requests that come on kept-alive connections: a
  // busy client would go on sending work until the drain's deadline. Each such request is answered, and its
  // connection closed after it.
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!server.listening) res.setHeader('Connection', 'close');
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: http.ServerResponse }) => {
    const res = socket._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || res?.headersSent) return void socket.destroy();
    const answer = answerFor(err.code);
    const known = res?.getHeader(REQUEST_ID_HEADER);
    if (res && typeof known === 'string') {
      res.statusCode = answer.status; // for the access line written when this response closes
      (res as http.ServerResponse & { [RAW_ANSWER_STATUS]?: number })[RAW_ANSWER_STATUS] = answer.status; // and for the metrics
      return void socket.end(rawErrorResponse(answer, known));
    }
    const requestId = crypto.randomUUID();
    log.info({ request_id: requestId, status: answer.status, code: answer.code }, 'request'); // no method nor path: unparsed
    socket.end(rawErrorResponse(answer, requestId));
  });
  return server;
}
