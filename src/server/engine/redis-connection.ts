/**
 * Opens the ioredis connections the Redis engines share one policy for: connect at start (and
 * fail start-up naming `engine.redis.url`), never queue commands while disconnected, never resend
 * a command whose outcome is unknown, and give up on a stalled command after `commandTimeoutMs` —
 * so a caller learns "Redis unavailable" promptly instead of hanging.
 */
import { Redis } from 'ioredis';

export interface RedisEngineOptions {
  /** `redis://[user:pass@]host:port[/db]` (engine.redis.url). */
  url: string;
  /** Prefix of every key and pub/sub topic (engine.redis.prefix). */
  prefix: string;
  /** A command not answered within this time fails (ms). Default 3000. */
  commandTimeoutMs?: number;
  /** Gets connection problems; they are retried in the background. */
  onError?: (err: Error, connection: string) => void;
}

/** The URL without credentials, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export async function openRedis(opts: RedisEngineOptions, role: string): Promise<Redis> {
  const client = new Redis(opts.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 3000,
    connectTimeout: 5000,
    connectionName: `herald:${opts.prefix}:${role}`,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
  });
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
    throw new Error(`cannot connect to Redis at engine.redis.url=${redactUrl(opts.url)}: ${(err as Error).message}`, { cause: err });
  }
  return client;
}

/** Closes gracefully when connected, at once otherwise. */
export async function closeRedis(client: Redis): Promise<void> {
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
