/**
 * Delivery receipts for at-least-once messages: what happened to a message, per recipient.
 * Aggregate counts are always kept; per-connection detail only when the publisher asked for
 * `receipts: true`, since a channel with thousands of subscribers would otherwise cost a record
 * per subscriber per message. Bounded by count and age.
 */
export type ReceiptState = 'accepted' | 'delivered' | 'acknowledged' | 'inbox' | 'exhausted' | 'expired';

export interface RecipientRecord {
  connectionId: string;
  user: string;
  deliveredAt: number;
  attempts: number;
  ackedAt?: number;
  exhaustedAt?: number;
}

export interface Receipt {
  msgId: string;
  target: string;
  mode: 'at-least-once';
  acceptedAt: number;
  detailed: boolean;
  /** For user targets: the addressed user. Acks from anyone else are refused. */
  user?: string;
  channel?: string;
  counts: { delivered: number; acknowledged: number; retransmissions: number; exhausted: number; inbox: number };
  // Allocated on first use: most messages never need all three.
  recipients?: Map<string, RecipientRecord>;
  acks?: Map<string, { connectionId: string; at: number }>;
  inbox?: Map<string, { at: number; removedAt?: number }>;
}

export class ReceiptBook {
  private readonly receipts = new Map<string, Receipt>();

  constructor(
    private readonly maxReceipts: number,
    private readonly ttlMs: number,
  ) {}

  open(init: { msgId: string; target: string; user?: string; channel?: string; detailed: boolean; acceptedAt: number }): Receipt | undefined {
    if (this.maxReceipts === 0) return undefined;
    const r: Receipt = {
      msgId: init.msgId,
      target: init.target,
      user: init.user,
      channel: init.channel,
      detailed: init.detailed,
      acceptedAt: init.acceptedAt,
      mode: 'at-least-once',
      counts: { delivered: 0, acknowledged: 0, retransmissions: 0, exhausted: 0, inbox: 0 },
    };
    this.receipts.set(init.msgId, r);
    this.evict(init.acceptedAt);
    return r;
  }

  get(msgId: string): Receipt | undefined {
    const r = this.receipts.get(msgId);
    if (r && Date.now() - r.acceptedAt > this.ttlMs) {
      this.receipts.delete(msgId);
      return undefined;
    }
    return r;
  }

  delivered(msgId: string, connectionId: string, user: string, attempt: number): void {
    const r = this.receipts.get(msgId);
    if (!r) return;
    if (attempt === 1) r.counts.delivered++;
    else r.counts.retransmissions++;
    if (!r.detailed) return;
    const recipients = (r.recipients ??= new Map());
    const rec = recipients.get(connectionId);
    if (rec) rec.attempts = attempt;
    else recipients.set(connectionId, { connectionId, user, deliveredAt: Date.now(), attempts: attempt });
  }

  /**
   * Records an ACK. Who acknowledged is kept for user messages and detailed receipts; for a channel
   * or broadcast message without `receipts: true` only the count is kept, since thousands of
   * subscribers would otherwise leave thousands of entries per message. `settled` says the ACK
   * settled a tracked delivery (so it is counted once per delivery without a per-user map).
   */
  acked(msgId: string, connectionId: string, user: string, settled = false): void {
    const r = this.receipts.get(msgId);
    if (!r) return;
    const who = user || connectionId;
    if (r.detailed || r.user !== undefined) {
      const acks = (r.acks ??= new Map());
      if (!acks.has(who)) {
        r.counts.acknowledged++;
        acks.set(who, { connectionId, at: Date.now() });
      }
    } else if (settled) {
      r.counts.acknowledged++;
    }
    const rec = r.recipients?.get(connectionId);
    if (rec) rec.ackedAt ??= Date.now();
    const box = r.inbox?.get(user);
    if (box) box.removedAt ??= Date.now();
  }

  exhausted(msgId: string, connectionId: string): void {
    const r = this.receipts.get(msgId);
    if (!r) return;
    r.counts.exhausted++;
    const rec = r.recipients?.get(connectionId);
    if (rec) rec.exhaustedAt = Date.now();
  }

  inboxed(msgId: string, user: string): void {
    const r = this.receipts.get(msgId);
    if (!r || r.inbox?.has(user)) return;
    r.counts.inbox++;
    (r.inbox ??= new Map()).set(user, { at: Date.now() });
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
      inbox: [...(r.inbox ?? [])].map(([user, b]) => ({ user, storedAt: b.at, ...(b.removedAt ? { removedAt: b.removedAt } : {}) })),
      ...(r.detailed ? { recipients: [...(r.recipients?.values() ?? [])] } : {}),
    };
  }

  private evict(now: number): void {
    for (const [id, r] of this.receipts) {
      if (this.receipts.size <= this.maxReceipts && now - r.acceptedAt <= this.ttlMs) break;
      this.receipts.delete(id);
    }
  }
}
