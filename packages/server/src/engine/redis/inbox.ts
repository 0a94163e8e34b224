/**
 * Per-user inboxes in Redis. Three keys per user, one Cluster slot:
 *   `…:z` sorted set msgId → seq (order, and the msgId de-duplication),
 *   `…:d` hash msgId → "<storedAtMs>|<entry JSON>",
 *   `…:n` the seq counter (kept without expiry so seq never goes back, even after the inbox empties).
 * Each operation is one Lua script, so de-duplication, seq assignment and the limits are atomic
 * across nodes. Times are Redis's clock. The zset and hash expire an hour past `maxAgeMs` after the
 * last append (entries are counted as dropped when a read finds them expired before that).
 *
 * An at-least-once user message with an idempotency key takes the key in the append script (the
 * key is in the user's slot, see redis/idempotency.ts), so a retry is never appended twice — not
 * even after the first was acknowledged and removed.
 */
import type { Envelope } from '@herald/protocol';
import type { IdempotencyKey } from '../idempotency.js';
import type { AppendResult, InboxEntry, InboxLimits, InboxStore } from '../inbox.js';
import { closeRedis, LUA_NOW_MS, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';
import { idempotencyKeyName, parseStoredResult } from './idempotency.js';

export interface RedisInboxOptions extends RedisEngineOptions {
  /** publish.idempotencyWindowMs (see RedisBrokerOptions). Default 120 000; 0 turns keys off. */
  idempotencyWindowMs?: number;
}

// KEYS: z, d. Drops entries older than max_age, then the oldest beyond max_msgs. Returns the count.
const PRUNE_LUA = `${LUA_NOW_MS}
local function prune(max_msgs, max_age)
  local dropped = 0
  local cutoff = now_ms() - max_age
  while true do
    local first = redis.call('ZRANGE', KEYS[1], 0, 0)
    if #first == 0 then break end
    local v = redis.call('HGET', KEYS[2], first[1])
    local at = v and tonumber(string.match(v, '^(%d+)|')) or 0
    if at >= cutoff then break end
    redis.call('ZREM', KEYS[1], first[1])
    redis.call('HDEL', KEYS[2], first[1])
    dropped = dropped + 1
  end
  local excess = redis.call('ZCARD', KEYS[1]) - max_msgs
  while excess > 0 do
    local batch = math.min(excess, 1000)
    local ids = redis.call('ZRANGE', KEYS[1], 0, batch - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, batch - 1)
    redis.call('HDEL', KEYS[2], unpack(ids))
    dropped = dropped + batch
    excess = excess - batch
  end
  return dropped
end
`;

// KEYS: z, d, n[, idempotency key]. ARGV: msgId, entry JSON ({"envelope":…}), maxMessages, maxAgeMs[,
// timestamp, windowMs]. Returns {seq, duplicate, dropped}, or {0, 2, 0, stored result} when the
// idempotency key is taken (nothing appended).
const APPEND_LUA = `${PRUNE_LUA}
if KEYS[4] then
  local earlier = redis.call('GET', KEYS[4])
  if earlier then return {0, 2, 0, earlier} end
  redis.call('SET', KEYS[4], '{"t":' .. ARGV[5] .. '}', 'PX', ARGV[6])
end
local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if existing then return {tonumber(existing), 1, 0} end
local seq = redis.call('INCR', KEYS[3])
local now = now_ms()
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now .. '|{"seq":' .. seq .. ',"storedAt":' .. now .. ',' .. string.sub(ARGV[2], 2))
local dropped = prune(tonumber(ARGV[3]), tonumber(ARGV[4]))
-- Garbage collection for inboxes nobody reads: an hour past the age limit, so a reader who comes
-- within that hour still learns how many entries expired.
local keep = tonumber(ARGV[4]) + 3600000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return {seq, 0, dropped}
`;

// KEYS: z, d. ARGV: afterSeq, limit, maxMessages, maxAgeMs. Returns {dropped, values...}.
const LIST_LUA = `${PRUNE_LUA}
local dropped = prune(tonumber(ARGV[3]), tonumber(ARGV[4]))
local out = {dropped}
local limit = tonumber(ARGV[2])
if limit <= 0 then return out end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, limit)
if #ids == 0 then return out end
local vals = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #vals do
  if vals[i] then out[#out + 1] = vals[i] end
end
return out
`;

// KEYS: z, d. ARGV: msgIds. Returns the msgIds removed.
const REMOVE_LUA = `
local removed = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
return removed
`;

type ScriptedRedis = RedisClient & {
  // The number of keys comes first: 3, or 4 with an idempotency key (then timestamp and window follow).
  heraldInboxAppend(...args: Array<string | number>): Promise<[number, number, number, string?]>;
  heraldInboxList(z: string, d: string, afterSeq: number, limit: number, maxMessages: number, maxAgeMs: number): Promise<[number, ...string[]]>;
  heraldInboxRemove(z: string, d: string, ...msgIds: string[]): Promise<string[]>;
};

export class RedisInbox implements InboxStore {
  private constructor(
    private readonly redis: ScriptedRedis,
    private readonly prefix: string,
    private readonly windowMs: number,
  ) {}

  static async connect(opts: RedisInboxOptions): Promise<RedisInbox> {
    const redis = (await openRedis(opts, 'inbox')) as ScriptedRedis;
    redis.defineCommand('heraldInboxAppend', { lua: APPEND_LUA });
    redis.defineCommand('heraldInboxList', { numberOfKeys: 2, lua: LIST_LUA });
    redis.defineCommand('heraldInboxRemove', { numberOfKeys: 2, lua: REMOVE_LUA });
    return new RedisInbox(redis, opts.prefix, Math.min(1e12, Math.max(0, Math.floor(opts.idempotencyWindowMs ?? 120_000))));
  }

  async append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits, key?: IdempotencyKey): Promise<AppendResult> {
    const json = JSON.stringify(entry.channel ? { envelope: entry.envelope, channel: entry.channel } : { envelope: entry.envelope });
    const k = this.keys(user);
    const idem = key && this.windowMs > 0 ? idempotencyKeyName(this.prefix, { kind: 'user', user }, key) : undefined;
    const keys = [k.z, k.d, k.n, ...(idem !== undefined ? [idem] : [])];
    const args = [entry.envelope.msgId, json, ...limitArgs(limits), ...(idem !== undefined ? [Math.floor(entry.envelope.timestamp), this.windowMs] : [])];
    const [seq, duplicate, dropped, earlier] = await this.redis.heraldInboxAppend(keys.length, ...keys, ...args);
    if (duplicate === 2) return { seq: 0, duplicate: true, dropped: 0, earlier: { timestamp: parseStoredResult(earlier!).timestamp } };
    return { seq: Number(seq), duplicate: duplicate === 1, dropped: Number(dropped) };
  }

  async list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }> {
    const k = this.keys(user);
    const [dropped, ...values] = await this.redis.heraldInboxList(k.z, k.d, afterSeq, Math.max(0, Math.floor(limit)), ...limitArgs(limits));
    const entries = values.map((v) => JSON.parse(v.slice(v.indexOf('|') + 1)) as InboxEntry);
    return { entries, dropped: Number(dropped) };
  }

  async remove(user: string, msgIds: string[]): Promise<string[]> {
    if (msgIds.length === 0) return [];
    const k = this.keys(user);
    return this.redis.heraldInboxRemove(k.z, k.d, ...msgIds);
  }

  async size(user: string): Promise<number> {
    return this.redis.zcard(this.keys(user).z);
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }

  private keys(user: string): { z: string; d: string; n: string } {
    const base = `${this.prefix}:inbox:{${user}}`;
    return { z: `${base}:z`, d: `${base}:d`, n: `${base}:n` };
  }
}

function limitArgs(limits: InboxLimits): [number, number] {
  // Lua prints numbers with 14 significant digits: keep them well inside that.
  const clamp = (n: number) => Math.min(1e12, Math.max(0, Math.floor(n)));
  return [clamp(limits.maxMessages), clamp(limits.maxAgeMs)];
}
