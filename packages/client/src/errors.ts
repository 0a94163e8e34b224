import { ErrorCode } from '@herald/protocol';
import type { ErrorBody } from '@herald/protocol';

/**
 * Codes that only the client produces. They never travel on the wire; the server's vocabulary
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

export type HeraldErrorCode = ErrorCode | ClientErrorCode;

/** Every error the SDK rejects with or emits. `temporary` says whether retrying may succeed. */
export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  readonly code: HeraldErrorCode | string;
  readonly temporary: boolean;
  readonly details?: unknown;

  constructor(code: HeraldErrorCode | string, message: string, temporary = false, details?: unknown) {
    super(message);
    this.code = code;
    this.temporary = temporary;
    if (details !== undefined) this.details = details;
  }

  /** Builds an error from the `error` body of an `error` or `response` frame. */
  static fromBody(body: ErrorBody): HeraldError {
    return new HeraldError(body.code, body.message, body.temporary === true, body.details);
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message, temporary: this.temporary };
  }
}

/** Wraps anything thrown by application code in a HeraldError. */
export function toHeraldError(err: unknown, code: HeraldErrorCode = ClientErrorCode.HANDLER_FAILED): HeraldError {
  if (err instanceof HeraldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HeraldError(code, message, false, err);
}

export { ErrorCode };
