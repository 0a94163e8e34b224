/**
 * Connection tokens: JWTs verified against one of the configured key sets (key-set.ts): the one in
 * `auth.jwt` itself and those in `auth.jwt.keySets`. HMAC tokens are verified synchronously
 * (hmac-jwt.ts: the connection hot path), the others with `jose`.
 */
import type { JWTPayload } from 'jose';
import { ErrorCode } from '@herald/protocol';
import type { Tags } from '@herald/protocol';
import { ChannelPatterns } from './channels.js';
import type { HeraldConfig } from './config.js';
import { HeraldError } from './errors.js';
import { peekAlgorithm, peekIssuer } from './hmac-jwt.js';
import { withInfoClaim } from './info-claim.js';
import { KeySet } from './key-set.js';
import type { RemoteJwks } from './remote-jwks.js';

export interface Identity {
  user: string;
  /** Seconds since the epoch, or undefined when the token does not expire. */
  expiresAt: number | undefined;
  subscribe: ChannelPatterns;
  publish: ChannelPatterns;
  tags: Tags;
  /** Channels granted one at a time to this connection (subscription tokens, the subscribe hook); kept across token refreshes. */
  granted?: Set<string>;
  /** The token's `info` claim (or the connect hook's `info`), shown to channel members through presence. */
  info?: unknown;
}

/** What the owner of a verifier is told about its key sets' URLs (logging, metrics). */
export interface KeyEvents {
  onError?: (err: Error, keySet: string) => void;
  onRecovered?: (keySet: string) => void;
  onFetch?: (keySet: string, ok: boolean, keys: number) => void;
}

export class TokenVerifier {
  /** Every key set with a usable key, `default` (from `auth.jwt` itself) first when it has one. */
  readonly keySets: readonly KeySet[];

  constructor(
    private readonly cfg: HeraldConfig['auth']['jwt'],
    keyEvents: KeyEvents = {},
  ) {
    const shared = { jwksCooldownMs: cfg.jwksCooldownMs, jwksTimeoutMs: cfg.jwksTimeoutMs, requireExp: cfg.requireExp, clockToleranceSec: cfg.clockToleranceSec };
    const options = [
      { ...shared, name: 'default', hmacSecret: cfg.hmacSecret, publicKeyFile: cfg.publicKeyFile, jwksFile: cfg.jwksFile, jwksUrl: cfg.jwksUrl, algorithms: cfg.algorithms, issuer: cfg.issuer, audience: cfg.audience },
      ...cfg.keySets.map((k) => ({
        ...shared,
        name: k.name,
        hmacSecret: k.hmacSecret ?? '',
        publicKeyFile: k.publicKeyFile ?? '',
        jwksFile: k.jwksFile ?? '',
        jwksUrl: k.jwksUrl ?? '',
        algorithms: k.algorithms ?? cfg.algorithms,
        issuer: k.issuer ?? '',
        audience: k.audience ?? '',
      })),
    ];
    this.keySets = options
      .map(
        (o) =>
          new KeySet(o, {
            onError: (err) => keyEvents.onError?.(err, o.name),
            onRecovered: () => keyEvents.onRecovered?.(o.name),
            onFetch: (ok, keys) => keyEvents.onFetch?.(o.name, ok, keys),
          }),
      )
      .filter((k) => k.configured);
  }

  get configured(): boolean {
    return this.keySets.length > 0;
  }

  /** The remote key sets (`jwksUrl`), by key set name. */
  get remoteKeySets(): Array<{ name: string; jwks: RemoteJwks }> {
    return this.keySets.flatMap((k) => (k.remoteJwks ? [{ name: k.name, jwks: k.remoteJwks }] : []));
  }

  /** The remote key set of `auth.jwt.jwksUrl` itself, if any. */
  get remoteJwks(): RemoteJwks | undefined {
    return this.keySets.find((k) => k.name === 'default')?.remoteJwks;
  }

  /**
   * Fetches every `jwksUrl` once. A failure does not stop the server: it is reported through
   * `keyEvents.onError`, tokens needing those keys are refused and `keysLoaded` stays false (so /readyz
   * says not ready) until a background retry, once per cooldown, succeeds.
   */
  async start(): Promise<void> {
    await Promise.all(this.keySets.map((k) => k.remoteJwks?.start()));
  }

  stop(): void {
    for (const k of this.keySets) k.remoteJwks?.stop();
  }

  /** False only while a remote key set has never been fetched. */
  get keysLoaded(): boolean {
    return this.keySets.every((k) => k.remoteJwks?.loaded ?? true);
  }

  /**
   * The token is tried against the key sets that could have signed it: its `alg` among theirs and,
   * for a set with an issuer, its `iss` equal to it — sets naming the token's issuer first. The
   * first that verifies it decides; when none does, the refusal of the most specific one is
   * reported. Every set applies the same rules (key-set.ts `verify`); `iat` in the future is refused
   * here, once for all of them.
   */
  async verify(token: string, nowMs = Date.now()): Promise<Identity> {
    const payload = await this.verifyClaims(token, nowMs);
    return withInfoClaim(identityFromClaims(payload), payload.info, this.cfg.maxInfoBytes);
  }

  /** The claims of a token that passes every rule of `verify`, before they are read as a connection's identity. */
  async verifyClaims(token: string, nowMs = Date.now()): Promise<JWTPayload> {
    if (!this.configured) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'token authentication is not configured on this server');
    const alg = peekAlgorithm(token);
    const payload = this.keySets.length === 1 ? await this.keySets[0]!.verify(token, alg, nowMs) : await this.verifyWithCandidates(token, alg, nowMs);
    // jose checks `iat` only against a maximum token age, which Herald does not set; a token
    // issued in the future is refused here, once for both paths.
    if (typeof payload.iat === 'number' && payload.iat > Math.floor(nowMs / 1000) + this.cfg.clockToleranceSec) {
      throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: "iat" claim timestamp check failed (it should be in the past)');
    }
    return payload;
  }

  private async verifyWithCandidates(token: string, alg: string | undefined, nowMs: number): Promise<JWTPayload> {
    const issuer = peekIssuer(token);
    const candidates = this.keySets.filter((k) => k.accepts(alg, issuer));
    if (candidates.length === 0) {
      throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: no key set accepts algorithm ${alg ?? 'none'}${typeof issuer === 'string' ? ` from issuer ${JSON.stringify(issuer.slice(0, 200))}` : ''}`);
    }
    candidates.sort((a, b) => Number(!!b.issuer) - Number(!!a.issuer));
    let first: unknown;
    for (const keySet of candidates) {
      try {
        return await keySet.verify(token, alg, nowMs);
      } catch (err) {
        // An expired token was signed by this set: no other set's answer would be truer.
        if (err instanceof HeraldError && err.code === ErrorCode.TOKEN_EXPIRED) throw err;
        first ??= err;
      }
    }
    throw first;
  }
}

export function identityFromClaims(payload: JWTPayload): Identity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) {
    throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: "sub" must be a user id string');
  }
  // A subscription token grants one channel to a connection of its user; it is not a connection token.
  if (payload.channel !== undefined) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: a subscription token (with "channel") cannot open a connection');
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
