/**
 * At-least-once delivery. Each reliable delivery to a connection is tracked until that
 * connection (or, for user messages, any device of the user) acknowledges its msgId. Unanswered
 * deliveries are retransmitted on one timer wheel with exponential backoff and jitter; after
 * `delivery.maxAttempts` the message goes to the user's inbox and a metric counts it. At most
 * `delivery.maxInFlight` deliveries per connection are unacknowledged at once; the rest wait in
 * order, and a wait list past the queue budget closes the connection as a slow consumer.
 *
 * This module owns who may acknowledge what, for the WebSocket `ack` frame and the poll route's
 * `POST /poll/v1/inbox/ack` alike. An ACK counts only when it settles a delivery Herald made:
 * - in flight on this connection (sent, not yet acknowledged);
 * - for a user's connection, a message held in that user's inbox — a user message in flight on
 *   another of the user's connections on this node, or a delivery to this connection whose
 *   retries ran out (the last `delivery.maxInFlight` are remembered); the inbox removal decides,
 *   atomically, so one entry is acknowledged once;
 * - for the poll route, whatever it removes from the user's inbox.
 * Any other msgId is ignored without saying why — unknown, expired, at-most-once, duplicate or
 * another user's look alike — so an ACK can neither settle nor probe other people's messages.
 * Channel and broadcast messages are tracked only while in flight: a subscriber that joins later
 * never had the delivery, and after the retries the inbox holds it.
 */
import type { Envelope } from '@herald/protocol';
import type { HeraldConfig } from '../config.js';
import type { InboxStore } from '../engine/inbox.js';
import { inboxMessageFrameBytes } from '../message-frame.js';
import type { Session } from '../session.js';
import { TimerWheel, type WheelEntry } from '../timer-wheel.js';
import { ReceiptBook, type MessageRef } from './receipts.js';

export class InFlight implements WheelEntry, MessageRef {
  wheelSlot = -1;
  wheelRound = 0;
  attempts = 0;
  /** Another of the user's connections ACKed it and the inbox was asked once: not again for this delivery. */
  inboxAsked = false;

  constructor(
    readonly session: Session,
    readonly msgId: string,
    readonly frame: Buffer,
    readonly envelope: Envelope,
    readonly channel: string | undefined,
    /** True when the message sits in the user's inbox until acknowledged. */
    readonly fromInbox: boolean,
  ) {}
}

/**
 * A delivery to a user's connection whose retries ran out: the message is in the user's inbox
 * (a channel or broadcast message once `stored` resolves), where a late ACK still settles it.
 * Only the fields that identify the message: the payload is not kept for this.
 */
interface ExhaustedDelivery extends MessageRef {
  stored: Promise<void>;
}

/** Per-connection reliable state, created on the first reliable delivery. */
export interface ReliableState {
  inFlight: Map<string, InFlight>;
  /** Oldest first, at most `delivery.maxInFlight`: a late ACK comes soon after the last retransmission. */
  exhausted: Map<string, ExhaustedDelivery>;
  waiting: InFlight[];
  waitingBytes: number;
  /** While the inbox is being read at connect, user messages wait here (with their inbox seq). */
  inboxLoading: Array<{ seq: number; item: InFlight }> | undefined;
  /** Highest inbox seq handed to this connection. */
  inboxCursor: number;
  inboxMore: boolean;
}

export interface DeliveryHooks {
  inbox: InboxStore;
  /** The user's connections on this node. */
  userSessions(user: string): Iterable<Session> | undefined;
  onExhausted(item: InFlight): void;
  onInboxDrop(user: string, dropped: number): void;
  /** A message was acknowledged (once per message and user, by whichever connection or route settled it). */
  onAcknowledged?(ack: { msgId: string; user?: string; connectionId?: string; channel?: string }): void;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /**
   * Writes a transmission; false when the session is closed or was just closed as slow. Default:
   * `session.enqueue`. The node passes the hub's `offer`, so a fan-out's first transmissions join
   * its direct-send batch like at-most-once frames do.
   */
  write?(session: Session, frame: Buffer): boolean;
}

const TICK_MS = 50;

export class ReliableDelivery {
  readonly receipts: ReceiptBook;
  private readonly wheel: TimerWheel<InFlight>;
  private readonly states = new WeakMap<Session, ReliableState>();

  constructor(
    private readonly cfg: Readonly<HeraldConfig>,
    private readonly hooks: DeliveryHooks,
  ) {
    this.receipts = new ReceiptBook(cfg.delivery.maxReceipts, cfg.delivery.receiptTtlMs, cfg.delivery.maxRecipientsPerReceipt);
    this.wheel = new TimerWheel<InFlight>(TICK_MS, 4096, (item) => this.expire(item));
  }

  start(): void {
    this.wheel.start();
  }

  stop(): void {
    this.wheel.stop();
  }

  state(session: Session): ReliableState {
    let st = this.states.get(session);
    if (!st) {
      st = { inFlight: new Map(), exhausted: new Map(), waiting: [], waitingBytes: 0, inboxLoading: undefined, inboxCursor: 0, inboxMore: false };
      this.states.set(session, st);
    }
    return st;
  }

  /** Delivers one reliable message to one connection (or queues it behind the in-flight bound). */
  send(session: Session, msgId: string, frame: Buffer, envelope: Envelope, channel: string | undefined, fromInbox: boolean, seq?: number): void {
    if (!session.open) return;
    const st = this.state(session);
    if (st.inFlight.has(msgId)) return; // Already on its way to this connection.
    const item = new InFlight(session, msgId, frame, envelope, channel, fromInbox);
    if (seq !== undefined && st.inboxLoading) {
      st.inboxLoading.push({ seq, item });
      return;
    }
    // Older inbox entries are still to come in a later batch: this message is in the inbox too and
    // comes with them, in order. Taking it now would move the cursor past them.
    if (seq !== undefined && st.inboxMore && seq > st.inboxCursor) return;
    if (seq !== undefined) st.inboxCursor = Math.max(st.inboxCursor, seq);
    this.admit(st, item);
  }

  private admit(st: ReliableState, item: InFlight): void {
    if (st.inFlight.size < this.cfg.delivery.maxInFlight && st.waiting.length === 0) {
      st.inFlight.set(item.msgId, item);
      this.transmit(item);
      return;
    }
    st.waiting.push(item);
    st.waitingBytes += item.frame.length;
    if (st.waitingBytes + item.session.backlogBytes > this.cfg.limits.maxQueueBytes) {
      item.session.closeAsSlow('slow consumer: too many unacknowledged messages');
    }
  }

  private transmit(item: InFlight): void {
    item.attempts++;
    if (!(this.hooks.write ? this.hooks.write(item.session, item.frame) : item.session.enqueue(item.frame))) return;
    this.receipts.delivered(item, item.session.id, item.session.user, item.attempts);
    this.wheel.schedule(item, this.delayAfter(item.attempts));
  }

  /** Wait after transmission `attempt`: the ACK timeout plus exponential backoff with jitter. */
  delayAfter(attempt: number): number {
    const { ackTimeoutMs, retry } = this.cfg.delivery;
    const backoff = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.multiplier ** (attempt - 1));
    const jitter = 1 + retry.jitter * (Math.random() * 2 - 1);
    return ackTimeoutMs + backoff * jitter;
  }

  private expire(item: InFlight): void {
    const session = item.session;
    const st = this.states.get(session);
    if (!session.open || !st || st.inFlight.get(item.msgId) !== item) return;
    if (item.attempts < this.cfg.delivery.maxAttempts) {
      this.transmit(item);
      return;
    }
    st.inFlight.delete(item.msgId);
    this.receipts.exhausted(item, session.id);
    this.hooks.onExhausted(item);
    // A user message is still in the inbox (it leaves only on ACK); anything else is put there
    // so the user gets it on their next connection. Anonymous connections have no inbox.
    if (session.user) this.rememberExhausted(st, item, item.fromInbox ? Promise.resolve() : this.storeExhausted(session.user, item));
    this.drain(session, st);
  }

  private storeExhausted(user: string, item: InFlight): Promise<void> {
    return this.hooks.inbox
      .append(user, { envelope: item.envelope, ...(item.channel ? { channel: item.channel } : {}) }, this.cfg.inbox)
      .then((r) => {
        // A duplicate is an entry of the same msgId already there, maybe of another message.
        if (!r.duplicate) this.receipts.inboxed(item, user);
        if (r.dropped > 0) this.hooks.onInboxDrop(user, r.dropped);
      })
      .catch((err) => this.hooks.log.error({ err, msgId: item.msgId }, 'inbox append failed'));
  }

  private rememberExhausted(st: ReliableState, item: InFlight, stored: Promise<void>): void {
    st.exhausted.delete(item.msgId);
    st.exhausted.set(item.msgId, { msgId: item.msgId, envelope: { timestamp: item.envelope.timestamp, source: item.envelope.source }, channel: item.channel, stored });
    if (st.exhausted.size > this.cfg.delivery.maxInFlight) st.exhausted.delete(st.exhausted.keys().next().value!);
  }

  private drain(session: Session, st: ReliableState): void {
    while (st.waiting.length > 0 && st.inFlight.size < this.cfg.delivery.maxInFlight) {
      const next = st.waiting.shift()!;
      st.waitingBytes -= next.frame.length;
      if (st.inFlight.has(next.msgId)) continue;
      st.inFlight.set(next.msgId, next);
      this.transmit(next);
    }
    // A large inbox arrives in batches: the next one once this one is acknowledged.
    if (st.inFlight.size === 0 && st.waiting.length === 0 && st.inboxMore && !st.inboxLoading && session.open) {
      st.inboxMore = false;
      void this.deliverInbox(session);
    }
  }

  /**
   * Handles a connection's `ack` frame under the rule at the top of this file: settles what it is
   * entitled to and ignores the rest. What only the inbox can decide is settled when the inbox
   * has answered; a failure there is logged (the message stays in the inbox and comes again).
   */
  ack(session: Session, msgIds: string[]): void {
    const st = this.states.get(session);
    const user = session.user;
    const settledHere: string[] = [];
    const viaInbox: Array<{ msgId: string; stored?: Promise<void> }> = [];
    for (const msgId of msgIds) {
      const item = st?.inFlight.get(msgId);
      if (item) {
        this.settle(st!, item);
        st!.exhausted.delete(msgId);
        this.receipts.acked(item, session.id, user);
        this.hooks.onAcknowledged?.({ msgId, user: user || undefined, connectionId: session.id, channel: item.channel });
        if (item.fromInbox) settledHere.push(msgId);
        continue;
      }
      if (!user) continue;
      // Each delivery makes the inbox be asked at most once, so ACKs cost no more engine calls
      // than Herald made deliveries, however many a client sends.
      const late = st?.exhausted.get(msgId);
      if (late) {
        st!.exhausted.delete(msgId);
        viaInbox.push(late);
        continue;
      }
      const elsewhere = this.inFlightToUser(user, msgId);
      if (elsewhere) {
        elsewhere.inboxAsked = true;
        viaInbox.push({ msgId });
      }
    }
    if (settledHere.length > 0) {
      // The user has it: stop retrying it on their other devices and clear it from the inbox.
      this.settleForUser(user, settledHere);
      this.hooks.inbox.remove(user, settledHere).catch((err) => this.hooks.log.error({ err }, 'inbox remove failed'));
    }
    if (viaInbox.length > 0) {
      this.settleViaInbox(session, viaInbox).catch((err) => this.hooks.log.error({ err, connId: session.id }, 'inbox remove failed'));
    }
    if (st) this.drain(session, st);
  }

  /**
   * Handles `POST /poll/v1/inbox/ack`: the user acknowledges what their inbox holds. Returns the
   * msgIds it acknowledged (removed from the inbox); the others settled nothing.
   */
  async ackInbox(user: string, msgIds: string[]): Promise<string[]> {
    const removed = await this.hooks.inbox.remove(user, msgIds);
    for (const msgId of removed) {
      this.receipts.ackedInInbox(msgId, user, 'http');
      this.hooks.onAcknowledged?.({ msgId, user });
    }
    this.settleForUser(user, removed);
    return removed;
  }

  /** A late ACK, or one for a user message sent to another device: entitled if the user's inbox still holds it. */
  private async settleViaInbox(session: Session, acks: Array<{ msgId: string; stored?: Promise<void> }>): Promise<void> {
    // A channel message whose retries just ran out may still be on its way into the inbox.
    await Promise.all(acks.map((a) => a.stored));
    const removed = await this.hooks.inbox.remove(session.user, acks.map((a) => a.msgId));
    for (const msgId of removed) {
      this.receipts.ackedInInbox(msgId, session.user, session.id);
      this.hooks.onAcknowledged?.({ msgId, user: session.user, connectionId: session.id });
    }
    this.settleForUser(session.user, removed);
  }

  /** A delivery of a message held in the user's inbox, in flight to one of the user's connections here and not yet claimed by an ACK from another. */
  private inFlightToUser(user: string, msgId: string): InFlight | undefined {
    for (const s of this.hooks.userSessions(user) ?? []) {
      const item = this.states.get(s)?.inFlight.get(msgId);
      if (item?.fromInbox && !item.inboxAsked) return item;
    }
    return undefined;
  }

  /** Stops delivering these inbox messages to the user's connections on this node: one device acknowledged them. */
  private settleForUser(user: string, msgIds: string[]): void {
    if (msgIds.length === 0) return;
    for (const s of this.hooks.userSessions(user) ?? []) {
      const st = this.states.get(s);
      if (!st) continue;
      let changed = false;
      for (const id of msgIds) {
        const it = st.inFlight.get(id);
        if (it?.fromInbox) {
          this.settle(st, it);
          changed = true;
        }
      }
      if (st.waiting.length > 0) {
        const ids = new Set(msgIds);
        const before = st.waiting.length;
        st.waiting = st.waiting.filter((w) => {
          if (!w.fromInbox || !ids.has(w.msgId)) return true;
          st.waitingBytes -= w.frame.length;
          return false;
        });
        changed ||= st.waiting.length !== before;
      }
      if (changed && s.open) this.drain(s, st);
    }
  }

  private settle(st: ReliableState, item: InFlight): void {
    this.wheel.cancel(item);
    st.inFlight.delete(item.msgId);
  }

  /** Reads the user's inbox at connect and delivers it in order, ahead of live user messages. */
  async deliverInbox(session: Session): Promise<void> {
    if (!session.user) return;
    const st = this.state(session);
    st.inboxLoading = [];
    try {
      const { entries, dropped } = await this.hooks.inbox.list(session.user, st.inboxCursor, this.cfg.inbox.deliverBatch, this.cfg.inbox);
      if (dropped > 0) this.hooks.onInboxDrop(session.user, dropped);
      if (!session.open) return;
      const sent = new Set<string>();
      let full = false;
      for (const e of entries) {
        const frame = inboxMessageFrameBytes(JSON.stringify(e.envelope), e.channel);
        // A batch counts against the connection's byte budget (limits.maxQueueBytes): what does not
        // fit now stays in the inbox for the next batch, so a large inbox never closes a client
        // that reads. The first message always goes, so the inbox keeps moving.
        if (sent.size > 0 && frame.length > session.room - st.waitingBytes) {
          full = true;
          break;
        }
        this.admit(st, new InFlight(session, e.envelope.msgId, frame, e.envelope, e.channel, true));
        sent.add(e.envelope.msgId);
        st.inboxCursor = Math.max(st.inboxCursor, e.seq);
        if (!session.open) return;
      }
      st.inboxMore = full || entries.length >= this.cfg.inbox.deliverBatch;
      const buffered = st.inboxLoading;
      st.inboxLoading = undefined;
      for (const { seq, item } of buffered) {
        if (seq <= st.inboxCursor && sent.has(item.msgId)) continue;
        if (st.inboxMore && seq > st.inboxCursor) continue; // comes with a later batch, in order
        st.inboxCursor = Math.max(st.inboxCursor, seq);
        this.admit(st, item);
      }
    } catch (err) {
      st.inboxLoading = undefined;
      this.hooks.log.error({ err, user: session.user }, 'inbox read failed');
    }
  }

  /** Forgets a closed connection's deliveries (channel messages stay recoverable from history, user messages in the inbox). */
  forget(session: Session): void {
    const st = this.states.get(session);
    if (!st) return;
    for (const item of st.inFlight.values()) this.wheel.cancel(item);
    st.inFlight.clear();
    st.exhausted.clear();
    st.waiting = [];
    st.waitingBytes = 0;
  }

  unacked(session: Session): number {
    return this.states.get(session)?.inFlight.size ?? 0;
  }
}
