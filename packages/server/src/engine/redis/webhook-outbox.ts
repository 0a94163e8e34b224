/**
 * The webhook outbox in Redis, shared by every node. All keys carry one hash tag, so each
 * operation is one Lua script on one slot (also on Redis Cluster, where the whole outbox therefore
 * lives on one shard):
 *   `…:d`    hash id → entry JSON (with its lease and attempts),
 *   `…:q`    sorted set, all scores 0, members `<queue>\0<seq, 16 digits>\0<id>`: the lexical order
 *            is each (endpoint, key) queue in append order, `<queue>` being the JSON of the pair;
 *   `…:due:<endpoint>` sorted set id → due time, per endpoint, holding only the head of each
 *            queue (a leased head's due time is its lease's end, so an abandoned claim comes due
 *            again by itself); one per endpoint so a claim reads only the endpoints it asks for;
 *   `…:n`    the seq counter;
 *   `…:dead` hash id → dead letter JSON, `…:deadz` sorted set id → burial order.
 * Times are Redis's clock, so nodes' clocks need not agree.
 */
import { randomUUID } from 'node:crypto';
import type { ClaimedWebhook, ClaimWant, DeadWebhook, WebhookOutbox, WebhookOutboxLimits, WebhookRecord } from '../webhook-outbox.js';
import { closeRedis, LUA_NOW_MS, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';

// KEYS: d, q, due (the prefix of the per-endpoint due sets, same slot), n, dead, deadz (always in this order).
const COMMON_LUA = `${LUA_NOW_MS}
local D, Q, DUE, N, DEAD, DEADZ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function queue_of(e) return cjson.encode({e.endpoint, e.key}) end
local function due_of(endpoint) return DUE .. endpoint end
local function head_of(queue)
  local m = redis.call('ZRANGEBYLEX', Q, '[' .. queue .. '\\0', '[' .. queue .. '\\1', 'LIMIT', 0, 1)[1]
  if m then return m, string.sub(m, #queue + 19) end
end
-- Adds an entry at the back of its queue; due now when it is the head.
local function enqueue(e, now)
  local queue = queue_of(e)
  local seq = redis.call('INCR', N)
  e.member = queue .. '\\0' .. string.format('%016d', seq) .. '\\0' .. e.id
  redis.call('ZADD', Q, 0, e.member)
  redis.call('HSET', D, e.id, cjson.encode(e))
  local m, id = head_of(queue)
  if id == e.id then redis.call('ZADD', due_of(e.endpoint), now, e.id) end
end
-- The entry under this lease, or nil.
local function leased(id, lease)
  local v = redis.call('HGET', D, id)
  if not v then return nil end
  local e = cjson.decode(v)
  if e.lease ~= lease then return nil end
  return e
end
-- Removes an entry and makes the next of its queue due.
local function dequeue(e, now)
  redis.call('HDEL', D, e.id)
  redis.call('ZREM', due_of(e.endpoint), e.id)
  redis.call('ZREM', Q, e.member)
  local m, id = head_of(queue_of(e))
  if id then redis.call('ZADD', due_of(e.endpoint), now, id) end
end
`;

// ARGV: maxEntries, then (id, endpoint, key, body) per record. Returns the number stored.
const APPEND_LUA = `${COMMON_LUA}
local now = now_ms()
local room = tonumber(ARGV[1]) - redis.call('HLEN', D)
local stored = 0
for i = 2, #ARGV, 4 do
  if room <= 0 then break end
  if redis.call('HEXISTS', D, ARGV[i]) == 0 then
    enqueue({id = ARGV[i], endpoint = ARGV[i + 1], key = ARGV[i + 2], body = ARGV[i + 3], createdAt = now, attempts = 0}, now)
    room = room - 1
  end
  stored = stored + 1
end
return stored
`;

// ARGV: leaseMs, lease prefix, then (endpoint, limit) pairs. Returns the claimed entries' JSON.
const CLAIM_LUA = `${COMMON_LUA}
local now = now_ms()
local out = {}
for j = 3, #ARGV, 2 do
  local due = due_of(ARGV[j])
  local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[j + 1]))
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', D, id)
    if v then
      local e = cjson.decode(v)
      e.attempts = e.attempts + 1
      e.lease = ARGV[2] .. ':' .. #out
      local json = cjson.encode(e)
      redis.call('HSET', D, id, json)
      redis.call('ZADD', due, now + tonumber(ARGV[1]), id)
      out[#out + 1] = json
    else
      redis.call('ZREM', due, id)
    end
  end
end
return out
`;

// ARGV: id, lease. Returns 1 when acknowledged.
const ACK_LUA = `${COMMON_LUA}
local e = leased(ARGV[1], ARGV[2])
if not e then return 0 end
dequeue(e, now_ms())
return 1
`;

// ARGV: id, lease, delayMs, error.
const RETRY_LUA = `${COMMON_LUA}
local e = leased(ARGV[1], ARGV[2])
if not e then return 0 end
e.lease = nil
e.lastError = ARGV[4]
redis.call('HSET', D, e.id, cjson.encode(e))
redis.call('ZADD', due_of(e.endpoint), now_ms() + tonumber(ARGV[3]), e.id)
return 1
`;

// ARGV: id, lease, error, maxDeadLetters.
const BURY_LUA = `${COMMON_LUA}
local e = leased(ARGV[1], ARGV[2])
if not e then return 0 end
local now = now_ms()
dequeue(e, now)
e.lease = nil
e.member = nil
e.lastError = ARGV[3]
e.deadAt = now
redis.call('HSET', DEAD, e.id, cjson.encode(e))
redis.call('ZADD', DEADZ, redis.call('INCR', N), e.id)
local excess = redis.call('ZCARD', DEADZ) - tonumber(ARGV[4])
if excess > 0 then
  local old = redis.call('ZRANGE', DEADZ, 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', DEADZ, 0, excess - 1)
  redis.call('HDEL', DEAD, unpack(old))
end
return 1
`;

// ARGV: id. Returns 1 when the dead letter was moved back.
const REQUEUE_LUA = `${COMMON_LUA}
local v = redis.call('HGET', DEAD, ARGV[1])
if not v then return 0 end
redis.call('HDEL', DEAD, ARGV[1])
redis.call('ZREM', DEADZ, ARGV[1])
local e = cjson.decode(v)
e.deadAt = nil
e.attempts = 0
if redis.call('HEXISTS', D, e.id) == 0 then enqueue(e, now_ms()) end
return 1
`;

// ARGV: limit. The dead letters, oldest first.
const LIST_DEAD_LUA = `
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {} end
local vals = redis.call('HMGET', KEYS[1], unpack(ids))
local out = {}
for i = 1, #vals do if vals[i] then out[#out + 1] = vals[i] end end
return out
`;

type Keys = [string, string, string, string, string, string];

type ScriptedRedis = RedisClient & {
  heraldWhAppend(...args: Array<string | number>): Promise<number>;
  heraldWhClaim(...args: Array<string | number>): Promise<string[]>;
  heraldWhAck(...args: Array<string | number>): Promise<number>;
  heraldWhRetry(...args: Array<string | number>): Promise<number>;
  heraldWhBury(...args: Array<string | number>): Promise<number>;
  heraldWhRequeue(...args: Array<string | number>): Promise<number>;
  heraldWhListDead(dead: string, deadz: string, limit: number): Promise<string[]>;
};

interface StoredEntry {
  id: string;
  endpoint: string;
  key: string;
  body: string;
  createdAt: number;
  attempts: number;
  lease?: string;
  lastError?: string;
  deadAt?: number;
}

export class RedisWebhookOutbox implements WebhookOutbox {
  readonly orderedByKey = true;
  private readonly keys: Keys;

  private constructor(
    private readonly redis: ScriptedRedis,
    prefix: string,
    private readonly limits: WebhookOutboxLimits,
  ) {
    const base = `${prefix}:{${prefix}:wh}`;
    this.keys = [`${base}:d`, `${base}:q`, `${base}:due:`, `${base}:n`, `${base}:dead`, `${base}:deadz`];
  }

  static async connect(opts: RedisEngineOptions, limits: WebhookOutboxLimits): Promise<RedisWebhookOutbox> {
    const redis = (await openRedis(opts, 'webhooks')) as ScriptedRedis;
    const scripts: Array<[string, string]> = [
      ['heraldWhAppend', APPEND_LUA],
      ['heraldWhClaim', CLAIM_LUA],
      ['heraldWhAck', ACK_LUA],
      ['heraldWhRetry', RETRY_LUA],
      ['heraldWhBury', BURY_LUA],
      ['heraldWhRequeue', REQUEUE_LUA],
    ];
    for (const [name, lua] of scripts) redis.defineCommand(name, { numberOfKeys: 6, lua });
    redis.defineCommand('heraldWhListDead', { numberOfKeys: 2, lua: LIST_DEAD_LUA });
    return new RedisWebhookOutbox(redis, opts.prefix, limits);
  }

  async append(records: readonly WebhookRecord[]): Promise<{ stored: number; refused: number }> {
    if (records.length === 0) return { stored: 0, refused: 0 };
    const args = records.flatMap((r) => [r.id, r.endpoint, r.key, r.body]);
    const stored = Number(await this.redis.heraldWhAppend(...this.keys, this.limits.maxEntries, ...args));
    return { stored, refused: records.length - stored };
  }

  async claim(want: readonly ClaimWant[]): Promise<ClaimedWebhook[]> {
    const pairs = want.filter((w) => w.limit >= 1).flatMap((w) => [w.endpoint, Math.floor(w.limit)]);
    if (pairs.length === 0) return [];
    const out = await this.redis.heraldWhClaim(...this.keys, this.limits.leaseMs, randomUUID(), ...pairs);
    return out.map((json) => {
      const e = JSON.parse(json) as StoredEntry;
      return { ...entryOf(e), lease: e.lease! };
    });
  }

  async ack(entry: ClaimedWebhook): Promise<boolean> {
    return (await this.redis.heraldWhAck(...this.keys, entry.id, entry.lease)) === 1;
  }

  async retry(entry: ClaimedWebhook, delayMs: number, error: string): Promise<boolean> {
    return (await this.redis.heraldWhRetry(...this.keys, entry.id, entry.lease, Math.max(0, Math.floor(delayMs)), error)) === 1;
  }

  async bury(entry: ClaimedWebhook, error: string): Promise<boolean> {
    return (await this.redis.heraldWhBury(...this.keys, entry.id, entry.lease, error, this.limits.maxDeadLetters)) === 1;
  }

  async deadLetters(limit: number): Promise<DeadWebhook[]> {
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return [];
    const values = await this.redis.heraldWhListDead(this.keys[4], this.keys[5], n);
    return values.map((json) => {
      const e = JSON.parse(json) as StoredEntry;
      return { ...entryOf(e), deadAt: e.deadAt!, lastError: e.lastError ?? '' };
    });
  }

  async requeue(id: string): Promise<boolean> {
    return (await this.redis.heraldWhRequeue(...this.keys, id)) === 1;
  }

  async discard(id: string): Promise<boolean> {
    const [[, removed]] = (await this.redis.multi().hdel(this.keys[4], id).zrem(this.keys[5], id).exec()) as [[Error | null, number]];
    return removed === 1;
  }

  async depth(): Promise<{ pending: number; dead: number }> {
    const [pending, dead] = await Promise.all([this.redis.hlen(this.keys[0]), this.redis.hlen(this.keys[4])]);
    return { pending, dead };
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}

function entryOf(e: StoredEntry): Omit<ClaimedWebhook, 'lease'> {
  return {
    id: e.id,
    endpoint: e.endpoint,
    key: e.key,
    body: e.body,
    createdAt: e.createdAt,
    attempts: e.attempts,
    ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
  };
}
