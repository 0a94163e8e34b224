/**
 * Configuration: defaults from `packages/server/configs/default.json`, then a file, then environment variables,
 * then explicit overrides (CLI flags). The merged result is validated against
 * `packages/server/api/config.schema.json` and frozen; a bad value fails start-up with the key that is wrong.
 * The core never reads `process.env` itself: the CLI passes the environment in.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { readJsonAsset } from './assets.js';
import { exposedWellKnownSecrets } from './exposure.js';

export type DeliveryMode = 'at-most-once' | 'at-least-once';

export interface HistoryConfig {
  size: number;
  ttlMs: number;
}

/** A token bucket: `perSecond` tokens are added each second up to `burst`; `perSecond: 0` turns the limit off. */
export interface BucketConfig {
  perSecond: number;
  burst: number;
}

export interface HeraldConfig {
  server: {
    host: string;
    port: number;
    nodeName: string;
    demoPage: boolean;
    /** Trusted proxy hops in front of Herald: the client IP is this many entries from the right of X-Forwarded-For (0: the socket's address). */
    trustProxy: number;
    workers: number;
    nativeSend: boolean;
    /** Node HTTP server protection: request/header deadlines and a cap on open TCP connections (0: derived from the limits). */
    http: { requestTimeoutMs: number; headersTimeoutMs: number; keepAliveTimeoutMs: number; maxConnections: number };
  };
  auth: {
    anonymous: boolean;
    jwt: {
      hmacSecret: string;
      publicKeyFile: string;
      jwksFile: string;
      algorithms: string[];
      issuer: string;
      audience: string;
      /** Refuse tokens without `exp`. */
      requireExp: boolean;
      /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. */
      clockToleranceSec: number;
    };
  };
  api: { keys: string[]; publishFastPath: boolean };
  origins: { allowed: string[] };
  limits: {
    maxConnections: number;
    maxConnectionsPerUser: number;
    maxConnectionsPerIp: number;
    /** IPv6 clients are grouped by this prefix length for the per-IP limits. */
    ipv6PrefixLength: number;
    /** Sockets upgraded but not yet authenticated (no `connected` yet); counted apart from `maxConnections`. */
    maxPendingConnections: number;
    maxSubscriptionsPerConnection: number;
    maxMessageBytes: number;
    /** Deepest nesting of arrays/objects accepted in any JSON a client sends (frames, HTTP bodies). */
    maxJsonDepth: number;
    handshakeTimeoutMs: number;
    maxQueueBytes: number;
    maxInvalidFrames: number;
    overload: { mode: 'reject' | 'queue'; queueTimeoutMs: number; maxQueued: number };
  };
  heartbeat: { intervalMs: number; pongTimeoutMs: number; maxMissed: number };
  channels: {
    public: string[];
    clientPublish: string[];
    history: HistoryConfig;
    maxRecover: number;
    namespaces: Record<string, { history?: Partial<HistoryConfig>; delivery?: DeliveryMode; rateLimits?: { publish?: BucketConfig; subscribe?: BucketConfig } }>;
  };
  publish: { idempotencyWindowMs: number; defaultSource: string; defaultVersion: string; idempotencyMaxKeys: number };
  delivery: {
    defaultMode: DeliveryMode;
    ackTimeoutMs: number;
    retry: { initialDelayMs: number; multiplier: number; maxDelayMs: number; jitter: number };
    maxAttempts: number;
    maxInFlight: number;
    maxReceipts: number;
    receiptTtlMs: number;
    /** Per-recipient records a detailed receipt keeps; beyond it only the counts grow. */
    maxRecipientsPerReceipt: number;
  };
  inbox: { maxMessages: number; maxAgeMs: number; deliverBatch: number };
  rpc: { timeoutMs: number; maxPendingPerConnection: number; /** Register the built-in `echo` method (demos, tests). */ echo: boolean };
  /** Token buckets; see docs/security.md. */
  rateLimits: {
    enabled: boolean;
    /** Per connection. `frames` counts every frame but `ack`. */
    connection: { publish: BucketConfig; subscribe: BucketConfig; rpc: BucketConfig; frames: BucketConfig };
    /** Per user, across the user's connections on this node. */
    user: { publish: BucketConfig; subscribe: BucketConfig; rpc: BucketConfig };
    /** Per client IP (IPv6 grouped by `limits.ipv6PrefixLength`). */
    ip: { handshakes: BucketConfig };
    /** Per API key, for `/api/v1`. */
    apiKey: { requests: BucketConfig };
    /** Per user (per IP for anonymous clients), for `/poll/v1`. */
    poll: { requests: BucketConfig };
    /** A connection with more than `maxRejected` rate-limited frames within `windowMs` is closed with 4506. */
    abuse: { maxRejected: number; windowMs: number };
  };
  /** Operational endpoints: with `keys`, `/metrics` and `/docs` need one of them; `docs: false` removes `/docs`. */
  ops: { keys: string[]; docs: boolean };
  engine: {
    type: 'memory' | 'sqlite' | 'redis' | 'nats';
    sqlite: { dataDir: string; synchronous: 'off' | 'normal' | 'full' };
    redis: {
      /** Which Redis deployment: `url` (standalone), `sentinel` or `cluster`. */
      mode: 'standalone' | 'sentinel' | 'cluster';
      url: string;
      sentinel: { sentinels: string[]; masterName: string; password: string; sentinelPassword: string; db: number };
      cluster: { nodes: string[]; password: string };
      prefix: string;
      presenceTtlMs: number;
    };
    nats: { servers: string[]; prefix: string; presenceTtlMs: number; replicas: number };
  };
  /**
   * Streams Herald consumes messages from (seed 3.2). Each entry is a publish request whose
   * message is in the standard envelope; it is acknowledged to the stream only once accepted.
   */
  ingest: {
    redisStreams: Array<{ url?: string; stream: string; group?: string; consumer?: string; batch?: number; blockMs?: number; deadLetterStream?: string }>;
    jetstream: Array<{ servers?: string[]; stream: string; subject: string; durable?: string; batch?: number }>;
  };
  log: { level: string };
  shutdown: { drainTimeoutMs: number };
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Key names no configuration has, refused wherever keys come from (file, environment, `--set`):
 * `__proto__` as an assigned key replaces an object's prototype — `--set __proto__.x=1` would
 * have set `x` on every object in the process — and the other two lead to it
 * (`constructor.prototype`).
 */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function refuseUnsafeKey(key: string, path: readonly string[]): void {
  if (UNSAFE_KEYS.has(key)) throw new ConfigError(`${[...path, key].join('.')}: "${key}" is not allowed as a configuration key`);
}

/** Refuses an unsafe key anywhere inside a value parsed from JSON (objects in arrays included). */
function refuseUnsafeKeysIn(value: unknown, path: readonly string[]): void {
  if (Array.isArray(value)) value.forEach((item, i) => refuseUnsafeKeysIn(item, [...path, String(i)]));
  else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      refuseUnsafeKey(k, path);
      refuseUnsafeKeysIn(v, [...path, k]);
    }
  }
}

/**
 * Deep merge where arrays and scalars from `over` replace those in `base`. A key named
 * `__proto__`, `constructor` or `prototype` (JSON.parse makes `"__proto__"` an own key) throws a
 * ConfigError instead of being assigned.
 */
export function mergeConfig<T>(base: T, over: unknown, path: readonly string[] = []): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    refuseUnsafeKey(k, path);
    if (v === undefined) continue;
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? mergeConfig(out[k], v, [...path, k]) : v;
  }
  return out as T;
}

function deepFreeze<T>(obj: T): T {
  if (obj && typeof obj === 'object') {
    for (const v of Object.values(obj)) deepFreeze(v);
    Object.freeze(obj);
  }
  return obj;
}

/** Parses a string from the environment or a flag into the JSON type the key expects. */
function coerce(raw: string): unknown {
  const t = raw.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t.startsWith('[') || t.startsWith('{')) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * `HERALD_LIMITS__MAX_CONNECTIONS=5000` → `{limits: {maxConnections: 5000}}`. Double underscore
 * separates levels, single underscores become camelCase. Comma lists are accepted for arrays of
 * strings (`HERALD_API__KEYS=a,b`).
 */
export function configFromEnv(env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('HERALD_') || value === undefined || name === 'HERALD_CONFIG') continue;
    const path = name.slice('HERALD_'.length).split('__').map(camel);
    if (path.length < 2 || !SECTIONS.has(path[0]!)) continue;
    let parsed = coerce(value);
    refuseUnsafeKeysIn(parsed, path);
    const key = path.join('.');
    if (typeof parsed === 'string' && ARRAY_KEYS.has(key)) parsed = parsed.split(',').map((s) => s.trim()).filter(Boolean);
    setPath(out, path, parsed);
  }
  return out;
}

const ARRAY_KEYS = new Set(['api.keys', 'ops.keys', 'origins.allowed', 'channels.public', 'channels.clientPublish', 'auth.jwt.algorithms', 'engine.nats.servers']);
for (const key of ['engine.redis.sentinel.sentinels', 'engine.redis.cluster.nodes']) ARRAY_KEYS.add(key);

/** Only variables naming a config section are configuration; others (HERALD_API_KEY for the CLI) are not. */
const SECTIONS = new Set(['ingest', 'server', 'auth', 'api', 'origins', 'limits', 'heartbeat', 'channels', 'publish', 'delivery', 'inbox', 'rpc', 'engine', 'log', 'shutdown', 'rateLimits', 'ops']);

export function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  path.forEach((k, i) => refuseUnsafeKey(k, path.slice(0, i)));
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (!isPlainObject(node[k])) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** `--set limits.maxConnections=5000` style assignments. */
export function configFromAssignments(assignments: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key=value, got "${a}"`);
    const path = a.slice(0, eq).split('.');
    let v = coerce(a.slice(eq + 1));
    refuseUnsafeKeysIn(v, path);
    if (typeof v === 'string' && ARRAY_KEYS.has(path.join('.'))) v = v.split(',').map((s) => s.trim()).filter(Boolean);
    setPath(out, path, v);
  }
  return out;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
    if (!isPlainObject(parsed)) throw new Error('top level must be an object');
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    refuseUnsafeKeysIn(parsed, []);
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
  }
  return parsed;
}

let validator: ReturnType<Ajv['compile']> | undefined;

/** Merges the layers over the defaults, validates, and returns a frozen config. */
export function resolveConfig(...layers: unknown[]): Readonly<HeraldConfig> {
  let merged = readJsonAsset<HeraldConfig>('configs/default.json');
  for (const layer of layers) merged = mergeConfig(merged, layer);
  validator ??= new Ajv({ allErrors: true, strict: false }).compile(readJsonAsset('api/config.schema.json'));
  if (!validator(merged)) {
    const problems = (validator.errors ?? []).map((e) => {
      const key = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)';
      const extra = e.params && 'additionalProperty' in e.params ? ` "${String(e.params.additionalProperty)}"` : '';
      const allowed = e.params && 'allowedValues' in e.params ? ` (one of ${JSON.stringify(e.params.allowedValues)})` : '';
      return `${key}: ${e.message ?? 'invalid'}${extra}${allowed}`;
    });
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
  const secretProblem = hmacSecretProblem(merged.auth.jwt.hmacSecret);
  if (secretProblem) throw new ConfigError(`auth.jwt.hmacSecret: ${secretProblem}`);
  const exposed = exposedWellKnownSecrets(merged);
  if (exposed.length > 0) {
    throw new ConfigError(
      `server.host: "${merged.server.host}" is reachable from other machines, but ${exposed.join(' and ')} ${exposed.length > 1 ? 'hold' : 'holds'} an example secret published with Herald (anyone could mint tokens or use the API): set your own (HERALD_AUTH__JWT__HMAC_SECRET, HERALD_API__KEYS) or listen on 127.0.0.1`,
    );
  }
  return deepFreeze(merged);
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
