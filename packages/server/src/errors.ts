/**
 * The one registry of Herald's typed errors. Each code is declared once with its HTTP status,
 * whether retrying may succeed, and a default message; `docs/errors.md` is kept in step with
 * this table by a test.
 */
import { ErrorCode } from '@herald/protocol';
import type { ErrorBody } from '@herald/protocol';

interface ErrorSpec {
  status: number;
  temporary: boolean;
  message: string;
}

export const ERRORS: Record<ErrorCode, ErrorSpec> = {
  [ErrorCode.INVALID_JSON]: { status: 400, temporary: false, message: 'The frame or body is not valid JSON' },
  [ErrorCode.UNKNOWN_FRAME_TYPE]: { status: 400, temporary: false, message: 'Unknown frame type' },
  [ErrorCode.INVALID_FRAME]: { status: 400, temporary: false, message: 'The frame does not match its schema' },
  [ErrorCode.INVALID_ENVELOPE]: { status: 400, temporary: false, message: 'The message envelope does not match its schema' },
  [ErrorCode.NOT_CONNECTED]: { status: 400, temporary: false, message: 'Send a connect frame first' },
  [ErrorCode.ALREADY_CONNECTED]: { status: 400, temporary: false, message: 'This connection is already authenticated' },
  [ErrorCode.UNAUTHORIZED]: { status: 401, temporary: false, message: 'The token is missing or invalid' },
  [ErrorCode.TOKEN_EXPIRED]: { status: 401, temporary: true, message: 'The token has expired; refresh it and reconnect' },
  [ErrorCode.PERMISSION_DENIED]: { status: 403, temporary: false, message: 'The token does not allow this channel' },
  [ErrorCode.INVALID_CHANNEL]: { status: 400, temporary: false, message: 'Channel names match ^[A-Za-z0-9_:.\\-]{1,255}$' },
  [ErrorCode.TOO_MANY_SUBSCRIPTIONS]: { status: 400, temporary: false, message: 'The connection has reached its subscription limit' },
  [ErrorCode.ALREADY_SUBSCRIBED]: { status: 400, temporary: false, message: 'Already subscribed to this channel' },
  [ErrorCode.NOT_SUBSCRIBED]: { status: 400, temporary: false, message: 'Not subscribed to this channel' },
  [ErrorCode.MESSAGE_TOO_LARGE]: { status: 413, temporary: false, message: 'The message exceeds the size limit' },
  [ErrorCode.UNKNOWN_METHOD]: { status: 404, temporary: false, message: 'No handler for this request method' },
  [ErrorCode.REQUEST_TIMEOUT]: { status: 504, temporary: true, message: 'The peer did not answer in time' },
  [ErrorCode.CLIENT_TIMEOUT]: { status: 408, temporary: true, message: 'The request did not arrive in time' },
  [ErrorCode.INVALID_FILTER]: { status: 400, temporary: false, message: 'The tag filter is invalid' },
  [ErrorCode.BAD_REQUEST]: { status: 400, temporary: false, message: 'The request does not match its schema' },
  [ErrorCode.API_KEY_REQUIRED]: { status: 401, temporary: false, message: 'Send the API key as "Authorization: Bearer <key>" or "X-API-Key"' },
  [ErrorCode.INVALID_API_KEY]: { status: 401, temporary: false, message: 'The API key is not valid' },
  [ErrorCode.NOT_FOUND]: { status: 404, temporary: false, message: 'No such route' },
  [ErrorCode.CONNECTION_NOT_FOUND]: { status: 404, temporary: false, message: 'No such connection on this server' },
  [ErrorCode.UNSUPPORTED_MEDIA_TYPE]: { status: 415, temporary: false, message: 'Send JSON with Content-Type: application/json' },
  [ErrorCode.FORBIDDEN_ORIGIN]: { status: 403, temporary: false, message: 'The Origin is not in origins.allowed' },
  [ErrorCode.TOO_MANY_CONNECTIONS]: { status: 429, temporary: true, message: 'A connection limit was reached' },
  [ErrorCode.OVERLOADED]: { status: 503, temporary: true, message: 'The server is at capacity; retry later' },
  [ErrorCode.BROKER_UNAVAILABLE]: { status: 503, temporary: true, message: 'The broker is unavailable; the message was not accepted, retry' },
  [ErrorCode.SHUTTING_DOWN]: { status: 503, temporary: true, message: 'The server is shutting down; retry on another node' },
  [ErrorCode.RATE_LIMITED]: { status: 429, temporary: true, message: 'A rate limit was reached; retry after details.retryAfterMs' },
  [ErrorCode.INTERNAL]: { status: 500, temporary: true, message: 'Internal server error' },
};

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly temporary: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    const spec = ERRORS[code];
    super(message ?? spec.message);
    this.name = 'HeraldError';
    this.code = code;
    this.status = spec.status;
    this.temporary = spec.temporary;
    this.details = details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, temporary: this.temporary };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

export function isHeraldError(err: unknown): err is HeraldError {
  return err instanceof HeraldError;
}
