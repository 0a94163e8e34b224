/**
 * Channel presence in Redis. Per channel, in one hash slot (`{<channel>}`):
 * `m` client → member JSON, `i` client → owning incarnation, `z` the client ids (a sorted set at
 * score 0, paged by lex range), `u` user → connections, `n:<inc>` the clients an incarnation owns.
 * Per incarnation (`{<inc>}`): `live` (expires `nodeTtlMs` after the node's last refresh) and `ch`,
 * the channels it joined; `cpincs` lists the incarnations.
 *
 * Every change of a channel is one Lua script, which also PUBLISHes its event on `cpev:<channel>`:
 * scripts run one at a time, so the order of a channel's events on that topic is the order of its
 * changes, for every subscriber. A sweeper claims a lapsed incarnation's members with SPOP from its
 * `n:<inc>` set inside the script: whoever pops a client emits its one leave; a racing sweeper pops
 * nothing.
 */
import {
  every,
  MAX_PRESENCE_PAGE,
  newIncarnation,
  type ChannelMember,
  type ChannelPresence,
  type ChannelPresenceStore,
  type ChannelPresenceTiming,
  type PresenceEvent,
  type PresenceListener,
  type PresencePage,
  type PresenceStats,
  OwnMembers,
} from '../channel-presence.js';
import { closeRedis, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';

// KEYS m, i, z, u, n:<inc>; ARGV client, user, member JSON, inc, topic.
const JOIN_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('PUBLISH', ARGV[5], '{"t":"join","m":' .. ARGV[3] .. '}')
return 1
`;

const REMOVE_LUA = `
local function remove(client)
  local json = redis.call('HGET', KEYS[1], client)
  if not json then return 0 end
  redis.call('HDEL', KEYS[1], client)
  redis.call('HDEL', KEYS[2], client)
  redis.call('ZREM', KEYS[3], client)
  local user = cjson.decode(json).user
  if redis.call('HINCRBY', KEYS[4], user, -1) <= 0 then redis.call('HDEL', KEYS[4], user) end
  redis.call('PUBLISH', ARGV[3], '{"t":"leave","m":' .. json .. '}')
  return 1
end
`;

// KEYS m, i, z, u, n:<inc>; ARGV client, inc, topic. The owner's own leave; returns the member JSON, or false.
const LEAVE_LUA = `${REMOVE_LUA}
if redis.call('SREM', KEYS[5], ARGV[1]) == 0 then return false end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return false end
local json = redis.call('HGET', KEYS[1], ARGV[1])
if remove(ARGV[1]) == 1 then return json end
return false
`;

// KEYS m, i, z, u, n:<inc>; ARGV batch size, inc, topic. Claims up to a batch of an incarnation's
// members; returns {remaining, removed member JSON…}.
const SWEEP_LUA = `${REMOVE_LUA}
local popped = redis.call('SPOP', KEYS[5], tonumber(ARGV[1]))
local out = {0}
for _, client in ipairs(popped) do
  if redis.call('HGET', KEYS[2], client) == ARGV[2] then
    local json = redis.call('HGET', KEYS[1], client)
    if remove(client) == 1 then out[#out + 1] = json end
  end
end
out[1] = redis.call('SCARD', KEYS[5])
return out
`;

const SWEEP_BATCH = 500;

type Scripted = RedisClient & {
  heraldCpJoin(m: string, i: string, z: string, u: string, n: string, client: string, user: string, json: string, inc: string, topic: string): Promise<number>;
  heraldCpLeave(m: string, i: string, z: string, u: string, n: string, client: string, inc: string, topic: string): Promise<string | null>;
  heraldCpSweep(m: string, i: string, z: string, u: string, n: string, batch: number, inc: string, topic: string): Promise<[number, ...string[]]>;
};

export interface RedisChannelPresenceOptions extends RedisEngineOptions {
  timing: ChannelPresenceTiming;
}

export class RedisChannelPresenceStore implements ChannelPresenceStore {
  private readonly listeners = new Map<string, Set<PresenceListener>>();
  private readonly handles = new Set<RedisChannelPresence>();

  private constructor(
    readonly redis: Scripted,
    private readonly sub: RedisClient,
    readonly opts: RedisChannelPresenceOptions,
  ) {
    sub.on('message', (topic: string, payload: string) => this.deliver(topic, payload));
    sub.on('ready', () => {
      const topics = [...this.listeners.keys()];
      if (topics.length > 0) sub.subscribe(...topics).catch(() => undefined);
    });
  }

  static async connect(opts: RedisChannelPresenceOptions): Promise<RedisChannelPresenceStore> {
    const redis = (await openRedis(opts, 'channel-presence')) as Scripted;
    let sub: RedisClient;
    try {
      sub = await openRedis(opts, 'channel-presence-sub');
    } catch (err) {
      await closeRedis(redis);
      throw err;
    }
    redis.defineCommand('heraldCpJoin', { numberOfKeys: 5, lua: JOIN_LUA });
    redis.defineCommand('heraldCpLeave', { numberOfKeys: 5, lua: LEAVE_LUA });
    redis.defineCommand('heraldCpSweep', { numberOfKeys: 5, lua: SWEEP_LUA });
    return new RedisChannelPresenceStore(redis, sub, opts);
  }

  async open(node: string, onChange: PresenceListener = () => undefined): Promise<ChannelPresence> {
    const h = new RedisChannelPresence(this, node, onChange);
    await h.start();
    this.handles.add(h);
    return h;
  }

  async close(): Promise<void> {
    for (const h of [...this.handles]) await h.close();
    this.listeners.clear();
    await closeRedis(this.sub);
    await closeRedis(this.redis);
  }

  forget(h: RedisChannelPresence): void {
    this.handles.delete(h);
  }

  // ---- keys -----------------------------------------------------------------------------------

  keys(channel: string, inc: string): [string, string, string, string, string] {
    const c = `${this.opts.prefix}:cp:{${channel}}`;
    return [`${c}:m`, `${c}:i`, `${c}:z`, `${c}:u`, `${c}:n:${inc}`];
  }

  topic(channel: string): string {
    return `${this.opts.prefix}:cpev:${channel}`;
  }

  incKey(inc: string, what: 'live' | 'ch'): string {
    return `${this.opts.prefix}:cpi:{${inc}}:${what}`;
  }

  get incsKey(): string {
    return `${this.opts.prefix}:cpincs`;
  }

  // ---- events ---------------------------------------------------------------------------------

  async watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    const topic = this.topic(channel);
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(listener);
    if (set.size === 1) {
      try {
        await this.sub.subscribe(topic);
      } catch (err) {
        // Not watching after all: the next watch of the channel subscribes again.
        set.delete(listener);
        if (set.size < 1 && this.listeners.get(topic) === set) this.listeners.delete(topic);
        throw err;
      }
    }
    return async () => {
      set.delete(listener);
      if (set.size > 0 || this.listeners.get(topic) !== set) return;
      this.listeners.delete(topic);
      await this.sub.unsubscribe(topic).catch(() => undefined);
    };
  }

  private deliver(topic: string, payload: string): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    let event: PresenceEvent;
    try {
      const raw = JSON.parse(payload) as { t: PresenceEvent['type']; m: ChannelMember };
      event = { channel: topic.slice(this.opts.prefix.length + ':cpev:'.length), type: raw.t, member: raw.m };
    } catch (err) {
      this.opts.onError?.(err as Error, 'channel presence event');
      return;
    }
    for (const l of [...set]) {
      try {
        l(event);
      } catch (err) {
        this.opts.onError?.(err as Error, 'channel presence listener');
      }
    }
  }
}

class RedisChannelPresence implements ChannelPresence {
  private inc: string;
  /** This node's members by channel: left on close, joined again after a lapse. */
  private readonly own = new OwnMembers();
  private stops: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly s: RedisChannelPresenceStore,
    readonly node: string,
    private readonly onChange: PresenceListener,
  ) {
    this.inc = newIncarnation(node);
  }

  async start(): Promise<void> {
    await this.announce();
    const onError = (err: Error) => this.s.opts.onError?.(err, 'channel presence');
    const { heartbeatMs } = this.s.opts.timing;
    this.stops.push(every(heartbeatMs, () => this.refresh(), onError));
    this.stops.push(every(heartbeatMs, () => this.sweep(), onError));
  }

  async join(channel: string, m: Omit<ChannelMember, 'node'>): Promise<boolean> {
    if (this.closed) return false;
    const member: ChannelMember = { ...m, node: this.node };
    this.own.add(channel, member);
    return this.write(channel, member, this.inc);
  }

  async leave(channel: string, client: string): Promise<boolean> {
    this.own.remove(channel, client);
    const json = await this.s.redis.heraldCpLeave(...this.s.keys(channel, this.inc), client, this.inc, this.s.topic(channel));
    if (json === null) return false;
    this.onChange({ channel, type: 'leave', member: JSON.parse(json) as ChannelMember });
    return true;
  }

  async list(channel: string, page: { cursor?: string; limit: number }): Promise<PresencePage> {
    const [m, , z] = this.s.keys(channel, this.inc);
    const n = Math.max(1, Math.min(page.limit, MAX_PRESENCE_PAGE));
    const from = page.cursor === undefined ? '-' : `(${page.cursor}`;
    const ids = await this.s.redis.zrangebylex(z, from, '+', 'LIMIT', 0, n + 1);
    const shown = ids.slice(0, n);
    if (shown.length === 0) return { members: [] };
    const jsons = await this.s.redis.hmget(m, ...shown);
    const members = jsons.filter((j): j is string => j !== null).map((j) => JSON.parse(j) as ChannelMember);
    return ids.length > n ? { members, next: shown[shown.length - 1]! } : { members };
  }

  async stats(channel: string): Promise<PresenceStats> {
    const [m, , , u] = this.s.keys(channel, this.inc);
    const [connections, users] = await Promise.all([this.s.redis.hlen(m), this.s.redis.hlen(u)]);
    return { connections, users };
  }

  watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    return this.s.watch(channel, listener);
  }

  async sweep(): Promise<number> {
    if (this.closed) return 0;
    const r = this.s.redis;
    let claimed = 0;
    for (const inc of await r.smembers(this.s.incsKey)) {
      if (inc === this.inc || (await r.exists(this.s.incKey(inc, 'live'))) === 1) continue;
      claimed += await this.removeAll(inc);
      await r.del(this.s.incKey(inc, 'ch'));
      await r.srem(this.s.incsKey, inc);
    }
    return claimed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopTimers();
    this.own.clear();
    if (this.s.redis.status === 'ready') {
      await this.removeAll(this.inc).catch(() => undefined);
      await this.s.redis.del(this.s.incKey(this.inc, 'live'), this.s.incKey(this.inc, 'ch')).catch(() => undefined);
      await this.s.redis.srem(this.s.incsKey, this.inc).catch(() => undefined);
    }
    this.s.forget(this);
  }

  async crash(): Promise<void> {
    this.stopTimers();
    this.s.forget(this);
  }

  // ---- internals ------------------------------------------------------------------------------

  private async write(channel: string, member: ChannelMember, inc: string): Promise<boolean> {
    const r = this.s.redis;
    // The channel is listed before the member is written, so a sweeper never misses it.
    await r.sadd(this.s.incKey(inc, 'ch'), channel);
    const json = JSON.stringify(member);
    const joined = (await r.heraldCpJoin(...this.s.keys(channel, inc), member.client, member.user, json, inc, this.s.topic(channel))) === 1;
    if (joined) this.onChange({ channel, type: 'join', member });
    return joined;
  }

  private async announce(): Promise<void> {
    await this.s.redis.set(this.s.incKey(this.inc, 'live'), this.node, 'PX', this.s.opts.timing.nodeTtlMs);
    await this.s.redis.sadd(this.s.incsKey, this.inc);
  }

  private async refresh(): Promise<void> {
    if (this.closed) return;
    const ok = await this.s.redis.set(this.s.incKey(this.inc, 'live'), this.node, 'PX', this.s.opts.timing.nodeTtlMs, 'XX');
    if (ok === 'OK') return;
    // Lapsed (this process stalled past the TTL): whatever a sweeper has not removed leaves now,
    // then every member joins again under a new identity.
    const old = this.inc;
    await this.removeAll(old);
    this.inc = newIncarnation(this.node);
    await this.announce();
    for (const [channel, m] of this.own.all()) await this.write(channel, m, this.inc);
  }

  /** Claims and removes every member of an incarnation, channel by channel. */
  private async removeAll(inc: string): Promise<number> {
    const r = this.s.redis;
    let n = 0;
    for (const channel of await r.smembers(this.s.incKey(inc, 'ch'))) {
      for (;;) {
        const [remaining, ...removed] = await r.heraldCpSweep(...this.s.keys(channel, inc), SWEEP_BATCH, inc, this.s.topic(channel));
        for (const json of removed) this.onChange({ channel, type: 'leave', member: JSON.parse(json) as ChannelMember });
        n += removed.length;
        if (remaining === 0) break;
      }
    }
    return n;
  }

  private stopTimers(): void {
    this.closed = true;
    for (const s of this.stops.splice(0)) s();
  }
}
