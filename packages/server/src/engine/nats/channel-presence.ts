/**
 * Channel presence in two JetStream Key-Value buckets (in memory: presence is rebuilt by its
 * nodes, never recovered from disk).
 *
 * `<prefix>_chpres` (no TTL; members do not expire one by one):
 * - `m.<channel>.<inc>.<client>`: `{"t":"join","m":member}` while the member is present; its leave
 *   overwrites it with `{"t":"leave","m":member}` — a compare-and-set on the join's revision, so of
 *   the owner and any number of racing sweepers exactly one writes the leave. The bucket's stream
 *   orders every write, and each node watches `m.<channel>.>` with an ordered consumer: that stream
 *   order is the channel's event order, the same on every node. A leave value is purged from the
 *   stream `PURGE_AFTER_MS` later, when every watcher has long had it.
 * - `u.<channel>.<user>`: the user's connection count; `c.<channel>`: `{c, u}`, the channel's
 *   connections and users. Both are changed by compare-and-set by whoever wrote the join or the
 *   leave, so `stats` reads one key.
 * - `i.<inc>`: the incarnations, for sweepers to find.
 *
 * `<prefix>_chpres_live` (TTL `nodeTtlMs`): `<inc>`, refreshed by its node every `heartbeatMs` with
 * a compare-and-set on its last revision — which fails once the entry has aged out, so a node that
 * stalled past the TTL knows it.
 */
import { KvWatchInclude, nanos, StorageType, type KV, type KvEntry } from 'nats';
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
import {
  apiErrorCode,
  checkNatsPrefix,
  checkNatsReplicas,
  closeLink,
  inParallel,
  JsErr,
  openJetStream,
  readFiltered,
  subjectToken,
  type JetStreamLink,
  type NatsEngineOptions,
} from './jetstream.js';

export interface NatsChannelPresenceOptions extends NatsEngineOptions {
  timing: ChannelPresenceTiming;
}

const PURGE_AFTER_MS = 30_000;
const WRITE_WIDTH = 64;
const CAS_ATTEMPTS = 100;

type Value = { t: 'join' | 'leave'; m: ChannelMember };

export class NatsChannelPresenceStore implements ChannelPresenceStore {
  private readonly watchers = new Map<string, { listeners: Set<PresenceListener>; stop: () => void }>();
  private readonly handles = new Set<NatsChannelPresence>();
  private readonly purges = new Set<NodeJS.Timeout>();
  /** Per channel token: this node's counter changes not yet written, and who waits for them. */
  private readonly deltas = new Map<string, { dc: number; du: number; done: Promise<void>; settle: (err?: Error) => void }>();
  private readonly flushing = new Set<string>();

  private constructor(
    readonly link: JetStreamLink,
    readonly kv: KV,
    readonly live: KV,
    readonly opts: NatsChannelPresenceOptions,
  ) {}

  static async connect(opts: NatsChannelPresenceOptions): Promise<NatsChannelPresenceStore> {
    checkNatsPrefix(opts.prefix);
    const replicas = checkNatsReplicas(opts.replicas);
    const link = await openJetStream(opts, `herald:${opts.prefix}:channel-presence`);
    try {
      const common = { history: 1, storage: StorageType.Memory, replicas, timeout: link.timeoutMs };
      const kv = await link.js.views.kv(bucketOf(opts.prefix), common);
      const live = await link.js.views.kv(liveBucketOf(opts.prefix), { ...common, ttl: opts.timing.nodeTtlMs });
      const stream = `KV_${liveBucketOf(opts.prefix)}`;
      const info = await link.jsm.streams.info(stream);
      if (info.config.max_age !== nanos(opts.timing.nodeTtlMs)) {
        await link.jsm.streams.update(stream, { ...info.config, max_age: nanos(opts.timing.nodeTtlMs) });
      }
      return new NatsChannelPresenceStore(link, kv, live, opts);
    } catch (err) {
      await closeLink(link.nc);
      throw new Error(`engine.nats.servers=${opts.servers.join(',')}: cannot open the channel presence buckets: ${(err as Error).message}`, { cause: err });
    }
  }

  get bucket(): string {
    return bucketOf(this.opts.prefix);
  }

  async open(node: string, onChange: PresenceListener = () => undefined): Promise<ChannelPresence> {
    const h = new NatsChannelPresence(this, node, onChange);
    await h.start();
    this.handles.add(h);
    return h;
  }

  async close(): Promise<void> {
    for (const h of [...this.handles]) await h.close();
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
    for (const t of this.purges) clearTimeout(t);
    await closeLink(this.link.nc);
  }

  forget(h: NatsChannelPresence): void {
    this.handles.delete(h);
  }

  async watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    let w = this.watchers.get(channel);
    if (!w) {
      const listeners = new Set<PresenceListener>();
      const iter = await this.kv.watch({ key: `m.${subjectToken(channel)}.>`, include: KvWatchInclude.UpdatesOnly });
      w = { listeners, stop: () => iter.stop() };
      this.watchers.set(channel, w);
      void (async () => {
        for await (const e of iter) this.deliver(channel, listeners, e);
      })().catch((err: Error) => this.opts.onError?.(err, 'channel presence watch'));
    }
    const mine = w;
    mine.listeners.add(listener);
    return async () => {
      mine.listeners.delete(listener);
      if (mine.listeners.size === 0 && this.watchers.get(channel) === mine) {
        this.watchers.delete(channel);
        mine.stop();
      }
    };
  }

  private deliver(channel: string, listeners: Set<PresenceListener>, e: KvEntry): void {
    if (e.operation !== 'PUT' || e.length === 0) return;
    let v: Value;
    try {
      v = e.json<Value>();
    } catch (err) {
      this.opts.onError?.(err as Error, 'channel presence event');
      return;
    }
    const event: PresenceEvent = { channel, type: v.t, member: v.m };
    for (const l of [...listeners]) {
      try {
        l(event);
      } catch (err) {
        this.opts.onError?.(err as Error, 'channel presence listener');
      }
    }
  }

  /** Removes a leave value from the stream once every watcher has had it; a newer write of the key stays. */
  purgeLater(key: string, revision: number): void {
    const t = setTimeout(() => {
      this.purges.delete(t);
      this.link.jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${key}`, seq: revision + 1 }).catch(() => undefined);
    }, PURGE_AFTER_MS);
    t.unref();
    this.purges.add(t);
  }

  /** Applies `change` to a JSON value by compare-and-set, retrying when another writer got there first. */
  async bump<T>(key: string, initial: T, change: (v: T) => T): Promise<{ before: T; after: T }> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const e = await this.kv.get(key);
      const present = e !== null && e.operation === 'PUT' && e.length > 0;
      const before = present ? e.json<T>() : initial;
      const after = change(before);
      try {
        if (e === null) await this.kv.create(key, JSON.stringify(after));
        else await this.kv.update(key, JSON.stringify(after), e.revision);
        return { before, after };
      } catch (err) {
        if (!isCasFailure(err)) throw err;
      }
    }
    throw new Error(`channel presence counter ${key}: too many concurrent writers`);
  }

  /**
   * Counts a member in or out of its channel's counters. The user's counter is one key per user
   * (rarely contended); the channel's `c.<channel>` is every member's, so this node's changes to it
   * are gathered and written by one compare-and-set at a time per channel — a burst of joins on a
   * node costs a few writes of the hot key, not one contended retry loop each.
   */
  async count(channel: string, user: string, d: 1 | -1): Promise<void> {
    const ch = subjectToken(channel);
    const { before, after } = await this.bump(`u.${ch}.${subjectToken(user)}`, 0, (n) => Math.max(0, n + d));
    const du = before === 0 && after > 0 ? 1 : before > 0 && after === 0 ? -1 : 0;
    let p = this.deltas.get(ch);
    if (!p) {
      let settle!: (err?: Error) => void;
      const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
      p = { dc: 0, du: 0, done, settle };
      this.deltas.set(ch, p);
      if (!this.flushing.has(ch)) setImmediate(() => void this.flush(ch));
    }
    p.dc += d;
    p.du += du;
    return p.done;
  }

  private async flush(ch: string): Promise<void> {
    const p = this.deltas.get(ch);
    if (!p || this.flushing.has(ch)) return;
    this.deltas.delete(ch);
    this.flushing.add(ch);
    try {
      await this.bump(`c.${ch}`, { c: 0, u: 0 }, (s) => ({ c: Math.max(0, s.c + p.dc), u: Math.max(0, s.u + p.du) }));
      p.settle();
    } catch (err) {
      p.settle(err as Error);
    } finally {
      this.flushing.delete(ch);
      if (this.deltas.has(ch)) void this.flush(ch);
    }
  }
}

class NatsChannelPresence implements ChannelPresence {
  private inc: string;
  private liveRevision = 0;
  /** This node's members by channel: left on close, joined again after a lapse. */
  private readonly own = new OwnMembers();
  private stops: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly s: NatsChannelPresenceStore,
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
    const key = memberKey(channel, this.inc, client);
    const e = await this.s.kv.get(key);
    if (!e || e.operation !== 'PUT' || e.length === 0) return false;
    return this.claimLeave(channel, key, e.json<Value>(), e.revision);
  }

  async list(channel: string, page: { cursor?: string; limit: number }): Promise<PresencePage> {
    const n = Math.max(1, Math.min(page.limit, MAX_PRESENCE_PAGE));
    // The keys of a channel, read with one filtered consumer, and ordered by client here: JetStream
    // has no range read by key, so a page costs a read of the channel's keys (headers only).
    const filter = `$KV.${this.s.bucket}.m.${subjectToken(channel)}.>`;
    const msgs = await readFiltered(this.s.link, `KV_${this.s.bucket}`, { filter }, (pending, fetch) => fetch(pending));
    const rows: Array<{ client: string; member: ChannelMember }> = [];
    for (const m of msgs) {
      if (m.data.length === 0) continue;
      const v = JSON.parse(m.string()) as Value;
      if (v.t !== 'join') continue;
      if (page.cursor !== undefined && v.m.client <= page.cursor) continue;
      rows.push({ client: v.m.client, member: v.m });
    }
    rows.sort((a, b) => (a.client < b.client ? -1 : a.client > b.client ? 1 : 0));
    const shown = rows.slice(0, n).map((r) => r.member);
    return rows.length > n ? { members: shown, next: shown[shown.length - 1]!.client } : { members: shown };
  }

  async stats(channel: string): Promise<PresenceStats> {
    const e = await this.s.kv.get(`c.${subjectToken(channel)}`);
    if (!e || e.operation !== 'PUT' || e.length === 0) return { connections: 0, users: 0 };
    const { c, u } = e.json<{ c: number; u: number }>();
    return { connections: c, users: u };
  }

  watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    return this.s.watch(channel, listener);
  }

  async sweep(): Promise<number> {
    if (this.closed) return 0;
    let claimed = 0;
    const incs: string[] = [];
    for await (const k of await this.s.kv.keys('i.*')) incs.push(k.slice(2));
    for (const incTok of incs) {
      if (incTok === subjectToken(this.inc)) continue;
      const alive = await this.s.live.get(incTok);
      if (alive && alive.operation === 'PUT') continue;
      claimed += await this.removeAll(incTok);
      await this.s.link.jsm.streams.purge(`KV_${this.s.bucket}`, { filter: `$KV.${this.s.bucket}.i.${incTok}` }).catch(() => undefined);
    }
    return claimed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopTimers();
    this.own.clear();
    if (!this.s.link.nc.isClosed()) {
      const incTok = subjectToken(this.inc);
      await this.removeAll(incTok).catch(() => undefined);
      await this.s.link.jsm.streams.purge(`KV_${this.s.bucket}`, { filter: `$KV.${this.s.bucket}.i.${incTok}` }).catch(() => undefined);
      await this.s.link.jsm.streams.purge(`KV_${liveBucketOf(this.s.opts.prefix)}`, { filter: `$KV.${liveBucketOf(this.s.opts.prefix)}.${incTok}` }).catch(() => undefined);
    }
    this.s.forget(this);
  }

  async crash(): Promise<void> {
    this.stopTimers();
    this.s.forget(this);
  }

  // ---- internals ------------------------------------------------------------------------------

  private async write(channel: string, member: ChannelMember, inc: string): Promise<boolean> {
    const key = memberKey(channel, inc, member.client);
    const value = JSON.stringify({ t: 'join', m: member } satisfies Value);
    try {
      await this.s.kv.create(key, value);
    } catch (err) {
      if (!isCasFailure(err)) throw err;
      // The key holds a join (present: no second join) or a leave not yet purged (join again on it).
      const e = await this.s.kv.get(key);
      if (!e || e.operation !== 'PUT' || e.json<Value>().t === 'join') return false;
      try {
        await this.s.kv.update(key, value, e.revision);
      } catch (err2) {
        if (isCasFailure(err2)) return false;
        throw err2;
      }
    }
    // The join happened (watchers have it) whatever becomes of the counters.
    this.onChange({ channel, type: 'join', member });
    await this.countOrReport(channel, member.user, 1);
    return true;
  }

  /** Writes the leave over the join at `revision`; false when another writer claimed it first. */
  private async claimLeave(channel: string, key: string, v: Value, revision: number): Promise<boolean> {
    if (v.t !== 'join') return false;
    let rev: number;
    try {
      rev = await this.s.kv.update(key, JSON.stringify({ t: 'leave', m: v.m } satisfies Value), revision);
    } catch (err) {
      if (isCasFailure(err)) return false;
      throw err;
    }
    this.s.purgeLater(key, rev);
    this.onChange({ channel, type: 'leave', member: v.m });
    await this.countOrReport(channel, v.m.user, -1);
    return true;
  }

  private async countOrReport(channel: string, user: string, d: 1 | -1): Promise<void> {
    try {
      await this.s.count(channel, user, d);
    } catch (err) {
      this.s.opts.onError?.(new Error(`channel presence counters of ${channel} not updated: ${(err as Error).message}`), 'channel presence');
    }
  }

  private async announce(): Promise<void> {
    const incTok = subjectToken(this.inc);
    this.liveRevision = await this.s.live.put(incTok, this.node);
    await this.s.kv.put(`i.${incTok}`, this.node);
  }

  private async refresh(): Promise<void> {
    if (this.closed || this.s.link.nc.isClosed()) return;
    try {
      this.liveRevision = await this.s.live.update(subjectToken(this.inc), this.node, this.liveRevision);
      return;
    } catch (err) {
      if (!isCasFailure(err)) throw err;
    }
    // Lapsed (this process stalled past the TTL): whatever a sweeper has not removed leaves now,
    // then every member joins again under a new identity.
    await this.removeAll(subjectToken(this.inc));
    this.inc = newIncarnation(this.node);
    await this.announce();
    for (const [channel, m] of this.own.all()) await this.write(channel, m, this.inc);
  }

  /** Claims the leave of every member an incarnation still has. */
  private async removeAll(incTok: string): Promise<number> {
    const filter = `$KV.${this.s.bucket}.m.*.${incTok}.*`;
    const msgs = await readFiltered(this.s.link, `KV_${this.s.bucket}`, { filter }, (pending, fetch) => fetch(pending));
    const claims = await inParallel(msgs, WRITE_WIDTH, async (m) => {
      if (m.data.length === 0) return false;
      const v = JSON.parse(m.string()) as Value;
      const key = m.subject.slice(`$KV.${this.s.bucket}.`.length);
      const channel = Buffer.from(key.split('.')[1]!, 'base64url').toString('utf8');
      return this.claimLeave(key.split('.')[1] === '_' ? '' : channel, key, v, m.seq);
    });
    return claims.filter((x) => x).length;
  }

  private stopTimers(): void {
    this.closed = true;
    for (const s of this.stops.splice(0)) s();
  }
}

function bucketOf(prefix: string): string {
  return `${prefix}_chpres`;
}

function liveBucketOf(prefix: string): string {
  return `${prefix}_chpres_live`;
}

function memberKey(channel: string, inc: string, client: string): string {
  return `m.${subjectToken(channel)}.${subjectToken(inc)}.${subjectToken(client)}`;
}

function isCasFailure(err: unknown): boolean {
  if (apiErrorCode(err) === JsErr.WRONG_LAST_SEQUENCE) return true;
  return /wrong last sequence/i.test((err as Error)?.message ?? '');
}
