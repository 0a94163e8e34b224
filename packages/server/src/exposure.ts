/**
 * The secrets printed in this repository's example configurations (packages/server/configs/dev.json, the
 * cluster examples) and documentation are known to anyone: with them a stranger mints tokens and
 * publishes. They are allowed on a loopback listener only, where nobody else can reach the
 * server; anywhere else start-up fails naming the keys to change.
 * packages/server/test/hardening-defaults.test.ts keeps this list in step with the shipped configs.
 */
import { BlockList, isIP } from 'node:net';
import type { HeraldConfig } from './config-types.generated.js';
import { apiKeySecret } from './http/api-key.js';

export const WELL_KNOWN_SECRETS: ReadonlySet<string> = new Set([
  'dev-secret-change-me-0123456789abcdef',
  'dev-api-key',
  'cluster-example-secret-change-me-0123456789',
  'cluster-example-api-key-change-me',
]);

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for `localhost`, 127.0.0.0/8 and ::1 (IPv4-mapped too); false for `0.0.0.0`, `::` and every other name or address. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = isIP(bare);
  return family !== 0 && LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

/** The config keys holding a well-known secret, when the server would listen beyond loopback; empty when it is safe. */
export function exposedWellKnownSecrets(config: Pick<HeraldConfig, 'server' | 'auth' | 'api' | 'ops'>): string[] {
  if (isLoopbackHost(config.server.host)) return [];
  const keys: string[] = [];
  if (WELL_KNOWN_SECRETS.has(config.auth.jwt.hmacSecret)) keys.push('auth.jwt.hmacSecret');
  for (const [i, k] of config.auth.jwt.keySets.entries()) if (WELL_KNOWN_SECRETS.has(k.hmacSecret ?? '')) keys.push(`auth.jwt.keySets.${i}.hmacSecret`);
  if (config.api.keys.some((k) => WELL_KNOWN_SECRETS.has(apiKeySecret(k)))) keys.push('api.keys');
  if (config.ops.keys.some((k) => WELL_KNOWN_SECRETS.has(k))) keys.push('ops.keys');
  return keys;
}
