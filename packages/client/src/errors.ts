import { ClientErrorCode, ErrorCode, HeraldError } from '@herald/protocol';
import type { HeraldErrorCode } from '@herald/protocol';

export { ClientErrorCode, ErrorCode, HeraldError };
export type { HeraldErrorCode };

/** Wraps anything thrown by application code in a HeraldError (not temporary; `details` is what was thrown). */
export function toHeraldError(err: unknown, code: HeraldErrorCode = ClientErrorCode.HANDLER_FAILED): HeraldError {
  if (err instanceof HeraldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return HeraldError.fromBody({ code, message, temporary: false, details: err });
}
