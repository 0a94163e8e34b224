/** The API key a caller presents (`Authorization: Bearer …` or `X-API-Key`) and its constant-time check. */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { onRequestHookHandler } from 'fastify';
import { ErrorCode } from '@herald/protocol';
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
