/**
 * Synchronous verification of HMAC-signed JWTs (HS256/384/512) with node:crypto.
 *
 * Why not jose here: jose verifies through WebCrypto, whose per-call argument normalisation and
 * job promise cost several times the CPU of `createHmac` per token (BENCHMARKS.md, connection
 * rate) — the largest single item of a new connection's cost. Asymmetric keys and JWKS still go through
 * jose. The checks mirror jose's `jwtVerify` with the options Herald gives it (auth.ts): compact
 * JWS only, no `crit` extensions, `exp` present when required, `iss` and `aud` present and equal
 * when configured, `exp`/`nbf` numeric dates compared with the clock tolerance, `iat` numeric
 * when present — in jose's order, so a token that is both expired and otherwise wrong is refused
 * the same way. packages/server/test/hmac-jwt.test.ts compares the outcome with jose on a table of tokens.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { JWTPayload } from 'jose';

const HASH_OF: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Why a token was refused; `expired` is told apart because clients react to it differently. */
export class HmacJwtError extends Error {
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

export interface HmacJwtOptions {
  /** Algorithms accepted (only the HS* ones matter here). */
  algorithms: readonly string[];
  issuer?: string | undefined;
  audience?: string | undefined;
  /** Refuse a token without `exp` (jose's `requiredClaims: ['exp']`). */
  requireExp?: boolean | undefined;
  /** Seconds of clock skew allowed for `exp` and `nbf` (jose's `clockTolerance`). */
  clockToleranceSec?: number | undefined;
}

/** The `alg` of a compact JWS header, or undefined when the header cannot be read. */
export function peekAlgorithm(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  const header = decodeJsonPart(token.slice(0, dot));
  return typeof header?.alg === 'string' ? header.alg : undefined;
}

/**
 * The `iss` claim of a compact JWS, read without verifying anything: only to choose which key set
 * verifies the token, never to trust it.
 */
export function peekIssuer(token: string): unknown {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first <= 0 || second < 0) return undefined;
  return decodeJsonPart(token.slice(first + 1, second))?.iss;
}

export function verifyHmacJwt(token: string, secret: Uint8Array, options: HmacJwtOptions, nowSeconds = Date.now() / 1000): JWTPayload {
  const parts = token.split('.');
  if (parts.length !== 3) throw new HmacJwtError('not a compact JWS (three dot-separated parts)');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeJsonPart(headerPart);
  if (!header) throw new HmacJwtError('unreadable header');
  const alg = header.alg;
  if (typeof alg !== 'string' || !options.algorithms.includes(alg) || !(alg in HASH_OF)) {
    throw new HmacJwtError(`algorithm ${typeof alg === 'string' ? alg : 'none'} is not allowed`);
  }
  // No extension this verifier understands may be marked critical; "b64": false changes what is signed.
  if (header.crit !== undefined || header.b64 !== undefined) throw new HmacJwtError('unsupported header parameter');
  if (!BASE64URL.test(signaturePart)) throw new HmacJwtError('bad signature');
  const expected = createHmac(HASH_OF[alg]!, secret).update(`${headerPart}.${payloadPart}`).digest();
  const given = Buffer.from(signaturePart, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new HmacJwtError('bad signature');

  const payload = decodeJsonPart(payloadPart);
  if (!payload) throw new HmacJwtError('the payload is not a JSON object');
  checkClaims(payload, options, Math.floor(nowSeconds));
  return payload as JWTPayload;
}

function checkClaims(payload: Record<string, unknown>, options: HmacJwtOptions, now: number): void {
  const required = [...(options.requireExp ? ['exp'] : []), ...(options.audience ? ['aud'] : []), ...(options.issuer ? ['iss'] : [])];
  for (const claim of required) if (!Object.hasOwn(payload, claim)) throw new HmacJwtError(`missing required "${claim}" claim`);
  if (options.issuer && payload.iss !== options.issuer) throw new HmacJwtError('unexpected "iss" claim value');
  if (options.audience) {
    const aud = payload.aud;
    const ok = typeof aud === 'string' ? aud === options.audience : Array.isArray(aud) && aud.includes(options.audience);
    if (!ok) throw new HmacJwtError('unexpected "aud" claim value');
  }
  const tolerance = options.clockToleranceSec ?? 0;
  for (const claim of ['iat', 'nbf'] as const) {
    if (payload[claim] !== undefined && typeof payload[claim] !== 'number') throw new HmacJwtError(`"${claim}" claim must be a number`);
  }
  if (typeof payload.nbf === 'number' && payload.nbf > now + tolerance) throw new HmacJwtError('"nbf" claim timestamp check failed');
  if (payload.exp !== undefined && typeof payload.exp !== 'number') throw new HmacJwtError('"exp" claim must be a number');
  if (typeof payload.exp === 'number' && payload.exp <= now - tolerance) throw new HmacJwtError('"exp" claim timestamp check failed', true);
}

function decodeJsonPart(part: string): Record<string, unknown> | undefined {
  if (part.length === 0 || !BASE64URL.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
