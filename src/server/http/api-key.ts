/** The API key a backend presents (`Authorization: Bearer …` or `X-API-Key`) and its constant-time check. */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

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
