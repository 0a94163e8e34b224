/**
 * Broker over Redis. Each channel has a meta hash (epoch `e`, offset counter `t`, and the history
 * limits of its last publish) and a stream of `{o: offset, d: envelope JSON}` entries with
 * time-based ids. One Lua script assigns the offset, appends, trims by size (exact MAXLEN) and age
 * (MINID against Redis's clock) and PUBLISHes the encoded dispatch, so offsets, history and
 * delivery order agree on every node.
 *
 * A channel's epoch is created by its first publish; a history read never creates anything (a
 * channel without a meta hash reads as a no-stream position, see broker.ts). If the meta hash
 * vanishes — Redis restarted without persistence, or the channel sat idle past `metaIdleMs` — the
 * next publish creates a new epoch, so clients holding old positions learn that recovery is
 * impossible.
 *
 * Idempotent publishes (see Broker.publish): the script that appends and publishes also checks and
 * sets the key (redis/idempotency.ts) — for user and broadcast targets a script of its own does the
 * same around the PUBLISH — so one key is stored once, whichever nodes its publishes go through.
 *
 * Pub/sub topics: `${prefix}:ch:${channel}`, `${prefix}:user:${user}` and `${prefix}:all`. One
 * subscriber connection per node decodes each message once and hands it to the handler. The node's
 * subscriptions are kept here and re-sent whenever that connection comes back.
 *
 * On a Redis Cluster, a plain PUBLISH is copied to every shard over the cluster bus. Channel and
 * user topics are therefore sharded there (SPUBLISH/SSUBSCRIBE, Redis 7): they carry the hash tag
 * of their keys — `${prefix}:ch:{${channel}}`, `${prefix}:user:{${user}}` — so the publish script
 * can SPUBLISH from the shard that owns the channel, and a dispatch travels only to that shard's
 * subscribers. ioredis keeps one subscriber connection per master and re-subscribes when slots
 * move. Broadcast stays a plain PUBLISH, which every shard must see anyway.
 *
 * Dispatch encoding on the wire: the JSON of the Dispatch (`position` first for channels).
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../config.js';
import type { IdempotencyKey } from '../idempotency.js';
import { encodeDispatch, encodedEnvelope } from '../encoded-envelope.js';
import { noStreamHistory, sinceInStream, type Broker, type BrokerHandler, type Dispatch, type DispatchTarget, type HistoryEntry, type HistoryQuery, type HistoryResult, type Published } from '../broker.js';
import { closeRedis, isCluster, LUA_NOW_MS, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';
import { idempotencyKeyName, parseStoredResult } from './idempotency.js';

export interface RedisBrokerOptions extends RedisEngineOptions {
  /** How long a channel's epoch and offset counter outlive its last use (ms). Default 1 hour. */
  metaIdleMs?: number;
  /** publish.idempotencyWindowMs: how long a publish's key is kept. Default 120 000; 0 turns keys off. */
  idempotencyWindowMs?: number;
}

// KEYS[1] meta hash, KEYS[2] stream.
const ENSURE_EPOCH = `
local function ensure_epoch(candidate, idle_ms)
  local epoch = redis.call('HGET', KEYS[1], 'e')
  if epoch then return epoch end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', candidate, 't', 0)
  redis.call('PEXPIRE', KEYS[1], idle_ms)
  return candidate
end
`;

// KEYS: meta, stream[, idempotency key]. ARGV: candidate epoch, size, ttlMs, metaIdleMs, topic,
// dispatch JSON (no position), envelope JSON[, timestamp, windowMs]. Returns {offset, epoch}, or
// {0, '', stored result} when the idempotency key is taken (nothing stored or published).
// `publishCommand` is PUBLISH, or SPUBLISH on a cluster (the topic shares the keys' slot).
const publishLua = (publishCommand: 'PUBLISH' | 'SPUBLISH') => `${LUA_NOW_MS}${ENSURE_EPOCH}
if KEYS[3] then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then return {0, '', earlier} end
end
local size = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local epoch = ensure_epoch(ARGV[1], ARGV[4])
local top = redis.call('HINCRBY', KEYS[1], 't', 1)
redis.call('HSET', KEYS[1], 'size', size, 'ttl', ttl)
if size > 0 and ttl > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, '*', 'o', top, 'd', ARGV[7])
  redis.call('XTRIM', KEYS[2], 'MINID', now_ms() - ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PEXPIRE', KEYS[1], math.max(ttl, tonumber(ARGV[4])))
redis.call('${publishCommand}', ARGV[5], '{"position":{"offset":' .. top .. ',"epoch":"' .. epoch .. '"},' .. string.sub(ARGV[6], 2))
if KEYS[3] then
  redis.call('SET', KEYS[3], '{"t":' .. ARGV[8] .. ',"o":' .. top .. ',"e":"' .. epoch .. '"}', 'PX', ARGV[9])
end
return {top, epoch}
`;

// User and broadcast targets with an idempotency key. KEYS[1] the key. ARGV: PUBLISH or SPUBLISH,
// topic, dispatch JSON, timestamp, windowMs. Returns the stored result when the key is taken
// (nothing published), nil once published.
const PUBLISH_ONCE_LUA = `
local earlier = redis.call('GET', KEYS[1])
if earlier then return earlier end
redis.call('SET', KEYS[1], '{"t":' .. ARGV[4] .. '}', 'PX', ARGV[5])
redis.call(ARGV[1], ARGV[2], ARGV[3])
return false
`;

// KEYS: meta, stream. ARGV: metaIdleMs, since offset ('' for none), since epoch, limit.
// Returns {epoch, top, complete (0/1), rows newest first}, or {} for a channel without a stream
// (never published, or forgotten): a read creates nothing.
const HISTORY_LUA = `${LUA_NOW_MS}
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return {} end
local top = tonumber(redis.call('HGET', KEYS[1], 't'))
local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl') or '0')
redis.call('PEXPIRE', KEYS[1], math.max(ttl, tonumber(ARGV[1])))
if ttl > 0 then redis.call('XTRIM', KEYS[2], 'MINID', now_ms() - ttl) end
local limit = tonumber(ARGV[4])
if ARGV[2] == '' then
  if limit <= 0 then return {epoch, top, 1, {}} end
  return {epoch, top, 1, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)}
end
local since = tonumber(ARGV[2])
if ARGV[3] ~= epoch or since > top or since < 0 then return {epoch, top, 0, {}} end
local n = top - since
if n == 0 then return {epoch, top, 1, {}} end
if n > limit then return {epoch, top, 0, {}} end
local rows = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
-- Offsets in the stream are unique and increasing: n rows from top down to since+1 are all of them.
if #rows ~= n or tonumber(rows[1][2][2]) ~= top or tonumber(rows[n][2][2]) ~= since + 1 then return {epoch, top, 0, {}} end
return {epoch, top, 1, rows}
`;

type StreamRow = [id: string, fields: string[]];

type ScriptedRedis = RedisClient & {
  // The number of keys comes first: 2, or 3 with an idempotency key (then timestamp and window follow).
  heraldPublish(...args: Array<string | number>): Promise<[number, string] | [0, '', string]>;
  heraldPublishOnce(key: string, command: 'PUBLISH' | 'SPUBLISH', topic: string, dispatch: string, timestamp: number, windowMs: number): Promise<string | null>;
  heraldHistory(meta: string, stream: string, idleMs: number, since: string, sinceEpoch: string, limit: number): Promise<[string, number, number, StreamRow[]] | []>;
};

export class RedisBroker implements Broker {
  private cmd: ScriptedRedis | undefined;
  private sub: RedisClient | undefined;
  private handler: BrokerHandler | undefined;
  /** Every topic this node wants, with the latest subscribe attempt for it. */
  private readonly topics = new Map<string, Promise<void>>();
  /** Wanted topics whose last subscribe attempt failed (sent again when the connection is back). */
  private readonly unsent = new Set<string>();
  private readonly metaIdleMs: number;
  private readonly windowMs: number;
  private readonly prefix: string;
  private readonly sharded: boolean;
  private closed = false;

  constructor(private readonly opts: RedisBrokerOptions) {
    this.prefix = opts.prefix;
    this.metaIdleMs = opts.metaIdleMs ?? 3_600_000;
    this.windowMs = clamp(opts.idempotencyWindowMs ?? 120_000);
    this.sharded = isCluster(opts);
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    const cmd = (await openRedis(this.opts, 'broker')) as ScriptedRedis;
    cmd.defineCommand('heraldPublish', { lua: publishLua(this.sharded ? 'SPUBLISH' : 'PUBLISH') });
    cmd.defineCommand('heraldPublishOnce', { numberOfKeys: 1, lua: PUBLISH_ONCE_LUA });
    cmd.defineCommand('heraldHistory', { numberOfKeys: 2, lua: HISTORY_LUA });
    this.cmd = cmd;
    let sub: RedisClient;
    try {
      sub = await openRedis(this.opts, 'broker-sub', { shardedSubscribers: this.sharded });
    } catch (err) {
      await closeRedis(cmd);
      throw err;
    }
    this.sub = sub;
    sub.on('message', (topic: string, message: string) => this.onMessage(topic, message));
    if (this.sharded) this.watchCluster(sub);
    else this.watchStandalone(sub);
    await this.addTopic(this.broadcastTopic());
  }

  /**
   * After a reconnect the new connection has no subscriptions: send them all again, and tell the
   * node that dispatches published meanwhile were missed (its subscribers recover).
   */
  private watchStandalone(sub: RedisClient): void {
    let connectedBefore = sub.status === 'ready';
    sub.on('ready', () => {
      if (this.closed) return;
      this.unsent.clear();
      for (const topic of this.topics.keys()) this.sendSubscribe(topic);
      if (connectedBefore) this.handler?.onGap?.();
      connectedBefore = true;
    });
  }

  /**
   * On a cluster, ioredis re-subscribes by itself: it rebuilds the per-master sharded subscribers
   * when one is lost or slots move (a migrated slot's shard channels are dropped by the old owner)
   * and then emits `subscribersReady`; the broadcast subscriber switches node on its own. Herald
   * only re-sends what ioredis never accepted, and reports a gap each time, since what was published
   * to an affected shard meanwhile is gone.
   */
  private watchCluster(sub: RedisClient): void {
    sub.on('smessage', (topic: string, message: string) => this.onMessage(topic, message));
    let connectedBefore = sub.status === 'ready';
    const resendUnsent = () => {
      if (this.closed) return;
      for (const topic of [...this.unsent]) this.sendSubscribe(topic);
    };
    const gap = () => {
      if (!this.closed && connectedBefore) this.handler?.onGap?.();
    };
    sub.on('ready', () => {
      resendUnsent();
      gap();
      connectedBefore = true;
    });
    sub.on('subscribersReady', () => {
      resendUnsent();
      // The first slot map arrives around start-up, before any channel or user is subscribed.
      if (this.topics.size > 1) gap();
    });
    sub.on('-node', gap);
    // A migrated slot's old owner drops its shard channels with an unsolicited SUNSUBSCRIBE, which
    // ioredis reports as a subscriber error: re-read the slot map now instead of at the next poll.
    sub.on('nodeError', () => {
      if (!this.closed && sub instanceof Cluster) sub.refreshSlotsCache();
    });
  }

  subscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void> {
    return this.addTopic(this.topicOf(target));
  }

  async unsubscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void> {
    const topic = this.topicOf(target);
    this.unsent.delete(topic);
    if (!this.topics.delete(topic)) return;
    // While disconnected there is nothing to undo: a new connection only gets `topics`.
    const sub = this.sub;
    if (sub?.status !== 'ready') return;
    if (this.sharded) await sub.sunsubscribe(topic);
    else await sub.unsubscribe(topic);
  }

  async publish(dispatch: Dispatch, history: HistoryConfig, key?: IdempotencyKey): Promise<Published> {
    const cmd = this.connected();
    const envelopeJson = encodedEnvelope(dispatch);
    const json = encodeDispatch(dispatch, envelopeJson);
    const t = dispatch.target;
    const idem = key && this.windowMs > 0 ? idempotencyKeyName(this.prefix, t, key) : undefined;
    // Passed as text and stored as text: no Lua number formatting on the way.
    const timestamp = Math.floor(dispatch.envelope.timestamp);
    if (t.kind !== 'channel') {
      const command = t.kind === 'user' && this.sharded ? 'SPUBLISH' : 'PUBLISH';
      if (idem !== undefined) {
        const earlier = await cmd.heraldPublishOnce(idem, command, this.topicOf(t), json, timestamp, this.windowMs);
        return earlier === null ? { duplicate: false } : { duplicate: true, ...parseStoredResult(earlier) };
      }
      if (command === 'SPUBLISH') await cmd.spublish(this.topicOf(t), json);
      else await cmd.publish(this.topicOf(t), json);
      return { duplicate: false };
    }
    const keys = [this.metaKey(t.channel), this.streamKey(t.channel), ...(idem !== undefined ? [idem] : [])];
    const args = [newEpoch(), clamp(history.size), clamp(history.ttlMs), this.metaIdleMs, this.topicOf(t), json, envelopeJson, ...(idem !== undefined ? [timestamp, this.windowMs] : [])];
    const reply = await cmd.heraldPublish(keys.length, ...keys, ...args);
    if (reply[1] === '') return { duplicate: true, ...parseStoredResult(reply[2]!) };
    const position = { offset: Number(reply[0]), epoch: reply[1] };
    dispatch.position = position;
    return { duplicate: false, position };
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const cmd = this.connected();
    const meta = this.metaKey(channel);
    // The stream's epoch is known only inside the script: a no-stream position is translated after
    // a first read tells it, which costs a second round trip only for such a recovery.
    const read = (since: StreamPosition | undefined) =>
      cmd.heraldHistory(meta, this.streamKey(channel), this.metaIdleMs, since ? String(since.offset) : '', since ? since.epoch : '', clamp(query.limit));
    let reply = await read(query.since);
    if (reply.length === 0) return noStreamHistory(query, (query.config ?? DEFAULT_HISTORY).ttlMs);
    if (query.since && reply[2] === 0) {
      const since = sinceInStream(query.since, reply[0], (query.config ?? DEFAULT_HISTORY).ttlMs);
      if (since !== query.since) {
        reply = await read(since);
        if (reply.length === 0) return noStreamHistory(query, (query.config ?? DEFAULT_HISTORY).ttlMs);
      }
    }
    const [epoch, top, complete, rows] = reply;
    const entries: HistoryEntry[] = [];
    for (let i = rows.length - 1; i >= 0; i--) entries.push(decodeRow(rows[i]!));
    return { entries, position: { offset: Number(top), epoch }, complete: complete === 1 };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.topics.clear();
    this.unsent.clear();
    await Promise.all([this.cmd && closeRedis(this.cmd), this.sub && closeRedis(this.sub)]);
  }

  private onMessage(_topic: string, message: string): void {
    let dispatch: Dispatch;
    try {
      dispatch = JSON.parse(message) as Dispatch;
    } catch (err) {
      this.opts.onError?.(err as Error, 'broker-sub decode');
      return;
    }
    this.handler?.onDispatch(dispatch);
  }

  private addTopic(topic: string): Promise<void> {
    const pending = this.topics.get(topic);
    if (pending) return pending;
    this.topics.set(topic, Promise.resolve());
    return this.sendSubscribe(topic);
  }

  /** Subscribes `topic` now; a failure keeps it wanted, to be re-sent when the connection is back. */
  private sendSubscribe(topic: string): Promise<void> {
    const sub = this.sub;
    let attempt: Promise<void>;
    if (!sub) attempt = Promise.reject(new Error('RedisBroker is not started'));
    else if (this.sharded && topic !== this.broadcastTopic()) attempt = sub.ssubscribe(topic).then(() => undefined);
    else attempt = sub.subscribe(topic).then(() => undefined);
    if (this.topics.has(topic)) this.topics.set(topic, attempt);
    this.unsent.delete(topic);
    attempt.catch(() => {
      if (this.topics.get(topic) === attempt) this.unsent.add(topic);
    });
    return attempt;
  }

  private connected(): ScriptedRedis {
    if (!this.cmd || this.closed) throw new Error('RedisBroker is not started');
    return this.cmd;
  }

  /** On a cluster the topic carries its channel's (or user's) hash tag, so it lives on that slot's shard. */
  private topicOf(target: DispatchTarget): string {
    if (target.kind === 'broadcast') return this.broadcastTopic();
    const name = target.kind === 'channel' ? target.channel : target.user;
    const kind = target.kind === 'channel' ? 'ch' : 'user';
    return this.sharded ? `${this.prefix}:${kind}:{${name}}` : `${this.prefix}:${kind}:${name}`;
  }

  private broadcastTopic(): string {
    return `${this.prefix}:all`;
  }

  // The hash tag keeps a channel's two keys in one Redis Cluster slot.
  private metaKey(channel: string): string {
    return `${this.prefix}:chm:{${channel}}`;
  }

  private streamKey(channel: string): string {
    return `${this.prefix}:chs:{${channel}}`;
  }
}

/** Until a read is told a channel's limits, these apply (the recovery of a no-stream position). */
const DEFAULT_HISTORY = { size: 1000, ttlMs: 120_000 };

/** Lua prints numbers with 14 significant digits: keep arguments well inside that. */
function clamp(n: number): number {
  return Math.min(1e12, Math.max(0, Math.floor(n)));
}

function newEpoch(): string {
  return randomBytes(4).toString('hex');
}

function decodeRow(row: StreamRow): HistoryEntry {
  const fields = row[1];
  let offset = 0;
  let data = 'null';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'o') offset = Number(fields[i + 1]);
    else if (fields[i] === 'd') data = fields[i + 1]!;
  }
  return { offset, envelope: JSON.parse(data) as HistoryEntry['envelope'] };
}
