import { ErrorCode } from '../../src/protocol/index.js';
import type { StreamPosition } from '../../src/protocol/index.js';
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
 * Client publishes through the outbox: each is kept until a `published` reply confirms it (or a
 * permanent error refuses it), sent at once when connected, sent again in order after every
 * reconnect, and sent again on a timer while a reply is overdue — always with the same msgId.
 */
export class Publisher {
  readonly #opts: PublisherOptions;
  readonly #waiters = new Map<string, Waiter>();
  /** msgId → when it was last sent on the current connection. */
  readonly #inflight = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

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
    if (link?.isOpen) this.#send(entry, link);
    return result;
  }

  /** A connection is up (subscriptions already renewed): send everything unconfirmed, in order. */
  linkUp(link: Link): void {
    this.#inflight.clear();
    for (const entry of this.#opts.outbox.entries()) this.#send(entry, link);
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#resendOverdue(link), Math.max(50, Math.floor(this.#opts.resendInterval / 2)));
  }

  linkDown(): void {
    this.#inflight.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
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
      if (sentAt === undefined || now - sentAt >= this.#opts.resendInterval) this.#send(entry, link);
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
    if (reply instanceof HeraldError) {
      if (reply.code === ClientErrorCode.CONNECTION_LOST) return; // resent after reconnecting
      this.#inflight.delete(msgId); // the resend timer picks it up again
      if (reply.temporary) return;
      if (!this.#opts.outbox.remove(msgId)) return;
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
    if (!this.#opts.outbox.remove(msgId)) return; // a late reply to a resend
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
