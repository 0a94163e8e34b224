/**
 * Opens the ioredis connections the Redis engines share one policy for: connect at start (and
 * fail start-up naming the config key that points at Redis), never queue commands while
 * disconnected, never resend a command whose outcome is unknown, and give up on a stalled command
 * after `commandTimeoutMs` — so a caller learns "Redis unavailable" promptly instead of hanging.
 *
 * Three deployments are reached the same way: one standalone server (`engine.redis.url`), a
 * master found through Redis Sentinel (ioredis asks the sentinels and follows a failover), or a
 * Redis Cluster (ioredis follows MOVED/ASK and refreshes the slot map itself).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: string[]; masterName: string; password?: string; sentinelPassword?: string; db?: number }
  | { mode: 'cluster'; nodes: string[]; password?: string };

export interface RedisEngineOptions {
  /** `redis://[user:pass@]host:port[/db]` of a standalone server (engine.redis.url); ignored when `target` is set. */
  url?: string;
  /** Where Redis is (engine.redis.mode and its section); defaults to the standalone `url`. */
  target?: RedisTarget;
  /** Prefix of every key and pub/sub topic (engine.redis.prefix). */
  prefix: string;
  /** A command not answered within this time fails (ms). Default 3000. */
  commandTimeoutMs?: number;
  /** Gets connection problems; they are retried in the background. */
  onError?: (err: Error, connection: string) => void;
}

/** A connection to whichever deployment was configured; engines use only what both types share. */
export type RedisClient = Redis | Cluster;

/** The URL without credentials, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export function targetOf(opts: RedisEngineOptions): RedisTarget {
  if (opts.target) return opts.target;
  if (!opts.url) throw new Error('engine.redis.url: a Redis URL is required');
  return { mode: 'standalone', url: opts.url };
}

/** True when topics must be sharded (SSUBSCRIBE/SPUBLISH) and every script must stay in one slot. */
export function isCluster(opts: RedisEngineOptions): boolean {
  return targetOf(opts).mode === 'cluster';
}

/** Names the configured target in error messages, without passwords. */
export function describeTarget(target: RedisTarget): string {
  switch (target.mode) {
    case 'standalone':
      return `engine.redis.url=${redactUrl(target.url)}`;
    case 'sentinel':
      return `engine.redis.sentinel.sentinels=${target.sentinels.join(',')} (master "${target.masterName}")`;
    case 'cluster':
      return `engine.redis.cluster.nodes=${target.nodes.join(',')}`;
  }
}

/** `host:port` → ioredis' node shape; the config validation has already checked the form. */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(hostPort.slice(i + 1)) };
}

const reconnectBackoff = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000);

export interface OpenRedisExtras {
  /** Cluster only: one subscriber connection per master for SSUBSCRIBE. */
  shardedSubscribers?: boolean;
}

export async function openRedis(opts: RedisEngineOptions, role: string, extras: OpenRedisExtras = {}): Promise<RedisClient> {
  const target = targetOf(opts);
  const perConnection: RedisOptions = {
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 3000,
    connectTimeout: 5000,
    connectionName: `herald:${opts.prefix}:${role}`,
  };
  let client: RedisClient;
  switch (target.mode) {
    case 'standalone':
      client = new Redis(target.url, { ...perConnection, lazyConnect: true, enableOfflineQueue: false, retryStrategy: reconnectBackoff });
      break;
    case 'sentinel':
      client = new Redis({
        ...perConnection,
        lazyConnect: true,
        enableOfflineQueue: false,
        retryStrategy: reconnectBackoff,
        sentinels: target.sentinels.map(parseHostPort),
        name: target.masterName,
        role: 'master',
        ...(target.password ? { password: target.password } : {}),
        ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
        ...(target.db ? { db: target.db } : {}),
        // One pass over the sentinel list per attempt; the reconnect backoff above paces the next pass.
        sentinelRetryStrategy: (attempt) => (attempt > target.sentinels.length ? null : 100),
        // Subscribe to the sentinels' +switch-master, so a promotion is followed at once rather
        // than when the old master's socket finally errors.
        failoverDetector: true,
      });
      break;
    case 'cluster': {
      const options: ClusterOptions = {
        lazyConnect: true,
        // Refuses commands while the cluster is not ready; the per-node connections inside keep
        // ioredis' own queue, which it needs to follow redirections.
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectBackoff,
        shardedSubscribers: extras.shardedSubscribers ?? false,
        // ioredis re-reads the slot map only on MOVED unless told to poll. A subscriber never sees
        // MOVED when a slot migrates (the old owner just drops its shard channels), so it polls.
        ...(extras.shardedSubscribers ? { slotsRefreshInterval: 2000 } : {}),
        redisOptions: { ...perConnection, ...(target.password ? { password: target.password } : {}) },
      };
      client = new Cluster(target.nodes.map(parseHostPort), options);
      break;
    }
  }
  let lastReported = 0;
  client.on('error', (err: Error) => {
    // ioredis reports every failed reconnect attempt; once every few seconds is enough.
    const now = Date.now();
    if (now - lastReported < 5000) return;
    lastReported = now;
    opts.onError?.(err, role);
  });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new Error(`cannot connect to Redis at ${describeTarget(target)}: ${(err as Error).message}`, { cause: err });
  }
  return client;
}

/** Closes gracefully when connected, at once otherwise. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      /* fall through */
    }
  }
  client.disconnect();
}

/** Server time in ms from a Lua script (all nodes then agree on "now"). */
export const LUA_NOW_MS = `local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;
