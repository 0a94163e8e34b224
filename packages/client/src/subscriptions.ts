import { ErrorCode } from '@herald/protocol';
import type { JoinFrame, LeaveFrame, MessageFrame, StreamPosition } from '@herald/protocol';
import { askPresence, askPresenceStats } from './presence.js';
import type { Link } from './connection.js';
import type { Delivery } from './delivery.js';
import { ClientErrorCode, HeraldError, toHeraldError } from './errors.js';
import { Subscription } from './subscription.js';
import type { SubscribedInfo } from './subscription.js';

export interface SubscriptionsOptions {
  delivery: Delivery;
  /** The current connection, if any. */
  link: () => Link | undefined;
  onError: (err: HeraldError) => void;
  /** Client-level announcements. */
  onSubscribed: (info: SubscribedInfo) => void;
  onRecoveryFailed: (info: SubscribedInfo) => void;
  onUnsubscribed: (info: { channel: string }) => void;
}

/**
 * The client's channel subscriptions, one per channel: sends `subscribe` (with the position to
 * recover from) on every connection, routes channel deliveries to their subscription, and ends
 * the ones the server refuses.
 */
export class Subscriptions {
  readonly #subs = new Map<string, Subscription<any>>();
  readonly #opts: SubscriptionsOptions;

  constructor(opts: SubscriptionsOptions) {
    this.#opts = opts;
  }

  /** Returns the channel's subscription, creating it (and subscribing if connected) if needed. */
  subscribe<T>(channel: string, recover?: StreamPosition, joinLeave?: boolean): Subscription<T> {
    if (typeof channel !== 'string' || channel === '') throw new HeraldError(ErrorCode.INVALID_CHANNEL, 'channel must be a non-empty string');
    const existing = this.#subs.get(channel);
    if (existing) return existing as Subscription<T>;
    const sub = new Subscription<T>(
      channel,
      {
        unsubscribe: (s) => this.#unsubscribe(s),
        reportError: (err) => this.#opts.onError(toHeraldError(err)),
        presence: (ch, query) => askPresence(this.#opts.link(), ch, query),
        presenceStats: (ch) => askPresenceStats(this.#opts.link(), ch),
      },
      recover,
      joinLeave,
    );
    this.#subs.set(channel, sub);
    const link = this.#opts.link();
    if (link?.isOpen) this.#send(sub, link);
    return sub;
  }

  get(channel: string): Subscription<any> | undefined {
    return this.#subs.get(channel);
  }

  all(): Subscription[] {
    return [...this.#subs.values()];
  }

  /** A connection is up: subscribe everything again, asking to recover from each position. */
  linkUp(link: Link): void {
    for (const sub of this.#subs.values()) this.#send(sub, link);
  }

  linkDown(): void {
    for (const sub of this.#subs.values()) sub.suspend();
  }

  /** A `message` frame with target `channel`. */
  route(frame: MessageFrame): void {
    const sub = this.#subs.get(frame.channel as string);
    if (sub?.accept(frame)) this.#deliver(sub, frame);
  }

  /** The server ended the channel's subscription: it ends here too, with `err` as its reason. */
  ended(channel: string, err: HeraldError): void {
    const sub = this.#subs.get(channel);
    if (!sub) return;
    this.#subs.delete(channel);
    sub.end('unsubscribed', err);
    sub.events.emit('error', err);
    const info = { channel };
    sub.events.emit('unsubscribed', info);
    this.#opts.onUnsubscribed(info);
    this.#opts.onError(err);
  }

  /** A `join` or `leave` frame: to its channel's subscription, once that is confirmed. */
  routePresence(frame: JoinFrame | LeaveFrame): void {
    const sub = this.#subs.get(frame.channel);
    if (sub?.state === 'subscribed') sub.events.emit(frame.type, frame.member);
  }

  /** Ends every subscription and drops its listeners (client closed). */
  close(err: HeraldError): void {
    for (const sub of this.#subs.values()) {
      sub.end('unsubscribed', err);
      sub.events.clear();
    }
    this.#subs.clear();
  }

  #send(sub: Subscription<any>, link: Link): void {
    const recover = sub.beginSubscribe();
    link.call(
      (id) => ({ type: 'subscribe', id, channel: sub.channel, ...(recover ? { recover } : {}), ...(sub.joinLeave !== undefined ? { presence: sub.joinLeave } : {}) }),
      (reply) => {
        if (this.#subs.get(sub.channel) !== sub) return; // unsubscribed meanwhile
        if (reply instanceof HeraldError) {
          if (reply.code === ClientErrorCode.CONNECTION_LOST) return; // subscribed again on reconnect
          this.#subs.delete(sub.channel);
          sub.end('failed', reply);
          sub.events.emit('error', reply);
          this.#opts.onError(reply);
          return;
        }
        if (reply.type !== 'subscribed') {
          this.#opts.onError(new HeraldError(ErrorCode.INVALID_FRAME, `"${reply.type}" frame in reply to subscribe`));
          return;
        }
        const { info, deliver } = sub.confirm(reply);
        sub.events.emit('subscribed', info);
        this.#opts.onSubscribed(info);
        if (info.recovered === false) {
          sub.events.emit('recoveryFailed', info);
          this.#opts.onRecoveryFailed(info);
        }
        for (const m of deliver) this.#deliver(sub, m);
      },
    );
  }

  #unsubscribe(sub: Subscription<any>): Promise<void> {
    if (this.#subs.get(sub.channel) !== sub) return Promise.resolve();
    this.#subs.delete(sub.channel);
    const wasActive = sub.state === 'subscribing' || sub.state === 'subscribed';
    sub.end('unsubscribed');
    const done = (): void => {
      const info = { channel: sub.channel };
      sub.events.emit('unsubscribed', info);
      this.#opts.onUnsubscribed(info);
    };
    const link = this.#opts.link();
    if (!wasActive || !link?.isOpen) {
      done();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      link.call(
        (id) => ({ type: 'unsubscribe', id, channel: sub.channel }),
        (reply) => {
          const benign: string[] = [ClientErrorCode.CONNECTION_LOST, ErrorCode.NOT_SUBSCRIBED];
          if (reply instanceof HeraldError && !benign.includes(reply.code)) this.#opts.onError(reply);
          done();
          resolve();
        },
      );
    });
  }

  #deliver(sub: Subscription<any>, frame: MessageFrame): void {
    this.#opts.delivery.deliver(frame, (message, context) => sub.events.emit('message', message, context));
  }
}
