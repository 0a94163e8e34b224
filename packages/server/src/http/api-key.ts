/**
 * The API key a caller presents (`Authorization: Bearer …` or `X-API-Key`), its constant-time
 * check, and what a key of `api.keys` may do: a plain string is an admin key (the whole API); an
 * object names a scope — `publish` (the two publish routes, optionally only to some channels),
 * `read` (the GET routes) or `admin`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { onRequestHookHandler } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { ChannelPatterns } from '../channels.js';
import type { HeraldConfig } from '../config-types.generated.js';
import { HeraldError } from '../errors.js';

export function presentedApiKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const x = headers['x-api-key'];
  return Array.isArray(x) ? x[0] : x;
}

export function apiKeyMatches(keys: Buffer[], given: string): boolean {
  const g = Buffer.from(given);
  let ok = false;
  for (const k of keys) if (k.length === g.length && timingSafeEqual(k, g)) ok = true;
  return ok;
}

/**
 * An `onRequest` hook admitting only requests that present one of `keys`: `api_key_required`
 * without a key, `invalid_api_key` with another (both 401).
 */
export function requireApiKey(keys: readonly string[]): onRequestHookHandler {
  const buffers = keys.map((k) => Buffer.from(k));
  return (req, _reply, done) => {
    const key = presentedApiKey(req.headers);
    if (!key) return done(new HeraldError(ErrorCode.API_KEY_REQUIRED));
    if (!apiKeyMatches(buffers, key)) return done(new HeraldError(ErrorCode.INVALID_API_KEY));
    done();
  };
}

export type ApiKeyEntry = HeraldConfig['api']['keys'][number];
export type ApiScope = 'publish' | 'read' | 'admin';

/** The secret of an `api.keys` entry, whichever form it is written in. */
export function apiKeySecret(entry: ApiKeyEntry): string {
  return typeof entry === 'string' ? entry : entry.key;
}

/** The target of a publish, as far as a channel-limited key cares. */
interface PublishTarget {
  channel?: string;
  user?: string;
  broadcast?: boolean;
}

/** What one key may do. */
export class ApiKeyGrant {
  private readonly patterns: ChannelPatterns | undefined;

  constructor(readonly scope: ApiScope, private readonly channels: readonly string[] | undefined) {
    this.patterns = channels ? new ChannelPatterns(channels) : undefined;
  }

  /** `api_key_scope` when a route needing `needed` is out of this key's scope, else undefined. */
  routeRefusal(needed: ApiScope): HeraldError | undefined {
    if (this.scope === 'admin' || this.scope === needed) return undefined;
    return this.refusal(needed === 'admin' ? 'this route needs an admin key' : `this route needs a ${needed} or admin key`);
  }

  /**
   * `api_key_scope` when this key may not publish to the target: a channel-limited key publishes
   * to matching channels only, never to a user or to everyone. Checked after the body is
   * validated, on both publish paths, so they answer alike.
   */
  publishRefusal(target: PublishTarget): HeraldError | undefined {
    if (!this.patterns) return undefined;
    if (target.user !== undefined || target.broadcast === true) return this.refusal('it may publish to its channels only, not to a user or to everyone');
    if (target.channel !== undefined && !this.patterns.matches(target.channel)) return this.refusal(`it may not publish to ${target.channel}`);
    return undefined;
  }

  /** The message names what the key may do, the details say it again for programs. */
  private refusal(why: string): HeraldError {
    const may = this.scope === 'publish'
      ? `publish${this.channels ? ` to channels matching ${this.channels.join(', ')}` : ''} (POST /api/v1/publish, /api/v1/publish/batch)`
      : 'read (the GET routes of /api/v1)';
    return new HeraldError(ErrorCode.API_KEY_SCOPE, `the API key may ${may}: ${why}`, {
      scope: this.scope,
      ...(this.channels ? { channels: [...this.channels] } : {}),
    });
  }
}

/** The keys of `api.keys`, each with its grant, looked up in constant time per key. */
export class ApiKeyring {
  private readonly entries: Array<{ key: Buffer; grant: ApiKeyGrant }>;

  constructor(keys: readonly ApiKeyEntry[]) {
    this.entries = keys.map((entry) =>
      typeof entry === 'string'
        ? { key: Buffer.from(entry), grant: new ApiKeyGrant('admin', undefined) }
        : { key: Buffer.from(entry.key), grant: new ApiKeyGrant(entry.scope, entry.channels) },
    );
  }

  /** The grant of the presented key, undefined for a key not in `api.keys`. Every key is compared. */
  find(given: string): ApiKeyGrant | undefined {
    const g = Buffer.from(given);
    let found: ApiKeyGrant | undefined;
    for (const e of this.entries) if (e.key.length === g.length && timingSafeEqual(e.key, g) && !found) found = e.grant;
    return found;
  }
}
