/**
 * The checks of the backend-facing configuration (proxy hooks, webhooks) that the schema cannot
 * express: run by `resolveConfig`, so `herald config check` finds these mistakes before a deploy
 * instead of the server failing (or a hook failing each call) after it.
 */
import { ConfigError } from './config-input.js';
import type { HeraldConfig } from './config-types.generated.js';

const HOOKS = ['connect', 'subscribe', 'publish', 'rpc', 'refresh'] as const;

/** Throws a ConfigError naming the key of the first problem. */
export function checkBackendConfig(config: HeraldConfig): void {
  for (const hook of HOOKS) {
    const url = config.proxy[hook].url;
    if (!url) continue;
    const parsed = checkHttpUrl(`proxy.${hook}.url`, url);
    // Hooks are called with fetch, which refuses a URL carrying credentials: every call would fail.
    if (parsed.username || parsed.password) throw new ConfigError(`proxy.${hook}.url: must not carry a user or password (hook calls could not be made); forward a header with proxy.headers instead`);
  }
  // A receiver picks the secret by kid: two under one kid would make one of them unverifiable.
  const signing = config.proxy.signing.secrets;
  if (new Set(signing.map((s) => s.kid)).size !== signing.length) throw new ConfigError('proxy.signing.secrets: each kid must be different');
  const w = config.webhooks;
  if (w.endpoints.length === 0) return;
  if (config.engine.type === 'memory') {
    throw new ConfigError('webhooks.endpoints: engine.type "memory" keeps nothing across a restart, so webhooks could not be delivered at least once; use engine.type sqlite, redis or nats');
  }
  const ids = new Set<string>();
  for (const [i, e] of w.endpoints.entries()) {
    if (ids.has(e.id)) throw new ConfigError(`webhooks.endpoints[${i}].id: "${e.id}" is used twice`);
    ids.add(e.id);
    checkHttpUrl(`webhooks.endpoints[${i}].url`, e.url);
    const kids = new Set(e.secrets.map((s) => s.kid));
    if (kids.size !== e.secrets.length) throw new ConfigError(`webhooks.endpoints[${i}].secrets: each kid must be different`);
  }
  if (w.retry.maxMs < w.retry.initialMs) throw new ConfigError('webhooks.retry.maxMs: must be at least webhooks.retry.initialMs');
}

function checkHttpUrl(key: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${key}: not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${key}: must be an http or https URL: ${raw}`);
  return url;
}
