/**
 * Connection tokens: JWTs verified against an HMAC secret (synchronously, hmac-jwt.ts: the
 * connection hot path) or, with `jose`, a PEM public key, a local JWKS file or a JWKS fetched from
 * `auth.jwt.jwksUrl` (remote-jwks.ts). `alg: none` is
 * never accepted (neither path knows it), and the algorithm must be both in `auth.jwt.algorithms` and of the family the configured key fits.
 */
import type { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ErrorCode } from '@herald/protocol';
import type { Tags } from '@herald/protocol';
import { ChannelPatterns } from './channels.js';
import type { HeraldConfig } from './config.js';
import { ConfigError } from './config.js';
import { HeraldError } from './errors.js';
import { HmacJwtError, peekAlgorithm, verifyHmacJwt } from './hmac-jwt.js';
import { RemoteJwks } from './remote-jwks.js';
import { withInfoClaim } from './info-claim.js';

export interface Identity {
  user: string;
  /** Seconds since the epoch, or undefined when the token does not expire. */
  expiresAt: number | undefined;
  subscribe: ChannelPatterns;
  publish: ChannelPatterns;
  tags: Tags;
  /** The token's `info` claim, shown to channel members through presence. */
  info?: unknown;
}

const HMAC_ALGS = new Set(['HS256', 'HS384', 'HS512']);

export class TokenVerifier {
  private readonly hmacKey: Uint8Array | undefined;
  private readonly publicKeyPem: string | undefined;
  private readonly jwks: JWTVerifyGetKey | undefined;
  /** Set with `auth.jwt.jwksUrl`; `start()` fetches it. */
  readonly remoteJwks: RemoteJwks | undefined;
  private readonly publicKeys = new Map<string, Promise<webcrypto.CryptoKey>>();
  private readonly algorithms: string[];

  constructor(
    private readonly cfg: HeraldConfig['auth']['jwt'],
    keyEvents: { onError?: (err: Error) => void; onRecovered?: () => void } = {},
  ) {
    this.hmacKey = cfg.hmacSecret ? new TextEncoder().encode(cfg.hmacSecret) : undefined;
    try {
      this.publicKeyPem = cfg.publicKeyFile ? readFileSync(cfg.publicKeyFile, 'utf8') : undefined;
      this.jwks = cfg.jwksFile ? createLocalJWKSet(JSON.parse(readFileSync(cfg.jwksFile, 'utf8'))) : undefined;
    } catch (err) {
      throw new ConfigError(`auth.jwt: cannot load key file: ${(err as Error).message}`);
    }
    if (cfg.jwksUrl && !this.jwks) {
      this.remoteJwks = new RemoteJwks(cfg.jwksUrl, { cooldownMs: cfg.jwksCooldownMs, timeoutMs: cfg.jwksTimeoutMs, ...keyEvents });
      this.jwks = this.remoteJwks.getKey;
    }
    this.algorithms = cfg.algorithms.filter((a) => (HMAC_ALGS.has(a) ? !!this.hmacKey : !!(this.publicKeyPem || this.jwks)));
  }

  get configured(): boolean {
    return this.algorithms.length > 0;
  }

  /**
   * Fetches `auth.jwt.jwksUrl` once. A failure does not stop the server: it is reported through
   * `keyEvents.onError`, tokens needing those keys are refused and `keysLoaded` stays false (so /readyz
   * says not ready) until a background retry, once per cooldown, succeeds.
   */
  async start(): Promise<void> {
    await this.remoteJwks?.start();
  }

  stop(): void {
    this.remoteJwks?.stop();
  }

  /** False only while a remote key set has never been fetched. */
  get keysLoaded(): boolean {
    return this.remoteJwks?.loaded ?? true;
  }

  /**
   * Both paths apply the same rules: signature and algorithm; `exp` present unless
   * `auth.jwt.requireExp` is off; `iss`/`aud` present and matching when configured; `exp`, `nbf`
   * and `iat` checked with `auth.jwt.clockToleranceSec` of skew either way.
   */
  async verify(token: string, nowMs = Date.now()): Promise<Identity> {
    if (!this.configured) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'token authentication is not configured on this server');
    const payload = this.hmacKey && HMAC_ALGS.has(peekAlgorithm(token) ?? '') ? this.verifyHmac(token, this.hmacKey, nowMs) : await this.verifyWithJose(token, nowMs);
    // jose checks `iat` only against a maximum token age, which Herald does not set; a token
    // issued in the future is refused here, once for both paths.
    if (typeof payload.iat === 'number' && payload.iat > Math.floor(nowMs / 1000) + this.cfg.clockToleranceSec) {
      throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: "iat" claim timestamp check failed (it should be in the past)');
    }
    return withInfoClaim(identityFromClaims(payload), payload.info, this.cfg.maxInfoBytes);
  }

  private async verifyWithJose(token: string, nowMs: number): Promise<JWTPayload> {
    try {
      const result = await jwtVerify(token, (header, jws) => this.keyFor(header, jws), {
        algorithms: this.algorithms,
        ...(this.cfg.issuer ? { issuer: this.cfg.issuer } : {}),
        ...(this.cfg.audience ? { audience: this.cfg.audience } : {}),
        requiredClaims: this.cfg.requireExp ? ['exp'] : [],
        clockTolerance: this.cfg.clockToleranceSec,
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
      const { issuer, audience, requireExp, clockToleranceSec } = this.cfg;
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

export function identityFromClaims(payload: JWTPayload): Identity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) {
    throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: "sub" must be a user id string');
  }
  const channels = stringList(payload.channels, 'channels');
  const publish = stringList(payload.publish, 'publish');
  const tags = parseTags(payload.tags);
  return { user: sub, expiresAt: payload.exp, subscribe: new ChannelPatterns(channels), publish: new ChannelPatterns(publish), tags };
}

function stringList(v: unknown, claim: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: "${claim}" must be an array of strings`);
  }
  return v as string[];
}

function parseTags(v: unknown): Tags {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: "tags" must be an object');
  const out: Tags = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') {
      throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: tag "${k}" must be a string, number or boolean`);
    }
    out[k] = val;
  }
  return out;
}

export function anonymousIdentity(publicChannels: ChannelPatterns, clientPublish: ChannelPatterns): Identity {
  return { user: '', expiresAt: undefined, subscribe: publicChannels, publish: clientPublish, tags: {} };
}
