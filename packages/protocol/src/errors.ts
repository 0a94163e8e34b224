/**
 * The one error shape of Herald, thrown by the server and by the client SDK alike, and the
 * registry behind it. Each wire code is declared once with its HTTP status, whether retrying may
 * succeed and a default message; `docs/errors.md` is kept in step with this table by a test.
 * Client-only codes (`ClientErrorCode`) never travel on the wire and have no HTTP status.
 */
import { ErrorCode } from './codes.js';
import type { ErrorBody } from './frames.js';

/** What a code means to whoever receives it. */
export interface ErrorSpec {
  /** The HTTP status of a response carrying this code; 0 for client-only codes. */
  status: number;
  /** Whether retrying the same thing later may succeed. */
  temporary: boolean;
  /** The message used when none is given. */
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
  [ErrorCode.PRESENCE_NOT_ENABLED]: { status: 400, temporary: false, message: 'Presence is not enabled for this channel\'s namespace (channels.namespaces.<ns>.presence)' },
  [ErrorCode.MESSAGE_TOO_LARGE]: { status: 413, temporary: false, message: 'The message exceeds the size limit' },
  [ErrorCode.UNKNOWN_METHOD]: { status: 404, temporary: false, message: 'No handler for this request method' },
  [ErrorCode.REQUEST_TIMEOUT]: { status: 504, temporary: true, message: 'The peer did not answer in time' },
  [ErrorCode.CLIENT_TIMEOUT]: { status: 408, temporary: true, message: 'The request did not arrive in time' },
  [ErrorCode.INVALID_FILTER]: { status: 400, temporary: false, message: 'The tag filter is invalid' },
  [ErrorCode.BAD_REQUEST]: { status: 400, temporary: false, message: 'The request does not match its schema' },
  [ErrorCode.API_KEY_REQUIRED]: { status: 401, temporary: false, message: 'Send the API key as "Authorization: Bearer <key>" or "X-API-Key"' },
  [ErrorCode.INVALID_API_KEY]: { status: 401, temporary: false, message: 'The API key is not valid' },
  [ErrorCode.API_KEY_SCOPE]: { status: 403, temporary: false, message: 'The scope of the API key does not allow this request' },
  [ErrorCode.NOT_FOUND]: { status: 404, temporary: false, message: 'No such route' },
  [ErrorCode.CONNECTION_NOT_FOUND]: { status: 404, temporary: false, message: 'No such connection on this server' },
  [ErrorCode.WEBHOOKS_DISABLED]: { status: 404, temporary: false, message: 'Webhooks are not configured (webhooks.endpoints is empty)' },
  [ErrorCode.DEAD_LETTER_NOT_FOUND]: { status: 404, temporary: false, message: 'No dead letter with this id' },
  [ErrorCode.UNSUPPORTED_MEDIA_TYPE]: { status: 415, temporary: false, message: 'Send JSON with Content-Type: application/json' },
  [ErrorCode.FORBIDDEN_ORIGIN]: { status: 403, temporary: false, message: 'The Origin is not in origins.allowed' },
  [ErrorCode.TOO_MANY_CONNECTIONS]: { status: 429, temporary: true, message: 'A connection limit was reached' },
  [ErrorCode.OVERLOADED]: { status: 503, temporary: true, message: 'The server is at capacity; retry later' },
  [ErrorCode.BROKER_UNAVAILABLE]: { status: 503, temporary: true, message: 'The broker is unavailable; the message was not accepted, retry' },
  [ErrorCode.SHUTTING_DOWN]: { status: 503, temporary: true, message: 'The server is shutting down; retry on another node' },
  [ErrorCode.RATE_LIMITED]: { status: 429, temporary: true, message: 'A rate limit was reached; retry after details.retryAfterMs' },
  [ErrorCode.BACKEND_UNAVAILABLE]: { status: 503, temporary: true, message: 'The application backend (a proxy hook) is down, too slow or busy; retry' },
  [ErrorCode.BACKEND_ERROR]: { status: 502, temporary: true, message: 'The application backend (a proxy hook) gave an answer that does not match its schema' },
  [ErrorCode.SUBSCRIPTION_REVOKED]: { status: 403, temporary: false, message: 'The refreshed credentials no longer grant this channel' },
  [ErrorCode.ADMIN_LOGIN_REQUIRED]: { status: 401, temporary: false, message: 'Log in to the admin UI first (POST /admin/api/login); the session is missing or expired' },
  [ErrorCode.ADMIN_LOGIN_FAILED]: { status: 401, temporary: false, message: 'The admin password or key is not valid' },
  [ErrorCode.ADMIN_CSRF]: { status: 403, temporary: false, message: 'The request lacks the session\'s CSRF token or comes from another origin' },
  [ErrorCode.INTERNAL]: { status: 500, temporary: true, message: 'Internal server error' },
};

/**
 * Codes that only the client SDK produces. They never travel on the wire; the server's vocabulary
 * (`ErrorCode`) is used for everything that does.
 */
export const ClientErrorCode = {
  /** A constructor option was missing or out of range; the message names the option. */
  INVALID_OPTION: 'invalid_option',
  /** The outbox holds `outbox.maxSize` unconfirmed publishes; the new one was refused. */
  OUTBOX_FULL: 'outbox_full',
  /** The connection dropped while a reply was outstanding. */
  CONNECTION_LOST: 'connection_lost',
  /** `close()` or `disconnect()` ended the operation. */
  CLIENT_CLOSED: 'client_closed',
  /** The server closed the connection with a code that forbids reconnecting, or attempts ran out. */
  CONNECTION_FAILED: 'connection_failed',
  /** An application handler threw or rejected. */
  HANDLER_FAILED: 'handler_failed',
  /** The WebSocket reported an error. */
  TRANSPORT_ERROR: 'transport_error',
  /** Reading or writing the persisted outbox failed (quota, private mode, corrupt data). */
  STORAGE_FAILED: 'storage_failed',
  /** `getToken()` threw or returned something that is not a string. */
  TOKEN_REFRESH_FAILED: 'token_refresh_failed',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Whether a client-only failure may pass if the same thing is tried again later. */
const CLIENT_TEMPORARY: Record<ClientErrorCode, boolean> = {
  [ClientErrorCode.INVALID_OPTION]: false,
  [ClientErrorCode.OUTBOX_FULL]: true,
  [ClientErrorCode.CONNECTION_LOST]: true,
  [ClientErrorCode.CLIENT_CLOSED]: false,
  [ClientErrorCode.CONNECTION_FAILED]: true,
  [ClientErrorCode.HANDLER_FAILED]: false,
  [ClientErrorCode.TRANSPORT_ERROR]: true,
  [ClientErrorCode.STORAGE_FAILED]: true,
  [ClientErrorCode.TOKEN_REFRESH_FAILED]: true,
};

export type HeraldErrorCode = ErrorCode | ClientErrorCode;

/**
 * Every error Herald's server and client SDK throw, reject with or emit. `temporary` says whether
 * retrying may succeed and `status` is the HTTP status of a wire code; both follow the code.
 * Codes the registry does not know (an application's own, or a newer server's) are not
 * temporary and have status 0; `fromBody` takes `temporary` from the body instead.
 */
export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  readonly code: HeraldErrorCode | string;
  readonly status: number;
  readonly temporary: boolean;
  readonly details?: unknown;

  /**
   * `temporary` overrides the registry's answer — for an application's own codes (an RPC handler
   * that is busy: `new HeraldError('busy', 'try later', undefined, true)`).
   */
  constructor(code: HeraldErrorCode | string, message?: string, details?: unknown, temporary?: boolean) {
    const spec = (ERRORS as Partial<Record<string, ErrorSpec>>)[code];
    super(message ?? spec?.message ?? code);
    this.code = code;
    this.status = spec?.status ?? 0;
    this.temporary = temporary ?? spec?.temporary ?? (CLIENT_TEMPORARY as Partial<Record<string, boolean>>)[code] ?? false;
    if (details !== undefined) this.details = details;
  }

  /**
   * Builds an error from an error body — the `error` of an `error` or `response` frame or of an
   * HTTP error response — keeping the body's `temporary`.
   */
  static fromBody(body: ErrorBody): HeraldError {
    return new HeraldError(body.code, body.message, body.details, body.temporary === true);
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, temporary: this.temporary };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}
