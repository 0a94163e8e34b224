/**
 * One set of keys tokens may be signed with, and the claims its tokens must carry: an HMAC
 * secret, a PEM public key, a local JWKS file or a JWKS URL, with its own `iss`/`aud` and
 * algorithms. `auth.jwt` itself is the set named `default`; `auth.jwt.keySets` adds more (an
 * identity provider's keys beside the backend's own secret, each with its issuer).
 *
 * `alg: none` is never accepted (neither path knows it), and the algorithm must be both in the
 * set's algorithms and of the family its keys fit.
 */
import type { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ErrorCode } from '@herald/protocol';
import { ConfigError } from './config-input.js';
import { HeraldError } from './errors.js';
import { HmacJwtError, verifyHmacJwt } from './hmac-jwt.js';
import { RemoteJwks, type JwksFetchEvents } from './remote-jwks.js';

export interface KeySetOptions {
  name: string;
  hmacSecret: string;
  publicKeyFile: string;
  jwksFile: string;
  jwksUrl: string;
  jwksCooldownMs: number;
  jwksTimeoutMs: number;
  algorithms: readonly string[];
  issuer: string;
  audience: string;
  requireExp: boolean;
  clockToleranceSec: number;
}

const HMAC_ALGS = new Set(['HS256', 'HS384', 'HS512']);

/** Where a key set is configured, for messages: `auth.jwt` or `auth.jwt.keySets[<name>]`. */
export function keySetConfigKey(name: string): string {
  return name === 'default' ? 'auth.jwt' : `auth.jwt.keySets[${name}]`;
}

export function isHmacAlgorithm(alg: string): boolean {
  return HMAC_ALGS.has(alg);
}

export class KeySet {
  readonly name: string;
  readonly issuer: string;
  private readonly hmacKey: Uint8Array | undefined;
  private readonly publicKeyPem: string | undefined;
  private readonly jwks: JWTVerifyGetKey | undefined;
  /** Set with a `jwksUrl`; `start()` fetches it. */
  readonly remoteJwks: RemoteJwks | undefined;
  private readonly publicKeys = new Map<string, Promise<webcrypto.CryptoKey>>();
  /** The configured algorithms this set has a key for. */
  readonly algorithms: readonly string[];

  constructor(
    private readonly opts: KeySetOptions,
    jwksEvents: JwksFetchEvents = {},
  ) {
    this.name = opts.name;
    this.issuer = opts.issuer;
    const where = keySetConfigKey(opts.name);
    this.hmacKey = opts.hmacSecret ? new TextEncoder().encode(opts.hmacSecret) : undefined;
    try {
      this.publicKeyPem = opts.publicKeyFile ? readFileSync(opts.publicKeyFile, 'utf8') : undefined;
      this.jwks = opts.jwksFile ? createLocalJWKSet(JSON.parse(readFileSync(opts.jwksFile, 'utf8'))) : undefined;
    } catch (err) {
      throw new ConfigError(`${where}: cannot load key file: ${(err as Error).message}`);
    }
    if (opts.jwksUrl && !this.jwks) {
      this.remoteJwks = new RemoteJwks(opts.jwksUrl, { cooldownMs: opts.jwksCooldownMs, timeoutMs: opts.jwksTimeoutMs, label: `${where}.jwksUrl`, ...jwksEvents });
      this.jwks = this.remoteJwks.getKey;
    }
    this.algorithms = opts.algorithms.filter((a) => (HMAC_ALGS.has(a) ? !!this.hmacKey : !!(this.publicKeyPem || this.jwks)));
  }

  get configured(): boolean {
    return this.algorithms.length > 0;
  }

  /** Whether this set could have signed a token with this header `alg` and (unverified) `iss`. */
  accepts(alg: string | undefined, issuer: unknown): boolean {
    if (!alg || !this.algorithms.includes(alg)) return false;
    return !this.issuer || issuer === this.issuer;
  }

  /**
   * Signature and algorithm; `exp` present unless `requireExp` is off; `iss`/`aud` present and
   * matching when configured; `exp` and `nbf` checked with the clock tolerance either way.
   */
  async verify(token: string, alg: string | undefined, nowMs: number): Promise<JWTPayload> {
    return this.hmacKey && HMAC_ALGS.has(alg ?? '') ? this.verifyHmac(token, this.hmacKey, nowMs) : this.verifyWithJose(token, nowMs);
  }

  private async verifyWithJose(token: string, nowMs: number): Promise<JWTPayload> {
    try {
      const result = await jwtVerify(token, (header, jws) => this.keyFor(header, jws), {
        algorithms: [...this.algorithms],
        ...(this.opts.issuer ? { issuer: this.opts.issuer } : {}),
        ...(this.opts.audience ? { audience: this.opts.audience } : {}),
        requiredClaims: this.opts.requireExp ? ['exp'] : [],
        clockTolerance: this.opts.clockToleranceSec,
        currentDate: new Date(nowMs),
      });
      return result.payload;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new HeraldError(ErrorCode.TOKEN_EXPIRED);
      if (err instanceof HeraldError) throw err;
      throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: ${describeJoseError(err)}`);
    }
  }

  private verifyHmac(token: string, key: Uint8Array, nowMs: number): JWTPayload {
    try {
      const { issuer, audience, requireExp, clockToleranceSec } = this.opts;
      return verifyHmacJwt(token, key, { algorithms: this.algorithms, issuer, audience, requireExp, clockToleranceSec }, nowMs / 1000);
    } catch (err) {
      if (err instanceof HmacJwtError && err.expired) throw new HeraldError(ErrorCode.TOKEN_EXPIRED);
      throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: ${(err as Error).message}`);
    }
  }

  private keyFor(header: Parameters<JWTVerifyGetKey>[0], jws: Parameters<JWTVerifyGetKey>[1]): ReturnType<JWTVerifyGetKey> {
    const alg = header.alg;
    if (!alg || !this.algorithms.includes(alg)) throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: algorithm ${alg ?? 'none'} is not allowed`);
    if (this.publicKeyPem) {
      let key = this.publicKeys.get(alg);
      if (!key) {
        key = importSPKI(this.publicKeyPem, alg) as Promise<webcrypto.CryptoKey>;
        this.publicKeys.set(alg, key);
      }
      return key;
    }
    return this.jwks!(header, jws);
  }
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return err.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'bad signature' : err.message;
  return (err as Error).message ?? 'unreadable';
}
