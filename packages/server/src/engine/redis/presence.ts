/**
 * Presence in Redis: one hash per user, `connectionId → "<expiresAtMs>|<ConnectionInfo JSON>"`.
 * Every entry expires `ttlMs` after it was last written (by Redis's clock, so nodes' clocks do not
 * matter); each node rewrites its own entries every `ttlMs / 3`, so only a node that stopped —
 * SIGKILL, network partition — loses its entries. Expired entries are skipped and deleted on read;
 * the whole hash expires once no node refreshes it.
 */
import type { ConnectionInfo, PresenceStore } from '../presence.js';
import { closeRedis, LUA_NOW_MS, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';

export interface RedisPresenceOptions extends RedisEngineOptions {
  /** Entry lifetime without a refresh (engine.redis.presenceTtlMs). */
  ttlMs: number;
}

// KEYS[1] user hash; ARGV[1] ttlMs, then connectionId, JSON pairs.
const ADD_LUA = `${LUA_NOW_MS}
local ttl = tonumber(ARGV[1])
local exp = now_ms() + ttl
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], exp .. '|' .. ARGV[i + 1])
end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`;

// KEYS[1] user hash. Returns the live entries' JSON; deletes expired ones.
const LIST_LUA = `${LUA_NOW_MS}
local now = now_ms()
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, '|', 1, true)
  local exp = sep and tonumber(string.sub(v, 1, sep - 1)) or 0
  if exp > now then
    live[#live + 1] = string.sub(v, sep + 1)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
`;

type ScriptedRedis = RedisClient & {
  heraldPresenceAdd(key: string, ttlMs: number, ...pairs: string[]): Promise<number>;
  heraldPresenceList(key: string): Promise<string[]>;
};

export class RedisPresence implements PresenceStore {
  /** This node's entries by user, kept to refresh them. */
  private readonly own = new Map<string, Map<string, string>>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;

  private constructor(
    private readonly redis: ScriptedRedis,
    private readonly opts: RedisPresenceOptions,
  ) {}

  static async connect(opts: RedisPresenceOptions): Promise<RedisPresence> {
    if (!(opts.ttlMs >= 30)) throw new Error(`engine.redis.presenceTtlMs must be at least 30 ms, got ${opts.ttlMs}`);
    const redis = (await openRedis(opts, 'presence')) as ScriptedRedis;
    redis.defineCommand('heraldPresenceAdd', { numberOfKeys: 1, lua: ADD_LUA });
    redis.defineCommand('heraldPresenceList', { numberOfKeys: 1, lua: LIST_LUA });
    const store = new RedisPresence(redis, opts);
    store.timer = setInterval(() => void store.refresh(), Math.max(10, Math.floor(opts.ttlMs / 3)));
    store.timer.unref();
    return store;
  }

  async add(info: ConnectionInfo): Promise<void> {
    const json = JSON.stringify(info);
    let mine = this.own.get(info.user);
    if (!mine) this.own.set(info.user, (mine = new Map()));
    mine.set(info.connectionId, json);
    await this.redis.heraldPresenceAdd(this.key(info.user), this.opts.ttlMs, info.connectionId, json);
  }

  async remove(connectionId: string, user: string): Promise<void> {
    const mine = this.own.get(user);
    if (mine?.delete(connectionId) && mine.size === 0) this.own.delete(user);
    await this.redis.hdel(this.key(user), connectionId);
  }

  async userConnections(user: string): Promise<ConnectionInfo[]> {
    const live = await this.redis.heraldPresenceList(this.key(user));
    return live.map((json) => JSON.parse(json) as ConnectionInfo);
  }

  /** Rewrites this node's entries with a fresh expiry; called every `ttlMs / 3`. */
  async refresh(): Promise<void> {
    if (this.refreshing || this.own.size === 0 || this.redis.status !== 'ready') return;
    this.refreshing = true;
    try {
      // Separate commands rather than one pipeline: on a Redis Cluster each user's hash may live on
      // another shard, and ioredis refuses a pipeline that spans shards. ioredis still writes them
      // back to back without waiting for replies; the batches bound what is in flight.
      let batch: Promise<number>[] = [];
      for (const [user, conns] of this.own) {
        const pairs: string[] = [];
        for (const [id, json] of conns) pairs.push(id, json);
        batch.push(this.redis.heraldPresenceAdd(this.key(user), this.opts.ttlMs, ...pairs));
        if (batch.length === 1000) {
          await settle(batch);
          batch = [];
        }
      }
      await settle(batch);
    } catch (err) {
      this.opts.onError?.(err as Error, 'presence refresh');
    } finally {
      this.refreshing = false;
    }
  }

  /** Removes this node's remaining entries and disconnects. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.redis.status === 'ready' && this.own.size > 0) {
      await Promise.allSettled([...this.own].map(([user, conns]) => this.redis.hdel(this.key(user), ...conns.keys())));
    }
    this.own.clear();
    await closeRedis(this.redis);
  }

  /** What SIGKILL does: stop refreshing and drop the connection, leaving the entries to expire. For tests. */
  abandon(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.redis.disconnect();
  }

  private key(user: string): string {
    return `${this.opts.prefix}:pres:{${user}}`;
  }
}

/** Waits for every command; throws the first failure after all have finished. */
async function settle(commands: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(commands)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
