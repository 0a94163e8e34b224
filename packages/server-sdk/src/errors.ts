import { ErrorCode, HeraldError as ProtocolHeraldError } from '@herald/protocol';
import type { ErrorBody } from '@herald/protocol';

/**
 * Codes only the SDK produces: they never come from a Herald server. Everything the server says
 * keeps the server's own code (`ErrorCode`, listed in docs/errors.md).
 */
export const ServerSdkErrorCode = {
  /** A constructor option was missing or out of range; the message names the option. */
  INVALID_OPTION: 'invalid_option',
  /** A call's argument was refused before anything was sent; the message names the argument. */
  INVALID_ARGUMENT: 'invalid_argument',
  /**
   * The HTTP request did not reach Herald or its answer was cut off (DNS failure, connection
   * refused or reset). Temporary: nothing says the server acted, nothing says it did not.
   */
  CONNECTION_FAILED: 'connection_failed',
  /**
   * An answer that is not Herald's: a non-JSON body, or an error status without Herald's error
   * shape (a proxy's 502 page, say). `details.status` holds the HTTP status; temporary for 5xx
   * and 429.
   */
  UNEXPECTED_RESPONSE: 'unexpected_response',
} as const;
export type ServerSdkErrorCode = (typeof ServerSdkErrorCode)[keyof typeof ServerSdkErrorCode];

export type HeraldErrorCode = ErrorCode | ServerSdkErrorCode;

/**
 * Who produced an error: the Herald server (an HTTP error body), the WebSocket client a
 * `requestClient` call was answered by (its `response` frame's `error`), or this SDK.
 */
export type ErrorOrigin = 'server' | 'client' | 'sdk';

/**
 * Every error the SDK rejects with. `code` is stable; `temporary` says whether the same call may
 * succeed later (the SDK has already retried those it may retry safely).
 */
export class HeraldError extends ProtocolHeraldError {
  readonly origin: ErrorOrigin;
  /** The HTTP status of the answer that carried the error; absent when no answer came. */
  readonly httpStatus?: number;
  /** How many HTTP tries the call made before giving up with this error. */
  attempts?: number;

  /**
   * Herald's one error class (from @herald/protocol: `code`, `temporary`, `details`, and `status`,
   * the HTTP status the code stands for) with where the error came from and what was answered.
   */
  constructor(code: HeraldErrorCode | string, message: string, init: { temporary?: boolean; details?: unknown; origin?: ErrorOrigin; status?: number } = {}) {
    super(code, message, init.details, init.temporary === true);
    this.origin = init.origin ?? 'sdk';
    if (init.status !== undefined) this.httpStatus = init.status;
  }

  /** Builds an error from an `{code, message, temporary, details}` body. */
  static override fromBody(body: ErrorBody, origin: ErrorOrigin = 'server', status?: number): HeraldError {
    return new HeraldError(String(body.code), String(body.message ?? body.code), { temporary: body.temporary === true, details: body.details, origin, ...(status !== undefined ? { status } : {}) });
  }
}

/** Whether a value has the `{code, message}` shape of an error body. */
export function isErrorBody(value: unknown): value is ErrorBody {
  const v = value as { code?: unknown; message?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.code === 'string' && (v.message === undefined || typeof v.message === 'string');
}

export { ErrorCode };
