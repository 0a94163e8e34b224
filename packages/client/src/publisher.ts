import { ErrorCode } from '@herald/protocol';
import type { StreamPosition } from '@herald/protocol';
import type { Link, Reply } from './connection.js';
import { ClientErrorCode, HeraldError } from './errors.js';
import { newId } from './ids.js';
import type { Outbox, OutboxEntry } from './outbox.js';

export interface PublishOptions {
  /** Idempotency key; generated when absent. Resends reuse it so the server delivers once. */
  msgId?: string;
  /** Payload schema version, e.g. `1.0`. */
  version?: string;
}

export interface PublishResult {
  msgId: string;
  position?: StreamPosition;
  /** The server had already accepted this msgId (an earlier send got through). */
  duplicate: boolean;
}

export interface PublisherOptions {
  outbox: Outbox;
  /** An unconfirmed publish is sent again after this many ms on the same connection. */
  resendInterval: number;
  link: () => Link | undefined;
  onPublished: (result: PublishResult) => void;
  onError: (err: HeraldError) => void;
}

interface Waiter {
  resolve: (result: PublishResult) => void;
  reject: (err: HeraldError) => void;
}

/**
 * Publishes sent and not yet answered on one connection, at most; the rest wait in the outbox, in
 * order. Kept well under the server's default publish burst and its `rateLimits.abuse.maxRejected`,
 * so flushing a full outbox after a reconnect cannot get the connection closed for ignoring rate
 * limits (4506): at most this many are refused before the client slows down.
 */
const MAX_IN_FLIGHT = 16;
/** Pacing stays on this long after the last `rate_limited` refusal (the server's default abuse window). */
const PACE_HOLD_MS = 10_000;
const MAX_PACE_MS = 10_000;

/**
 * Client publishes through the outbox: each is kept until a `published` reply confirms it (or a
 * permanent error refuses it), sent at once when connected, sent again in order after every
 * reconnect, and sent again on a timer while a reply is overdue — always with the same msgId.
 *
 * Rate limits: a `rate_limited` refusal puts the publisher in paced mode, one publish every
 * `retryAfterMs` (doubled when a publish sent at that pace is refused again), until no refusal
 * has come for PACE_HOLD_MS. The refused publish is sent again first, so order is kept.
 */
export class Publisher {
  readonly #opts: PublisherOptions;
  readonly #waiters = new Map<string, Waiter>();
  /** msgId → when it was last sent on the current connection. */
  readonly #inflight = new Map<string, number>();
  /** Refused with another temporary error: sent again by the resend timer, not at once. */
  readonly #backoff = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** ms between sends while paced; 0 when not paced. */
  #paceMs = 0;
  /** When the last `rate_limited` refusal arrived. */
  #limitedAt = 0;
  #nextSendAt = 0;
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: PublisherOptions) {
    this.#opts = opts;
  }

  publish(channel: string, eventType: string, payload: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    if (typeof channel !== 'string' || channel === '') return Promise.reject(badArg('channel must be a non-empty string'));
    if (typeof eventType !== 'string' || eventType === '') return Promise.reject(badArg('eventType must be a non-empty string'));
    if (options.msgId !== undefined && (typeof options.msgId !== 'string' || options.msgId === '')) {
      return Promise.reject(badArg('msgId must be a non-empty string'));
    }
    const msgId = options.msgId ?? newId();
    if (this.#waiters.has(msgId)) return Promise.reject(badArg(`msgId "${msgId}" is already being published`));
    const entry: OutboxEntry = { msgId, channel, eventType, payload, createdAt: Date.now() };
    if (options.version !== undefined) entry.version = options.version;
    try {
      this.#opts.outbox.add(entry);
    } catch (err) {
      return Promise.reject(err);
    }
    const result = new Promise<PublishResult>((resolve, reject) => this.#waiters.set(msgId, { resolve, reject }));
    const link = this.#opts.link();
    if (link?.isOpen) this.#pump(link);
    return result;
  }

  /** A connection is up (subscriptions already renewed): send everything unconfirmed, in order. */
  linkUp(link: Link): void {
    this.linkDown();
    this.#pump(link);
    this.#timer = setInterval(() => this.#resendOverdue(link), Math.max(50, Math.floor(this.#opts.resendInterval / 2)));
  }

  linkDown(): void {
    this.#inflight.clear();
    this.#backoff.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#pumpTimer !== undefined) clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
  }

  /** Rejects every waiting `publish()`; the entries stay in the outbox (and its storage). */
  close(err: HeraldError): void {
    this.linkDown();
    for (const w of this.#waiters.values()) w.reject(err);
    this.#waiters.clear();
  }

  #resendOverdue(link: Link): void {
    if (!link.isOpen) return;
    const now = Date.now();
    for (const entry of this.#opts.outbox.entries()) {
      const sentAt = this.#inflight.get(entry.msgId);
      if (this.#backoff.delete(entry.msgId) || (sentAt !== undefined && now - sentAt >= this.#opts.resendInterval)) this.#send(entry, link);
    }
    this.#pump(link);
  }

  /** Sends waiting outbox entries, in order, within MAX_IN_FLIGHT and the pace. */
  #pump(link: Link): void {
    if (!link.isOpen || this.#pumpTimer !== undefined) return;
    if (this.#paceMs > 0 && Date.now() - this.#limitedAt >= PACE_HOLD_MS) this.#paceMs = 0;
    for (const entry of this.#opts.outbox.entries()) {
      if (this.#inflight.size >= MAX_IN_FLIGHT) return;
      if (this.#inflight.has(entry.msgId) || this.#backoff.has(entry.msgId)) continue;
      if (this.#paceMs > 0) {
        const now = Date.now();
        if (now < this.#nextSendAt) {
          this.#pumpTimer = setTimeout(() => {
            this.#pumpTimer = undefined;
            this.#pump(link);
          }, this.#nextSendAt - now);
          return;
        }
        this.#nextSendAt = now + this.#paceMs;
      }
      this.#send(entry, link);
    }
  }

  /** A `rate_limited` refusal of a publish sent at `sentAt`: wait what the server says, then pace. */
  #slowDown(err: HeraldError, sentAt: number | undefined): void {
    const now = Date.now();
    const told = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    const wait = Math.min(MAX_PACE_MS, typeof told === 'number' && told > 0 ? told : 1000);
    // Refused although sent at the current pace: the pace is still too fast. A refusal of a publish
    // that was already on its way when pacing began says nothing new.
    const tooFast = this.#paceMs > 0 && sentAt !== undefined && sentAt >= this.#limitedAt;
    this.#paceMs = Math.min(MAX_PACE_MS, Math.max(wait, tooFast ? this.#paceMs * 2 : this.#paceMs));
    this.#limitedAt = now;
    this.#nextSendAt = Math.max(this.#nextSendAt, now + wait);
    if (this.#pumpTimer !== undefined) {
      clearTimeout(this.#pumpTimer);
      this.#pumpTimer = undefined;
    }
  }

  #send(entry: OutboxEntry, link: Link): void {
    this.#inflight.set(entry.msgId, Date.now());
    link.call(
      (id) => ({
        type: 'publish',
        id,
        channel: entry.channel,
        eventType: entry.eventType,
        payload: entry.payload,
        msgId: entry.msgId,
        ...(entry.version !== undefined ? { version: entry.version } : {}),
      }),
      (reply) => this.#onReply(entry.msgId, reply),
    );
  }

  #onReply(msgId: string, reply: Reply): void {
    const link = this.#opts.link();
    if (reply instanceof HeraldError) {
      if (reply.code === ClientErrorCode.CONNECTION_LOST) return; // resent after reconnecting
      const sentAt = this.#inflight.get(msgId);
      this.#inflight.delete(msgId);
      if (reply.temporary) {
        if (reply.code === ErrorCode.RATE_LIMITED) this.#slowDown(reply, sentAt);
        else this.#backoff.add(msgId); // the resend timer picks it up again
        if (link) this.#pump(link);
        return;
      }
      const removed = this.#opts.outbox.remove(msgId);
      if (link) this.#pump(link);
      if (!removed) return;
      const waiter = this.#waiters.get(msgId);
      this.#waiters.delete(msgId);
      if (waiter) waiter.reject(reply);
      else this.#opts.onError(reply);
      return;
    }
    if (reply.type !== 'published') {
      this.#opts.onError(new HeraldError(ErrorCode.INVALID_FRAME, `"${reply.type}" frame in reply to publish`));
      return;
    }
    this.#inflight.delete(msgId);
    const removed = this.#opts.outbox.remove(msgId);
    if (link) this.#pump(link);
    if (!removed) return; // a late reply to a resend
    const result: PublishResult = { msgId, duplicate: reply.duplicate === true };
    if (reply.position) result.position = reply.position;
    const waiter = this.#waiters.get(msgId);
    this.#waiters.delete(msgId);
    waiter?.resolve(result);
    this.#opts.onPublished(result);
  }
}

function badArg(message: string): HeraldError {
  return new HeraldError(ErrorCode.BAD_REQUEST, message);
}
