/**
 * Delivery receipts for at-least-once API messages: what happened to a message, per recipient.
 * Aggregate counts are always kept; per-connection detail only when the publisher asked for
 * `receipts: true`, since a channel with thousands of subscribers would otherwise cost a record
 * per subscriber per message. Bounded by count and age, and each receipt's lists by
 * `delivery.maxRecipientsPerReceipt` (past it the counts keep growing and the view says the list
 * is truncated).
 *
 * Receipts are keyed by msgId, but a msgId alone does not name a message: idempotency is scoped by
 * publisher, so a client may publish its own message with an API message's msgId. A delivery is
 * therefore counted only in the receipt of its own message — the same msgId, audience channel,
 * acceptance time and source (`ReceiptBook.of`). Who may acknowledge is decided by the delivery
 * module (reliable-delivery.ts); this book only records what it is told.
 */
import type { Envelope, RecipientRecord } from '@herald/protocol';

export type ReceiptState = 'accepted' | 'delivered' | 'acknowledged' | 'inbox' | 'exhausted' | 'expired';

/** Which message a delivery is of: the fields a receipt recognises its own message by. */
export interface MessageRef {
  msgId: string;
  envelope: Pick<Envelope, 'timestamp' | 'source'>;
  /** The channel it was published to; undefined for user and broadcast messages. */
  channel: string | undefined;
}

export type { RecipientRecord };

export interface Receipt {
  msgId: string;
  target: string;
  mode: 'at-least-once';
  acceptedAt: number;
  /** The envelope's source: with `acceptedAt`, tells this message from another with its msgId. */
  source: string;
  detailed: boolean;
  /** For user targets: the addressed user. */
  user?: string;
  channel?: string;
  /** `acknowledged` counts deliveries (and inbox entries) settled by an ACK, each at most once. */
  counts: { delivered: number; acknowledged: number; retransmissions: number; exhausted: number; inbox: number };
  // Allocated on first use: most messages never need all three. Each holds at most
  // `maxRecipients` entries; the matching flag says one was left out.
  recipients?: Map<string, RecipientRecord>;
  recipientsTruncated?: true;
  acks?: Map<string, { connectionId: string; at: number }>;
  acksTruncated?: true;
  inbox?: Map<string, { at: number; removedAt?: number }>;
  inboxTruncated?: true;
}

export class ReceiptBook {
  private readonly receipts = new Map<string, Receipt>();

  constructor(
    private readonly maxReceipts: number,
    private readonly ttlMs: number,
    /** `delivery.maxRecipientsPerReceipt`: the most entries each of a receipt's lists keeps. */
    private readonly maxRecipients: number,
  ) {}

  open(init: { msgId: string; target: string; user?: string; channel?: string; detailed: boolean; acceptedAt: number; source: string }): Receipt | undefined {
    if (this.maxReceipts === 0) return undefined;
    const r: Receipt = {
      msgId: init.msgId,
      target: init.target,
      user: init.user,
      channel: init.channel,
      detailed: init.detailed,
      acceptedAt: init.acceptedAt,
      source: init.source,
      mode: 'at-least-once',
      counts: { delivered: 0, acknowledged: 0, retransmissions: 0, exhausted: 0, inbox: 0 },
    };
    this.receipts.set(init.msgId, r);
    this.evict(init.acceptedAt);
    return r;
  }

  /** The receipt kept under this msgId (for the API's view), whichever message it is of. */
  get(msgId: string): Receipt | undefined {
    const r = this.receipts.get(msgId);
    if (r && Date.now() - r.acceptedAt > this.ttlMs) {
      this.receipts.delete(msgId);
      return undefined;
    }
    return r;
  }

  /** The receipt of exactly this message, or undefined (none kept, or another message with its msgId). */
  of(m: MessageRef): Receipt | undefined {
    const r = this.get(m.msgId);
    return r && r.acceptedAt === m.envelope.timestamp && r.source === m.envelope.source && r.channel === m.channel ? r : undefined;
  }

  delivered(m: MessageRef, connectionId: string, user: string, attempt: number): void {
    const r = this.of(m);
    if (!r) return;
    if (attempt === 1) r.counts.delivered++;
    else r.counts.retransmissions++;
    if (!r.detailed) return;
    const recipients = (r.recipients ??= new Map());
    const rec = recipients.get(connectionId);
    if (rec) rec.attempts = attempt;
    else if (recipients.size < this.maxRecipients) recipients.set(connectionId, { connectionId, user, deliveredAt: Date.now(), attempts: attempt });
    else r.recipientsTruncated = true;
  }

  /**
   * Records an ACK that settled a delivery of this message to `connectionId`: the caller has
   * checked the connection was entitled, and calls this once per settled delivery. Who
   * acknowledged is kept for user messages and detailed receipts; for a channel or broadcast
   * message without `receipts: true` only the count is kept.
   */
  acked(m: MessageRef, connectionId: string, user: string): void {
    const r = this.of(m);
    if (!r) return;
    const now = Date.now();
    r.counts.acknowledged++;
    if (r.detailed || r.user !== undefined) this.recordAck(r, user || connectionId, connectionId, now);
    const rec = r.recipients?.get(connectionId);
    if (rec) rec.ackedAt ??= now;
    const box = r.inbox?.get(user);
    if (box) box.removedAt ??= now;
  }

  /**
   * Records an ACK that removed `msgId` from `user`'s inbox (the entry's envelope is not known
   * here). Counted only when this receipt's message was put in that inbox and not yet removed, so
   * it is this message, and one ACK per inbox entry is counted; entries past the list bound are
   * not counted (the count stays a lower bound).
   */
  ackedInInbox(msgId: string, user: string, connectionId: string): void {
    const r = this.get(msgId);
    const box = r?.inbox?.get(user);
    if (!r || !box || box.removedAt !== undefined) return;
    const now = Date.now();
    box.removedAt = now;
    r.counts.acknowledged++;
    if (r.detailed || r.user !== undefined) this.recordAck(r, user, connectionId, now);
  }

  exhausted(m: MessageRef, connectionId: string): void {
    const r = this.of(m);
    if (!r) return;
    r.counts.exhausted++;
    const rec = r.recipients?.get(connectionId);
    if (rec) rec.exhaustedAt = Date.now();
  }

  /** The message was put in the user's inbox (a user message at publish, or one whose retries ran out). */
  inboxed(m: MessageRef, user: string): void {
    const r = this.of(m);
    if (!r || r.inbox?.has(user)) return;
    r.counts.inbox++;
    const inbox = (r.inbox ??= new Map());
    if (inbox.size < this.maxRecipients) inbox.set(user, { at: Date.now() });
    else r.inboxTruncated = true;
  }

  private recordAck(r: Receipt, who: string, connectionId: string, at: number): void {
    const acks = (r.acks ??= new Map());
    if (acks.has(who)) return;
    if (acks.size < this.maxRecipients) acks.set(who, { connectionId, at });
    else r.acksTruncated = true;
  }

  /** JSON view for the HTTP API. */
  static view(r: Receipt) {
    const state: ReceiptState = r.counts.acknowledged > 0 ? 'acknowledged' : r.counts.inbox > 0 ? 'inbox' : r.counts.exhausted > 0 ? 'exhausted' : r.counts.delivered > 0 ? 'delivered' : 'accepted';
    return {
      msgId: r.msgId,
      mode: r.mode,
      target: r.target,
      ...(r.channel ? { channel: r.channel } : {}),
      ...(r.user ? { user: r.user } : {}),
      state,
      acceptedAt: r.acceptedAt,
      counts: r.counts,
      acknowledgedBy: [...(r.acks ?? [])].map(([user, a]) => ({ user, connectionId: a.connectionId, at: a.at })),
      ...(r.acksTruncated ? { acknowledgedByTruncated: true } : {}),
      inbox: [...(r.inbox ?? [])].map(([user, b]) => ({ user, storedAt: b.at, ...(b.removedAt ? { removedAt: b.removedAt } : {}) })),
      ...(r.inboxTruncated ? { inboxTruncated: true } : {}),
      ...(r.detailed ? { recipients: [...(r.recipients?.values() ?? [])] } : {}),
      ...(r.recipientsTruncated ? { recipientsTruncated: true } : {}),
    };
  }

  private evict(now: number): void {
    for (const [id, r] of this.receipts) {
      if (this.receipts.size <= this.maxReceipts && now - r.acceptedAt <= this.ttlMs) break;
      this.receipts.delete(id);
    }
  }
}
