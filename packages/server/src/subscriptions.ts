/**
 * Who on this node listens to what, and the broker subscriptions that follows from it. Owns:
 *
 * - membership: a session's channels and the hub's channel index change together, here only;
 * - the broker ref-count: the broker is subscribed to a channel while this node has a subscriber
 *   to it, and to a user's topic while the user has a connection here — derived in `retain*` /
 *   `release*` and nowhere else, for subscribe, unsubscribe, failures and disconnects alike;
 * - recovery: a subscribe joins the fan-out first (live frames for it are buffered), then reads
 *   history; the `subscribed` reply and then the buffered frames past the history's top go out
 *   in `replyAndGoLive`, after which live frames flow straight to the connection;
 * - presence: a connection's entry (with its channels) follows its membership.
 *
 * The read path (frame-handler.ts) calls `subscribe`/`unsubscribe`; the node calls `connected`
 * and `disconnected` around a session's life.
 */
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { StreamPosition, SubscribeFrame } from '@herald/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { ChannelAccess } from './channel-access.js';
import type { HistoryConfig } from './config.js';
import type { Broker, HistoryResult } from './engine/broker.js';
import type { ConnectionInfo, PresenceStore } from './engine/presence.js';
import type { PresenceHooks } from './presence-tracker.js';
import { HeraldError } from './errors.js';
import type { Hub } from './hub.js';
import type { LifecycleEmitter } from './lifecycle-events.js';
import { subscribedReply } from './message-frame.js';
import type { RecoveringBuffer, Session } from './session.js';

/** Reading a channel's history, as recovery reads it (HTTP polling). */
export interface HistoryReads {
  /** At most `limit` entries after `since`, or the newest `limit` without it. */
  readHistory(channel: string, limit: number, since?: StreamPosition): Promise<HistoryResult>;
}

/** What the read path may do with a connection's subscriptions. */
export interface SubscriptionOps {
  /** Subscribes, with recovery when the frame asks for it; refusals throw a HeraldError. */
  subscribe(session: Session, frame: SubscribeFrame): Promise<void>;
  /** Returns false when the session was not subscribed. */
  unsubscribe(session: Session, channel: string): boolean;
}

export interface SubscriptionsOptions {
  nodeName: string;
  hub: Hub;
  broker: Broker;
  presence: PresenceStore;
  /** Channel presence (presence-tracker.ts): membership and join/leave follow subscriptions. */
  members?: PresenceHooks;
  access: ChannelAccess;
  log: FastifyBaseLogger;
  limits: { maxSubscriptionsPerConnection: number; maxRecover: number };
  historyConfig(channel: string): HistoryConfig;
  /** Gets subscription.added / subscription.removed. */
  lifecycle?: LifecycleEmitter;
}

type Topic = { kind: 'channel'; channel: string } | { kind: 'user'; user: string };

export class Subscriptions implements SubscriptionOps, HistoryReads {
  constructor(private readonly o: SubscriptionsOptions) {}

  // ---- connection life -----------------------------------------------------------------------

  /**
   * An authenticated session joins the hub's user and tag indexes. The broker is subscribed to
   * its user's topic before `connected` is sent, so a user message published on another node
   * right after cannot slip past. Resolves false when the session closed meanwhile.
   */
  async connected(session: Session): Promise<boolean> {
    const { hub } = this.o;
    hub.activate(session);
    if (session.user && hub.userSessions(session.user)?.size === 1) {
      try {
        await this.retain({ kind: 'user', user: session.user });
      } catch (err) {
        this.o.log.error({ err }, 'broker user subscribe failed');
      }
    }
    if (!session.open) return false;
    this.updatePresence(session);
    return true;
  }

  /** The session is gone: leave every index, release the broker topics it held, drop its presence. */
  disconnected(session: Session): void {
    this.o.members?.disconnected(session);
    const { emptiedChannels, userGone } = this.o.hub.remove(session);
    for (const channel of emptiedChannels) this.release({ kind: 'channel', channel });
    if (!session.identity) return;
    if (userGone && session.user) this.release({ kind: 'user', user: session.user });
    this.o.presence.remove(session.id, session.user).catch((err) => this.o.log.warn({ err }, 'presence remove failed'));
  }

  /**
   * The broker reports that dispatches may have been lost (its subscription link dropped).
   * Channel subscribers are asked to reconnect, which makes them recover from history.
   */
  askSubscribersToRecover(): number {
    let n = 0;
    for (const s of this.o.hub.sessions.values()) {
      if (s.subscriptionCount === 0 || s.state !== 'connected') continue;
      s.close(CloseCode.FORCE_RECONNECT, 'messages may have been missed: reconnect and recover');
      n++;
    }
    return n;
  }

  connectionInfo(s: Session): ConnectionInfo {
    return {
      connectionId: s.id,
      user: s.user,
      node: this.o.nodeName,
      connectedAt: s.connectedAt,
      remoteAddress: s.transport.remoteAddress,
      tags: s.tags,
      channels: [...s.subscribedChannels()],
    };
  }

  // ---- subscribe / unsubscribe ---------------------------------------------------------------

  async subscribe(session: Session, frame: SubscribeFrame): Promise<void> {
    const { channel } = frame;
    const { hub, limits } = this.o;
    this.o.access.checkRead(session.identity!, channel, 'subscribe to');
    if (session.isSubscribed(channel)) throw new HeraldError(ErrorCode.ALREADY_SUBSCRIBED, `already subscribed to ${channel}`);
    this.o.members?.check(frame);
    if (session.subscriptionCount >= limits.maxSubscriptionsPerConnection) {
      throw new HeraldError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `at most ${limits.maxSubscriptionsPerConnection} subscriptions per connection`);
    }
    // Join the fan-out first, buffering live messages, then read the stream position: whatever
    // is published in between is either in the history read or in the buffer, never neither.
    const { first, buffer } = hub.subscribe(session, channel, true);
    let history: HistoryResult;
    try {
      if (first) await this.retain({ kind: 'channel', channel });
      history = await this.readHistory(channel, frame.recover ? limits.maxRecover : 0, frame.recover);
      await this.o.members?.prepare(session, frame);
    } catch (err) {
      // Still this subscription (not one that an unsubscribe and a new subscribe replaced)?
      if (session.recoveryBuffer(channel) === buffer) this.leave(session, channel);
      if (err instanceof HeraldError) throw err;
      // The engine's trouble, not the client's: a temporary refusal it may retry.
      this.o.log.error({ err, connId: session.id, channel }, 'subscribe failed in the engine');
      throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
    }
    if (!session.open || session.recoveryBuffer(channel) !== buffer) return;
    if (!this.replyAndGoLive(session, frame, history, buffer!)) return;
    this.o.members?.subscribed(session, frame);
    this.updatePresence(session);
    this.o.lifecycle?.emit('subscription.added', { connectionId: session.id, user: session.user || undefined, node: this.o.nodeName, channel });
  }

  readHistory(channel: string, limit: number, since?: StreamPosition): Promise<HistoryResult> {
    return this.o.broker.history(channel, { limit, config: this.o.historyConfig(channel), ...(since ? { since } : {}) });
  }

  unsubscribe(session: Session, channel: string): boolean {
    if (!session.isSubscribed(channel)) return false;
    this.leave(session, channel);
    this.o.lifecycle?.emit('subscription.removed', { connectionId: session.id, user: session.user || undefined, node: this.o.nodeName, channel });
    return true;
  }

  /**
   * The seam between history and the live stream, for one connection: the `subscribed` reply
   * (with the recovered publications) goes first, then the subscription's seam
   * (engine/recovery-seam.ts) lets through the live frames held meanwhile that follow the reply's
   * position — never one the reply already held, never past a gap. Returns false when the
   * connection was closed by the reply (slow consumer) or by a gap at the seam (reconnect).
   */
  private replyAndGoLive(session: Session, frame: SubscribeFrame, history: HistoryResult, _buffer: RecoveringBuffer): boolean {
    const reply = subscribedReply(frame, history, session.replayRoomBytes);
    if (!session.enqueue(reply, frame.recover !== undefined)) return false;
    this.o.hub.recovered(session, frame.channel, history.position);
    return session.open;
  }

  /** Leaves the channel's fan-out, releasing the broker subscription after the last local subscriber. */
  private leave(session: Session, channel: string): void {
    this.o.members?.unsubscribed(session, channel);
    if (this.o.hub.unsubscribe(session, channel)) this.release({ kind: 'channel', channel });
  }

  // ---- the broker ref-count ------------------------------------------------------------------

  /** Called for a topic's first local subscriber (the hub's index tells which is first). */
  private retain(topic: Topic): Promise<void> {
    return this.o.broker.subscribe(topic);
  }

  /** Called after a topic's last local subscriber left. */
  private release(topic: Topic): void {
    this.o.broker.unsubscribe(topic).catch((err) => this.o.log.warn({ err }, 'broker unsubscribe failed'));
  }

  private updatePresence(session: Session): void {
    this.o.presence.add(this.connectionInfo(session)).catch((err) => this.o.log.warn({ err }, 'presence add failed'));
  }
}
