/**
 * A JWKS fetched from `auth.jwt.jwksUrl`. jose's `createRemoteJWKSet` was not enough on its own:
 * it ignores Cache-Control and, once its cache is older than its fixed max age, fails every token
 * while the URL is down. This keeps the last good key set for as long as the URL stays down,
 * honours `Cache-Control: max-age` (and `no-cache`/`no-store`), refetches at once for an unknown
 * `kid`, and never fetches more often than once per `auth.jwt.jwksCooldownMs`. Key lookup inside a
 * fetched set is jose's `createLocalJWKSet`.
 */
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { ErrorCode } from '@herald/protocol';
import { ConfigError } from './config-input.js';
import { HeraldError } from './errors.js';
import { readCappedText } from './read-capped.js';

/** How long a key set without a usable `Cache-Control: max-age` is fresh. */
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000;
/** Cap on a server-sent max-age, so a rotation is picked up within a day even without an unknown `kid`. */
const MAX_JWKS_MAX_AGE_MS = 24 * 60 * 60_000;
/** A key set is a few kilobytes; a bigger answer is a misconfigured or hostile URL, not keys. */
export const MAX_JWKS_BYTES = 1024 * 1024;

export interface JwksFetchEvents {
  /** Told about fetch failures; the caller decides where they are logged. */
  onError?: (err: Error) => void;
  /** Told when a fetch succeeds after one or more failed. */
  onRecovered?: () => void;
  /** Told after every fetch: whether it succeeded and how many keys the set in use holds. */
  onFetch?: (ok: boolean, keys: number) => void;
}

export interface RemoteJwksOptions extends JwksFetchEvents {
  cooldownMs: number;
  timeoutMs: number;
  /** The config key holding the URL, for messages (`auth.jwt.jwksUrl` unless it belongs to a key set). */
  label?: string;
  now?: () => number;
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;

/** Refuses a URL that is not https, unless it is plain http to a loopback host (tests, sidecars). */
export function checkJwksUrl(raw: string, key = 'auth.jwt.jwksUrl'): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${key}: "${raw}" is not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new ConfigError(
    `${key}: "${raw}" must use https (plain http is allowed only to a loopback host such as 127.0.0.1 or localhost): keys fetched in clear text could be replaced on the way`,
  );
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Freshness from Cache-Control, clamped so it is never below the cooldown nor above a day. */
export function maxAgeMs(cacheControl: string | null, cooldownMs: number): number {
  let age = DEFAULT_JWKS_MAX_AGE_MS;
  if (cacheControl) {
    const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
    const m = directives.map((d) => /^max-age=(\d+)$/.exec(d)).find((x) => x);
    if (m) age = Number(m[1]) * 1000;
    if (directives.includes('no-cache') || directives.includes('no-store')) age = 0;
  }
  return Math.min(Math.max(age, cooldownMs), MAX_JWKS_MAX_AGE_MS);
}

export class RemoteJwks {
  private readonly url: URL;
  private readonly now: () => number;
  private keys: LocalSet | undefined;
  private freshUntil = 0;
  /** When the last fetch started; -Infinity so the first one is never held back. */
  private lastAttempt = -Infinity;
  private inflight: Promise<boolean> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failing = false;
  private keyCount = 0;
  /** Fetches started, for tests and metrics. */
  fetches = 0;

  constructor(
    url: string,
    private readonly opts: RemoteJwksOptions,
  ) {
    this.url = checkJwksUrl(url);
    this.now = opts.now ?? Date.now;
  }

  /** True once a key set has been fetched; /readyz reports not ready before. */
  get loaded(): boolean {
    return this.keys !== undefined;
  }

  /**
   * Fetches once; while that fails, retries every cooldown in the background so the node becomes
   * ready without waiting for a token to ask. Resolves with whether keys are loaded.
   */
  async start(): Promise<boolean> {
    const ok = await this.refresh();
    if (!ok) this.scheduleRetry();
    return ok;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.keys && this.now() >= this.freshUntil && this.mayFetch()) await this.refresh();
    if (!this.keys) {
      if (this.mayFetch()) await this.refresh();
      if (!this.keys) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'invalid token: the key set at auth.jwt.jwksUrl has not been loaded yet');
    }
    try {
      return await this.keys(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      // A kid the set does not know may be a key the issuer just rotated in.
      if (this.mayFetch() && (await this.refresh())) {
        try {
          return await this.keys(header, token);
        } catch (again) {
          if (!(again instanceof joseErrors.JWKSNoMatchingKey)) throw again;
        }
      }
      throw new HeraldError(ErrorCode.UNAUTHORIZED, `invalid token: no key in the key set matches kid ${JSON.stringify(header.kid ?? null)}`);
    }
  };

  private mayFetch(): boolean {
    return this.inflight !== undefined || this.now() - this.lastAttempt >= this.opts.cooldownMs;
  }

  /** One fetch at a time; concurrent callers share it. Resolves false when it failed (the old set is kept). */
  refresh(): Promise<boolean> {
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchOnce(): Promise<boolean> {
    this.lastAttempt = this.now();
    this.fetches++;
    try {
      const res = await fetch(this.url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const body = JSON.parse(await readCappedText(res, MAX_JWKS_BYTES)) as JSONWebKeySet;
      if (!body || !Array.isArray(body.keys)) throw new Error('the response is not a JWKS (no "keys" array)');
      this.keys = createLocalJWKSet(body);
      this.keyCount = body.keys.length;
      this.freshUntil = this.now() + maxAgeMs(res.headers.get('cache-control'), this.opts.cooldownMs);
      if (this.failing) this.opts.onRecovered?.();
      this.failing = false;
      this.opts.onFetch?.(true, this.keyCount);
      return true;
    } catch (err) {
      const e = err as Error;
      this.failing = true;
      // Origin and path only: a query string may carry a credential.
      this.opts.onFetch?.(false, this.keyCount);
      this.opts.onError?.(new Error(`${this.opts.label ?? 'auth.jwt.jwksUrl'} ${this.url.origin}${this.url.pathname}: ${e.name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs} ms` : e.message}`));
      return false;
    }
  }

  private scheduleRetry(): void {
    if (this.stopped || this.keys) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.refresh().then((ok) => {
        if (!ok) this.scheduleRetry();
      });
    }, Math.max(this.opts.cooldownMs, 1000));
    this.retryTimer.unref();
  }
}
