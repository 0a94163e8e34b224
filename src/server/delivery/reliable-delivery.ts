/**
 * At-least-once delivery. Each reliable delivery to a connection is tracked until that
 * connection (or, for user messages, any device of the user) acknowledges its msgId. Unanswered
 * deliveries are retransmitted on one timer wheel with exponential backoff and jitter; after
 * `delivery.maxAttempts` the message goes to the user's inbox and a metric counts it. At most
 * `delivery.maxInFlight` deliveries per connection are unacknowledged at once; the rest wait in
 * order, and a wait list past the queue budget closes the connection as a slow consumer.
 */
import { CloseCode, ErrorCode } from '../../protocol/codes.js';
import type { Envelope } from '../../protocol/frames.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import type { InboxStore } from '../engine/inbox.js';
import { inboxMessageFrameBytes } from '../message-frame.js';
import type { Session } from '../session.js';
import { TimerWheel, type WheelEntry } from '../timer-wheel.js';
import { ReceiptBook } from './receipts.js';

export class InFlight implements WheelEntry {
  wheelSlot = -1;
  wheelRound = 0;
  attempts = 0;

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

/** Per-connection reliable state, created on the first reliable delivery. */
export interface ReliableState {
  inFlight: Map<string, InFlight>;
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
  onExhausted(item: InFlight): void;
  onInboxDrop(user: string, dropped: number): void;
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
    this.receipts = new ReceiptBook(cfg.delivery.maxReceipts, cfg.delivery.receiptTtlMs);
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
      st = { inFlight: new Map(), waiting: [], waitingBytes: 0, inboxLoading: undefined, inboxCursor: 0, inboxMore: false };
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
      item.session.close(CloseCode.SLOW_CONSUMER, 'slow consumer: too many unacknowledged messages');
    }
  }

  private transmit(item: InFlight): void {
    item.attempts++;
    if (!(this.hooks.write ? this.hooks.write(item.session, item.frame) : item.session.enqueue(item.frame))) return;
    this.receipts.delivered(item.msgId, item.session.id, item.session.user, item.attempts);
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
    this.receipts.exhausted(item.msgId, session.id);
    this.hooks.onExhausted(item);
    // A user message is still in the inbox (it leaves only on ACK); anything else is put there
    // so the user gets it on their next connection.
    if (!item.fromInbox && session.user) {
      this.hooks.inbox
        .append(session.user, { envelope: item.envelope, ...(item.channel ? { channel: item.channel } : {}) }, this.cfg.inbox)
        .then((r) => {
          this.receipts.inboxed(item.msgId, session.user);
          if (r.dropped > 0) this.hooks.onInboxDrop(session.user, r.dropped);
        })
        .catch((err) => this.hooks.log.error({ err, msgId: item.msgId }, 'inbox append failed'));
    }
    this.drain(session, st);
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
   * Handles an ACK. Returns the msgIds refused: ids this connection's user was never sent.
   * Unknown ids (at-most-once, expired, duplicates) are accepted and ignored.
   */
  ack(session: Session, msgIds: string[], userSessions: Iterable<Session> | undefined): string[] {
    const refused: string[] = [];
    const st = this.states.get(session);
    const removeFromInbox: string[] = [];
    for (const msgId of msgIds) {
      const item = st?.inFlight.get(msgId);
      if (item) {
        this.settle(st!, item);
        this.receipts.acked(msgId, session.id, session.user, true);
        if (item.fromInbox) removeFromInbox.push(msgId);
        continue;
      }
      const r = this.receipts.get(msgId);
      if (!r) continue;
      const entitled = r.user !== undefined ? r.user === session.user : r.channel !== undefined ? session.subs.has(r.channel) || r.acks?.has(session.user) === true || r.inbox?.has(session.user) === true : true;
      if (!entitled) {
        refused.push(msgId);
        continue;
      }
      this.receipts.acked(msgId, session.id, session.user);
      if (r.user !== undefined || r.inbox?.has(session.user)) removeFromInbox.push(msgId);
    }
    if (removeFromInbox.length > 0 && session.user) {
      // The user has it: stop retrying it on their other devices and clear it from the inbox.
      for (const other of userSessions ?? []) {
        if (other === session) continue;
        const ost = this.states.get(other);
        for (const id of removeFromInbox) {
          const it = ost?.inFlight.get(id);
          if (it && ost) this.settle(ost, it);
        }
      }
      this.hooks.inbox.remove(session.user, removeFromInbox).catch((err) => this.hooks.log.error({ err }, 'inbox remove failed'));
    }
    if (st) this.drain(session, st);
    return refused;
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
      for (const e of entries) {
        const frame = inboxMessageFrameBytes(JSON.stringify(e.envelope), e.channel);
        this.admit(st, new InFlight(session, e.envelope.msgId, frame, e.envelope, e.channel, true));
        sent.add(e.envelope.msgId);
        st.inboxCursor = Math.max(st.inboxCursor, e.seq);
      }
      st.inboxMore = entries.length >= this.cfg.inbox.deliverBatch;
      const buffered = st.inboxLoading;
      st.inboxLoading = undefined;
      for (const { seq, item } of buffered) {
        if (seq <= st.inboxCursor && sent.has(item.msgId)) continue;
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
    st.waiting = [];
    st.waitingBytes = 0;
  }

  unacked(session: Session): number {
    return this.states.get(session)?.inFlight.size ?? 0;
  }
}

export function ackRefusedError(refused: string[]): HeraldError {
  return new HeraldError(ErrorCode.PERMISSION_DENIED, `ack refused: ${refused.length} message(s) were never sent to this user`, { msgIds: refused });
}
