/**
 * The token's optional `info` claim: any JSON value the issuer wants a connection's channel
 * members to see (a display name, an avatar URL), bounded by `auth.jwt.maxInfoBytes` so that a
 * token cannot make every presence list and join frame of a channel large.
 */
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from './errors.js';

/** The size of `info` as JSON when it is over `maxBytes`, else undefined. Tokens and backend answers share the bound. */
export function oversizedInfo(info: unknown, maxBytes: number): number | undefined {
  const size = Buffer.byteLength(JSON.stringify(info), 'utf8');
  return size > maxBytes ? size : undefined;
}

/** Returns the identity with `info` attached; a claim over the bound refuses the token. */
export function withInfoClaim<T extends object>(identity: T, info: unknown, maxBytes: number): T & { info?: unknown } {
  if (info === undefined || info === null) return identity;
  const size = oversizedInfo(info, maxBytes);
  if (size !== undefined) {
    throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: the "info" claim is ${size} bytes of JSON, more than auth.jwt.maxInfoBytes (${maxBytes})`);
  }
  return { ...identity, info };
}
