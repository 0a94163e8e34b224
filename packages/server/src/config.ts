/**
 * Configuration: the defaults declared in `packages/server/api/config.schema.json`, then a file,
 * then environment variables, then explicit overrides (CLI flags). The merged result is validated
 * against the same schema and frozen; a bad value fails start-up with the key that is wrong. The
 * schema is the one source of the configuration's shape: the type below is generated from it
 * (`npm run -w herald gen:config`), and the defaults and the environment names are derived from
 * it (config-schema.ts). The core never reads `process.env` itself: the CLI passes the environment in.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { exposedWellKnownSecrets } from './exposure.js';
import { apiKeySecret } from './http/api-key.js';
import { adminUiCredentialProblem } from './http/admin-ui/credential-check.js';
import { checkBackendConfig } from './config-backend.js';
import { ConfigError, mergeConfig } from './config-input.js';
import { checkJwksUrl } from './remote-jwks.js';
import { closest, configSchema, nodeAt, schemaDefaults } from './config-schema.js';
import type { Bucket, HeraldConfig } from './config-types.generated.js';

export type { HeraldConfig, DeliveryMode } from './config-types.generated.js';
export { ConfigError, configFromAssignments, mergeConfig, readConfigFile, setPath } from './config-input.js';
export { configFromEnv, NON_CONFIG_VARIABLES } from './config-env.js';

/** A channel's history window: `channels.history`, which a namespace may override in part. */
export type HistoryConfig = HeraldConfig['channels']['history'];

/** A token bucket: `perSecond` tokens are added each second up to `burst`; `perSecond: 0` turns the limit off. */
export type BucketConfig = Bucket;

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

function deepFreeze<T>(obj: T): T {
  if (obj && typeof obj === 'object') {
    for (const v of Object.values(obj)) deepFreeze(v);
    Object.freeze(obj);
  }
  return obj;
}

let validator: ReturnType<Ajv['compile']> | undefined;

/** One schema error as a line naming its key; an unknown key also names the nearest known one. */
function describeProblem(e: ErrorObject): string {
  const path = e.instancePath.split('/').slice(1);
  const key = path.join('.') || '(root)';
  if (e.keyword === 'additionalProperties' && 'additionalProperty' in e.params) {
    const wrong = String(e.params.additionalProperty);
    const known = Object.keys(nodeAt(path)?.properties ?? {});
    const near = closest(wrong, known);
    return `${key}: must NOT have additional properties "${wrong}"${near ? ` (did you mean "${[...path, near].join('.')}"?)` : ''}`;
  }
  const allowed = 'allowedValues' in e.params ? ` (one of ${JSON.stringify(e.params.allowedValues)})` : 'allowedValue' in e.params ? ` (${JSON.stringify(e.params.allowedValue)})` : '';
  return `${key}: ${e.message ?? 'invalid'}${allowed}`;
}

/**
 * A value that may take one of several forms (`api.keys` items: a string or an object) fails every
 * alternative; the errors of the alternatives whose type it does not even have, and the summaries
 * (`oneOf`, `if`), only hide the one that says what is wrong. They are dropped when the
 * alternative of the value's type reported something.
 */
function withoutOtherAlternatives(errors: ErrorObject[]): ErrorObject[] {
  const wrongType = errors
    .filter((e) => e.keyword === 'type' && /\/oneOf\/\d+\/type$/.test(e.schemaPath))
    .map((e) => ({ at: e.instancePath, branch: e.schemaPath.slice(0, -'type'.length), oneOf: e.schemaPath.replace(/\/\d+\/type$/, '/') }));
  const under = (e: ErrorObject, at: string) => e.instancePath === at || e.instancePath.startsWith(`${at}/`);
  const pruned = wrongType.filter((w) =>
    errors.some((e) => under(e, w.at) && e.schemaPath.startsWith(w.oneOf) && !wrongType.some((o) => o.at === w.at && e.schemaPath.startsWith(o.branch))),
  );
  if (pruned.length === 0) return errors;
  return errors.filter((e) => {
    const at = pruned.find((w) => under(e, w.at));
    if (!at) return true;
    if (e.keyword === 'oneOf' || e.keyword === 'if') return false;
    return !pruned.some((w) => under(e, w.at) && e.schemaPath.startsWith(w.branch));
  });
}

/** Merges the layers over the defaults, validates, and returns a frozen config. */
export function resolveConfig(...layers: unknown[]): Readonly<HeraldConfig> {
  let merged = schemaDefaults<HeraldConfig>();
  for (const layer of layers) merged = mergeConfig(merged, layer);
  validator ??= new Ajv({ allErrors: true, strict: false }).compile(structuredClone(configSchema()));
  if (!validator(merged)) {
    const problems = withoutOtherAlternatives(validator.errors ?? []).map(describeProblem);
    throw new ConfigError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
  // `true`/`false` are accepted for the hop count (one proxy, none); the rest of the code sees a number.
  const trust = merged.server.trustProxy as number | boolean;
  if (typeof trust === 'boolean') merged = mergeConfig(merged, { server: { trustProxy: trust ? 1 : 0 } });
  const { heartbeat } = merged;
  if (heartbeat.pongTimeoutMs >= heartbeat.intervalMs) {
    throw new ConfigError('heartbeat.pongTimeoutMs: must be shorter than heartbeat.intervalMs');
  }
  if (merged.server.workers !== 1 && (merged.engine.type === 'memory' || merged.engine.type === 'sqlite')) {
    throw new ConfigError(
      `server.workers: ${merged.server.workers} worker processes need a cluster engine for fan-out between them; set engine.type to "redis" or "nats", or server.workers to 1`,
    );
  }
  if (merged.engine.type === 'redis') checkRedisDeployment(merged);
  if (merged.auth.jwt.jwksUrl) {
    checkJwksUrl(merged.auth.jwt.jwksUrl);
    if (merged.auth.jwt.jwksFile) throw new ConfigError('auth.jwt.jwksUrl: set either jwksUrl or jwksFile, not both');
  }
  // One key with two scopes would leave which one applies to the order of the list.
  const apiKeys = merged.api.keys.map(apiKeySecret);
  const repeated = apiKeys.findIndex((k, i) => apiKeys.indexOf(k) !== i);
  if (repeated >= 0) throw new ConfigError(`api.keys.${repeated}: the same key is already listed at api.keys.${apiKeys.indexOf(apiKeys[repeated]!)}`);
  const adminUiProblem = adminUiCredentialProblem(merged);
  if (adminUiProblem) throw new ConfigError(adminUiProblem);
  const secretProblem = hmacSecretProblem(merged.auth.jwt.hmacSecret);
  if (secretProblem) throw new ConfigError(`auth.jwt.hmacSecret: ${secretProblem}`);
  checkKeySets(merged.auth.jwt.keySets);
  checkBackendConfig(merged);
  const exposed = exposedWellKnownSecrets(merged);
  if (exposed.length > 0) {
    throw new ConfigError(
      `server.host: "${merged.server.host}" is reachable from other machines, but ${exposed.join(' and ')} ${exposed.length > 1 ? 'hold' : 'holds'} an example secret published with Herald (anyone could mint tokens or use the API): set your own (HERALD_AUTH__JWT__HMAC_SECRET, HERALD_API__KEYS) or listen on 127.0.0.1`,
    );
  }
  return deepFreeze(merged);
}

/** Each extra key set has a key, a unique name and the same rules as `auth.jwt` itself. */
function checkKeySets(keySets: HeraldConfig['auth']['jwt']['keySets']): void {
  const names = new Set<string>();
  keySets.forEach((k, i) => {
    const at = `auth.jwt.keySets.${i}`;
    if (names.has(k.name)) throw new ConfigError(`${at}.name: "${k.name}" is already the name of another key set`);
    names.add(k.name);
    if (!k.hmacSecret && !k.publicKeyFile && !k.jwksFile && !k.jwksUrl) throw new ConfigError(`${at}: key set "${k.name}" has no key (hmacSecret, publicKeyFile, jwksFile or jwksUrl)`);
    const problem = hmacSecretProblem(k.hmacSecret ?? '');
    if (problem) throw new ConfigError(`${at}.hmacSecret: ${problem}`);
    if (k.jwksUrl) {
      checkJwksUrl(k.jwksUrl, `${at}.jwksUrl`);
      if (k.jwksFile) throw new ConfigError(`${at}.jwksUrl: set either jwksUrl or jwksFile, not both`);
    }
  });
}

/**
 * Shortest HMAC secret accepted. HS256 keys shorter than the hash (32 bytes) weaken it (RFC 7518
 * §3.2), and a short human-chosen secret can be brute-forced offline from any one token.
 */
export const MIN_HMAC_SECRET_LENGTH = 32;

/** Why an HMAC secret would be refused (also used by `herald token`), or undefined. An empty secret means "no HMAC tokens". */
export function hmacSecretProblem(secret: string): string | undefined {
  return secret.length > 0 && secret.length < MIN_HMAC_SECRET_LENGTH ? `must be at least ${MIN_HMAC_SECRET_LENGTH} characters` : undefined;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

/** The keys `engine.redis.mode` needs, present and well formed; each error names its key. */
function checkRedisDeployment(config: HeraldConfig): void {
  const { mode, sentinel, cluster, prefix } = config.engine.redis;
  const checkList = (key: string, list: string[]) => {
    if (list.length === 0) throw new ConfigError(`${key}: engine.redis.mode "${mode}" needs at least one "host:port"`);
    for (const entry of list) {
      const m = HOST_PORT.exec(entry);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ConfigError(`${key}: "${entry}" is not "host:port"`);
    }
  };
  if (mode === 'sentinel') {
    checkList('engine.redis.sentinel.sentinels', sentinel.sentinels);
    if (!sentinel.masterName) throw new ConfigError('engine.redis.sentinel.masterName: the name the sentinels monitor the master under is required with engine.redis.mode "sentinel"');
  }
  if (mode === 'cluster') {
    checkList('engine.redis.cluster.nodes', cluster.nodes);
    // The first {…} of a key is its Redis Cluster hash tag; braces in the prefix would take that
    // role from the channel or user name and scatter one channel's keys over several slots.
    if (/[{}]/.test(prefix)) throw new ConfigError('engine.redis.prefix: must not contain "{" or "}" with engine.redis.mode "cluster" (they would become the hash tag)');
  }
  if (mode !== 'standalone') {
    const i = config.ingest.redisStreams.findIndex((s) => !s.url);
    if (i >= 0) throw new ConfigError(`ingest.redisStreams[${i}].url: required with engine.redis.mode "${mode}" (stream ingestion connects to one standalone Redis URL)`);
  }
}
