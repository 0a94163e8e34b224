import type { DeliveryTarget, Envelope, MessageFrame } from '@herald/protocol';
import type { Link } from './connection.js';
import { SeenMessages } from './dedup.js';
import { toHeraldError } from './errors.js';
import type { HeraldError } from './errors.js';
import { THREW } from './events.js';

export type AckMode = 'auto' | 'manual';

/** Passed to every message handler beside the envelope. */
export interface MessageContext {
  target: DeliveryTarget;
  channel?: string;
  offset?: number;
  epoch?: string;
  /**
   * Acknowledges the message (once; later calls do nothing). With `ackMode: 'auto'` the client
   * calls it when every handler has returned or resolved; with `'manual'` the application must.
   */
  ack(): void;
}

/** Most msgIds per `ack` frame. */
const MAX_ACK_BATCH = 500;

export interface DeliveryOptions {
  ackMode: AckMode;
  dedupSize: number;
  /** ms to gather ACKs into one frame. */
  ackDelay: number;
  link: () => Link | undefined;
  onError: (err: HeraldError) => void;
}

/**
 * Hands messages to handlers once per msgId and acknowledges them. Acks are batched over `ackDelay` ms: every ack
 * made in the same tick leaves in one `ack` frame. A redelivery of a message already acknowledged
 * (the ack was lost) is acknowledged again without running handlers; one whose handler failed
 * runs the handlers again.
 */
export class Delivery {
  readonly #opts: DeliveryOptions;
  readonly #seen: SeenMessages;
  #pending: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: DeliveryOptions) {
    this.#opts = opts;
    this.#seen = new SeenMessages(opts.dedupSize);
  }

  /** Runs `emit` for a new message; `emit` returns what the handlers returned. */
  deliver(frame: MessageFrame, emit: (message: Envelope, context: MessageContext) => unknown[]): void {
    const msgId = frame.message.msgId;
    // Only at-least-once deliveries (`ack: true`) are acknowledged on the wire; the rest are
    // still de-duplicated and `context.ack()` is harmless for them.
    const wantsAck = frame.ack === true;
    const seen = this.#seen.get(msgId);
    if (seen === 'acked' && wantsAck) this.#queue(msgId);
    if (seen !== undefined) return;
    this.#seen.set(msgId, 'handling');
    let acked = false;
    const context: MessageContext = {
      target: frame.target,
      ...(frame.channel !== undefined ? { channel: frame.channel } : {}),
      ...(frame.offset !== undefined ? { offset: frame.offset } : {}),
      ...(frame.epoch !== undefined ? { epoch: frame.epoch } : {}),
      ack: () => {
        if (acked) return;
        acked = true;
        if (this.#seen.get(msgId) !== undefined) this.#seen.set(msgId, 'acked');
        if (wantsAck) this.#queue(msgId);
      },
    };
    const results = emit(frame.message, context);
    if (results.includes(THREW)) {
      this.#seen.delete(msgId);
      return;
    }
    const waits = results.filter((r): r is PromiseLike<unknown> => typeof (r as PromiseLike<unknown> | null)?.then === 'function');
    const done = (): void => {
      if (this.#opts.ackMode === 'auto') context.ack();
    };
    if (waits.length === 0) {
      done();
      return;
    }
    Promise.all(waits).then(done, (err: unknown) => {
      this.#seen.delete(msgId);
      this.#opts.onError(toHeraldError(err));
    });
  }

  /** Sends queued acks now (normally done on the next tick). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const link = this.#opts.link();
    const ids = this.#pending;
    this.#pending = [];
    // Acks for a connection that is gone are dropped: the server redelivers, and the redelivery
    // is acknowledged again from the dedup record.
    if (!link?.isOpen) return;
    for (let i = 0; i < ids.length; i += MAX_ACK_BATCH) link.send({ type: 'ack', msgIds: ids.slice(i, i + MAX_ACK_BATCH) });
  }

  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = [];
    this.#seen.clear();
  }

  #queue(msgId: string): void {
    this.#pending.push(msgId);
    if (this.#timer === undefined) this.#timer = setTimeout(() => this.flush(), this.#opts.ackDelay);
  }
}
