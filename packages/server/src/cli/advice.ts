/**
 * Settings that are valid but risky or surprising, as one-line warnings naming the key to change.
 * `herald config check` prints them; `herald serve` logs them at start-up (with the port it
 * actually listens on). The loader has already refused what the server never accepts (a short
 * HMAC secret, a published example secret beyond loopback).
 */
import type { HeraldConfig } from '../config.js';
import { isLoopbackHost, WELL_KNOWN_SECRETS } from '../exposure.js';
import { apiKeySecret } from '../http/api-key.js';

type AdvisedConfig = Pick<HeraldConfig, 'server' | 'auth' | 'api' | 'ops' | 'origins' | 'proxy'> & Partial<Pick<HeraldConfig, 'admin' | 'webhooks'>>;

const HOOKS = ['connect', 'subscribe', 'publish', 'rpc', 'refresh'] as const;

/** The host of an http(s) URL when it is beyond loopback; undefined for loopback or a URL that does not parse (the loader names that). */
function remoteHost(raw: string): string | undefined {
  try {
    const { hostname } = new URL(raw);
    return isLoopbackHost(hostname) ? undefined : hostname;
  } catch {
    return undefined;
  }
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

/** The origins a page served by this server itself (the demo page) has, when they can be known. */
export function ownOrigins(host: string, port: number): string[] {
  if (port === 0) return [];
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  if (WILDCARD_HOSTS.has(host) || isLoopbackHost(host)) return [`http://localhost:${port}`, `http://127.0.0.1:${port}`];
  return [`http://${h}:${port}`];
}

export function configWarnings(config: AdvisedConfig, port = config.server.port): string[] {
  const out: string[] = [];
  const { jwt, anonymous } = config.auth;
  const hasKey = Boolean(jwt.hmacSecret || jwt.publicKeyFile || jwt.jwksFile || jwt.jwksUrl || jwt.keySets.length > 0);
  // The connect hook names users itself: with it, a missing key only means tokens are not accepted.
  if (!hasKey && !config.proxy.connect.url) {
    out.push(anonymous
      ? 'no JWT key (auth.jwt.hmacSecret, auth.jwt.publicKeyFile, auth.jwt.jwksFile or auth.jwt.jwksUrl): only anonymous connections can be made'
      : 'no JWT key (auth.jwt.hmacSecret, auth.jwt.publicKeyFile, auth.jwt.jwksFile or auth.jwt.jwksUrl) and auth.anonymous is off: no client can connect');
  }
  if (anonymous) out.push('auth.anonymous is on: anyone who reaches the server may connect and use the channels in channels.public');
  if (WELL_KNOWN_SECRETS.has(jwt.hmacSecret) || config.api.keys.some((k) => WELL_KNOWN_SECRETS.has(apiKeySecret(k)))) {
    out.push('auth.jwt.hmacSecret or api.keys holds an example secret published with Herald: accepted on a loopback server.host only; set your own before exposing it');
  }
  if (config.api.keys.length === 0) out.push('api.keys is empty: the HTTP API (/api/v1) refuses every request');
  const exposed = !isLoopbackHost(config.server.host);
  if (exposed && config.ops.keys.length === 0) out.push(`ops.keys is empty and server.host "${config.server.host}" is reachable from other machines: /metrics${config.ops.docs ? ' and /docs are' : ' is'} public`);
  const ui = config.admin?.ui;
  if (ui?.enabled && exposed && ui.secureCookie !== 'always' && config.server.trustProxy === 0) {
    out.push(`admin.ui.enabled and server.host "${config.server.host}" is reachable from other machines without a TLS proxy (server.trustProxy is 0): the admin password and session cookie would cross the network in clear; put it behind TLS (deploy/nginx) and keep /admin private`);
  }
  for (const hook of HOOKS) {
    const url = config.proxy[hook].url;
    const host = url ? remoteHost(url) : undefined;
    if (host === undefined) continue;
    if (config.proxy.signing.secrets.length === 0) {
      out.push(`proxy.${hook}.url points at ${host} and proxy.signing.secrets is empty: anyone who can reach that URL can post hook requests naming any user; set proxy.signing.secrets and verify them in the backend (docs/integration.md#signed-hook-requests)`);
    }
    if (url.startsWith('http://')) out.push(`proxy.${hook}.url is plain http to ${host}: users, rights and payloads cross the network in clear; use https`);
  }
  for (const [i, e] of (config.webhooks?.endpoints ?? []).entries()) {
    const host = remoteHost(e.url);
    if (host !== undefined && e.url.startsWith('http://')) out.push(`webhooks.endpoints[${i}].url is plain http to ${host}: events (users, connections, payloads) cross the network in clear; use https`);
  }
  const allowed = config.origins.allowed.map((o) => o.toLowerCase());
  if (allowed.includes('*')) out.push('origins.allowed contains "*": a page on any site may open connections to this server');
  else if (allowed.length > 0) {
    const own = ownOrigins(config.server.host, port);
    if (own.length > 0 && !own.some((o) => allowed.includes(o))) {
      out.push(`origins.allowed does not include this server's own address (${own.join(' or ')}): pages it serves itself${config.server.demoPage ? ' (the demo page)' : ''} cannot connect; add it, or leave origins.allowed empty to accept same-origin pages under an IP address or localhost`);
    }
  }
  return out;
}
