/**
 * Channel presence on this node: which of its subscriptions are members (namespaces with
 * `presence: true`), which subscribers get join/leave frames, and the answers to the presence
 * frames and routes. Owns:
 *
 * - membership follows subscription: a subscription joins after its `subscribed` went out and
 *   leaves when it ends (unsubscribe, failure, disconnect). One connection's operations on one
 *   channel run one after another, so a leave is never written before the join it undoes;
 * - the event watch: this node watches a channel's events only while one of its subscribers wants
 *   join/leave, so a channel nobody here asked for costs nothing per event; an event is encoded
 *   once and the same bytes go to every subscriber that wants it;
 * - `onPresenceEvent`: every join and leave this node wrote (its members', and the leaves of a dead
 *   node's members its sweeps claimed) — each event of the cluster is heard on exactly one node.
 */
import { ErrorCode } from '@herald/protocol';
import type { PresenceMember, PresenceRequestFrame, PresenceStatsRequestFrame, SubscribeFrame } from '@herald/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { ChannelAccess } from './channel-access.js';
import { namespaceOf } from './channels.js';
import type { HeraldConfig } from './config.js';
import type { ChannelMember, ChannelPresence, ChannelPresenceStore, PresenceEvent, PresencePage, PresenceStats } from './engine/channel-presence.js';
import { HeraldError } from './errors.js';
import { encodeFrame } from './rpc.js';
import type { Session } from './session.js';

/** Default page size of the presence frame and route. */
export const DEFAULT_PRESENCE_LIMIT = 100;

/** What the subscription path tells presence (subscriptions.ts). */
export interface PresenceHooks {
  /** Before the subscribe is acted on: refuses `presence: true` where presence is off. */
  check(frame: SubscribeFrame): void;
  /** Before the `subscribed` reply: the channel's event watch, when this subscriber wants events. */
  prepare(session: Session, frame: SubscribeFrame): Promise<void>;
  /** After the `subscribed` reply: the member joins, and its join/leave frames start. */
  subscribed(session: Session, frame: SubscribeFrame): void;
  /** The subscription ended (unsubscribe, failure). */
  unsubscribed(session: Session, channel: string): void;
  /** The connection closed. */
  disconnected(session: Session): void;
}

/** What the read path and the server API ask of presence. */
export interface PresenceQueries {
  list(channel: string, page: { cursor?: string; limit?: number }): Promise<PresencePage>;
  stats(channel: string): Promise<PresenceStats>;
  /** Answers a `presence` or `presence_stats` frame, after its permission check. */
  answer(session: Session, frame: PresenceRequestFrame | PresenceStatsRequestFrame): Promise<void>;
}

export type PresenceEventListener = (event: PresenceEvent) => void;

interface Watch {
  /** Subscribers wanting events; false until their `subscribed` went out. */
  sessions: Map<Session, boolean>;
  stop: Promise<(() => Promise<void>) | undefined>;
}

export interface PresenceTrackerOptions {
  channels: Readonly<HeraldConfig['channels']>;
  store: ChannelPresenceStore;
  access: ChannelAccess;
  /** The per-channel `info` a subscribe hook attached to this subscription, if any. */
  channelInfo?: (session: Session, channel: string) => unknown;
  log: FastifyBaseLogger;
}

export class PresenceTracker implements PresenceHooks, PresenceQueries {
  private handle: ChannelPresence | undefined;
  /** Channels each session is a member of (or is joining). */
  private readonly memberships = new Map<Session, Set<string>>();
  private readonly watches = new Map<string, Watch>();
  /** Channels whose events each session gets (or is about to), so a disconnect touches only those. */
  private readonly watching = new Map<Session, Set<string>>();
  /** Per connection and channel: the last join/leave, so the next waits for it. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<PresenceEventListener>();

  constructor(private readonly o: PresenceTrackerOptions) {}

  async start(nodeName: string): Promise<void> {
    this.handle = await this.o.store.open(nodeName, (e) => this.tell(e));
  }

  /** Leaves every member of this node (their leaves go out) and closes the store. */
  async close(): Promise<void> {
    for (const w of this.watches.values()) void w.stop.then((stop) => stop?.()).catch(() => undefined);
    this.watches.clear();
    await this.handle?.close().catch((err) => this.o.log.warn({ err }, 'channel presence close failed'));
    this.handle = undefined;
    await this.o.store.close();
  }

  /** Hears every join and leave this node wrote; returns the disposer. */
  onPresenceEvent(listener: PresenceEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  enabled(channel: string): boolean {
    return this.o.channels.namespaces[namespaceOf(channel)]?.presence === true;
  }

  private wantsEvents(frame: SubscribeFrame): boolean {
    if (!this.enabled(frame.channel)) return false;
    return frame.presence ?? this.o.channels.namespaces[namespaceOf(frame.channel)]?.joinLeave === true;
  }

  // ---- the subscription path ------------------------------------------------------------------

  check(frame: SubscribeFrame): void {
    if (frame.presence === true && !this.enabled(frame.channel)) throw notEnabled(frame.channel);
  }

  async prepare(session: Session, frame: SubscribeFrame): Promise<void> {
    if (!this.wantsEvents(frame) || !this.handle || !session.open) return;
    const channel = frame.channel;
    let w = this.watches.get(channel);
    if (!w) {
      const handle = this.handle;
      const fresh: Watch = { sessions: new Map(), stop: Promise.resolve(undefined) };
      fresh.stop = handle.watch(channel, (e) => this.deliver(fresh, e)).catch((err) => {
        // The engine refused the watch: the next subscriber asking for events tries again.
        this.o.log.warn({ err, channel }, 'channel presence watch failed; join/leave frames of this channel are not sent');
        if (this.watches.get(channel) === fresh) this.watches.delete(channel);
        return undefined;
      });
      this.watches.set(channel, (w = fresh));
    }
    w.sessions.set(session, false);
    let mine = this.watching.get(session);
    if (!mine) this.watching.set(session, (mine = new Set()));
    mine.add(channel);
    await w.stop;
  }

  subscribed(session: Session, frame: SubscribeFrame): void {
    const w = this.watches.get(frame.channel);
    if (w?.sessions.has(session)) w.sessions.set(session, true);
    if (!this.enabled(frame.channel) || !this.handle) return;
    let set = this.memberships.get(session);
    if (!set) this.memberships.set(session, (set = new Set()));
    set.add(frame.channel);
    const handle = this.handle;
    const channelInfo = this.o.channelInfo?.(session, frame.channel);
    const member = {
      client: session.id,
      user: session.user,
      ...(session.identity?.info !== undefined ? { info: session.identity.info } : {}),
      ...(channelInfo !== undefined ? { channelInfo } : {}),
    };
    this.serial(session, frame.channel, () => handle.join(frame.channel, member));
  }

  unsubscribed(session: Session, channel: string): void {
    this.unwatch(session, channel);
    const set = this.memberships.get(session);
    if (!set?.delete(channel)) return;
    if (set.size === 0) this.memberships.delete(session);
    this.leave(session, channel);
  }

  disconnected(session: Session): void {
    for (const channel of [...(this.watching.get(session) ?? [])]) this.unwatch(session, channel);
    this.watching.delete(session);
    const set = this.memberships.get(session);
    if (!set) return;
    this.memberships.delete(session);
    for (const channel of set) this.leave(session, channel);
  }

  // ---- queries ----------------------------------------------------------------------------

  async list(channel: string, page: { cursor?: string; limit?: number }): Promise<PresencePage> {
    if (!this.enabled(channel)) throw notEnabled(channel);
    return this.live().list(channel, { limit: page.limit ?? DEFAULT_PRESENCE_LIMIT, ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) });
  }

  async stats(channel: string): Promise<PresenceStats> {
    if (!this.enabled(channel)) throw notEnabled(channel);
    return this.live().stats(channel);
  }

  async answer(session: Session, frame: PresenceRequestFrame | PresenceStatsRequestFrame): Promise<void> {
    const { channel } = frame;
    if (!session.isSubscribed(channel)) this.o.access.checkRead(session.identity!, channel, 'read the presence of');
    if (!this.enabled(channel)) throw notEnabled(channel);
    try {
      if (frame.type === 'presence_stats') {
        const s = await this.stats(channel);
        session.enqueue(encodeFrame({ type: 'presence_stats', id: frame.id, channel, connections: s.connections, users: s.users }));
        return;
      }
      const page = await this.list(channel, { ...(frame.cursor !== undefined ? { cursor: frame.cursor } : {}), ...(frame.limit !== undefined ? { limit: frame.limit } : {}) });
      session.enqueue(encodeFrame({ type: 'presence', id: frame.id, channel, members: page.members.map(toWire), ...(page.next !== undefined ? { next: page.next } : {}) }));
    } catch (err) {
      if (err instanceof HeraldError) throw err;
      this.o.log.error({ err, channel }, 'channel presence read failed in the engine');
      throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE, 'presence could not be read; retry');
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  private live(): ChannelPresence {
    if (!this.handle) throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE, 'presence is not available yet');
    return this.handle;
  }

  private leave(session: Session, channel: string): void {
    const handle = this.handle;
    if (!handle) return;
    this.serial(session, channel, () => handle.leave(channel, session.id));
  }

  private serial(session: Session, channel: string, op: () => Promise<unknown>): void {
    const key = `${session.id}\n${channel}`;
    const run = (this.chains.get(key) ?? Promise.resolve())
      .then(op)
      .catch((err) => this.o.log.warn({ err, channel, connId: session.id }, 'channel presence update failed'));
    this.chains.set(key, run);
    void run.then(() => {
      if (this.chains.get(key) === run) this.chains.delete(key);
    });
  }

  private unwatch(session: Session, channel: string): void {
    const mine = this.watching.get(session);
    if (mine?.delete(channel) && mine.size === 0) this.watching.delete(session);
    const w = this.watches.get(channel);
    if (!w?.sessions.delete(session) || w.sessions.size > 0) return;
    this.watches.delete(channel);
    void w.stop.then((stop) => stop?.()).catch(() => undefined);
  }

  /** One event of a watched channel: encoded once, for the subscribers here that want it. */
  private deliver(w: Watch, e: PresenceEvent): void {
    let frame: Buffer | undefined;
    for (const [session, live] of w.sessions) {
      if (!live || !session.open) continue;
      frame ??= encodeFrame({ type: e.type, channel: e.channel, member: toWire(e.member) });
      session.enqueue(frame);
    }
  }

  private tell(e: PresenceEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.o.log.warn({ err }, 'presence event listener failed');
      }
    }
  }
}

function toWire(m: ChannelMember): PresenceMember {
  return { client: m.client, user: m.user, ...(m.info !== undefined ? { info: m.info } : {}), ...(m.channelInfo !== undefined ? { channelInfo: m.channelInfo } : {}) };
}

function notEnabled(channel: string): HeraldError {
  return new HeraldError(ErrorCode.PRESENCE_NOT_ENABLED, `presence is not enabled for ${channel} (channels.namespaces.<ns>.presence)`);
}
