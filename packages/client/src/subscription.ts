import type { Envelope, MessageFrame, PresenceMember, StreamPosition, SubscribedFrame } from '@herald/protocol';
import type { PresencePage, PresenceQuery, PresenceStats } from './presence.js';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from './errors.js';
import { Emitter } from './events.js';
import type { Disposer } from './events.js';
import type { MessageContext } from './delivery.js';

export type SubscriptionState = 'pending' | 'subscribing' | 'subscribed' | 'unsubscribed' | 'failed';

export interface SubscribedInfo {
  channel: string;
  /** Position after the last message this subscription has been given. */
  position: StreamPosition;
  /** Set when recovery was asked: false means messages were lost while away (reload state). */
  recovered: boolean | undefined;
}

export type SubscriptionEvents<T> = {
  message: [message: Envelope<T>, context: MessageContext];
  subscribed: [info: SubscribedInfo];
  /** Recovery after a reconnect could not return every missed message: reload the channel's state. */
  recoveryFailed: [info: SubscribedInfo];
  unsubscribed: [info: { channel: string }];
  error: [error: HeraldError];
  /** A member joined the channel (subscribe with `presence: true`, or a namespace with `joinLeave`). */
  join: [member: PresenceMember];
  /** A member left: exactly one per join, also when its server died. */
  leave: [member: PresenceMember];
};

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  unsubscribe(sub: Subscription<any>): Promise<void>;
  reportError(err: unknown): void;
  presence(channel: string, query: PresenceQuery): Promise<PresencePage>;
  presenceStats(channel: string): Promise<PresenceStats>;
}

/**
 * A channel subscription. It outlives connections: after every reconnect the client subscribes
 * again, asking to recover from the last position seen, and the subscription merges the recovered
 * messages with live ones so that each is delivered once, in stream order.
 */
export class Subscription<T = unknown> {
  readonly channel: string;
  readonly #events: Emitter<SubscriptionEvents<T>>;
  readonly #host: SubscriptionHost;
  #state: SubscriptionState = 'pending';
  #position: StreamPosition | undefined;
  /** Live messages that arrived while a `subscribe` was in flight. */
  #buffer: MessageFrame[] | undefined;
  #waiters: { resolve: () => void; reject: (err: HeraldError) => void }[] = [];

  /** @internal What `subscribe` asked about join/leave frames (undefined: the namespace decides). */
  readonly joinLeave: boolean | undefined;

  /** @internal Created by `HeraldClient.subscribe()`. */
  constructor(channel: string, host: SubscriptionHost, recoverFrom?: StreamPosition, joinLeave?: boolean) {
    this.joinLeave = joinLeave;
    this.channel = channel;
    this.#host = host;
    this.#position = recoverFrom;
    this.#events = new Emitter((err) => host.reportError(err));
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  /** Position of the last message delivered (or of the subscribe point); recovery resumes after it. */
  get position(): StreamPosition | undefined {
    return this.#position && { ...this.#position };
  }

  on<K extends keyof SubscriptionEvents<T>>(event: K, listener: (...args: SubscriptionEvents<T>[K]) => unknown): Disposer {
    return this.#events.on(event, listener);
  }

  /** Resolves when the server has confirmed the subscription (at once if it already has). */
  ready(): Promise<void> {
    if (this.#state === 'subscribed') return Promise.resolve();
    if (this.#state === 'unsubscribed' || this.#state === 'failed') {
      return Promise.reject(new HeraldError(ErrorCode.NOT_SUBSCRIBED, `subscription to "${this.channel}" is ${this.#state}`));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** A page of the channel's members, cluster-wide (the namespace must have presence on). */
  presence(query: PresenceQuery = {}): Promise<PresencePage> {
    return this.#host.presence(this.channel, query);
  }

  /** The channel's member counts, cluster-wide. */
  presenceStats(): Promise<PresenceStats> {
    return this.#host.presenceStats(this.channel);
  }

  /** Stops delivery and tells the server; resolves when it confirmed (or at once when offline). */
  unsubscribe(): Promise<void> {
    return this.#host.unsubscribe(this);
  }

  /** @internal */
  get events(): Emitter<SubscriptionEvents<T>> {
    return this.#events;
  }

  /** @internal A `subscribe` frame is being sent; returns the position to recover from. */
  beginSubscribe(): StreamPosition | undefined {
    this.#state = 'subscribing';
    this.#buffer = [];
    return this.#position;
  }

  /** @internal The connection dropped: wait for the next one. */
  suspend(): void {
    if (this.#state === 'subscribing' || this.#state === 'subscribed') this.#state = 'pending';
    this.#buffer = undefined;
  }

  /**
   * @internal The server confirmed. Returns the messages to deliver, in order: recovered ones,
   * then live ones buffered meanwhile, without any at or before the last position seen.
   */
  confirm(frame: SubscribedFrame): { info: SubscribedInfo; deliver: MessageFrame[] } {
    const buffered = this.#buffer ?? [];
    this.#buffer = undefined;
    this.#state = 'subscribed';
    // Without a position of our own (first subscribe, or recovery impossible) nothing delivered
    // now can be a repeat: take everything the server sent, then continue from its position.
    if (frame.recovered === false) this.#position = undefined;
    const deliver: MessageFrame[] = [];
    for (const m of [...(frame.publications ?? []), ...buffered]) if (this.#advance(m)) deliver.push(m);
    const p = this.#position;
    if (!p || p.epoch !== frame.position.epoch || p.offset < frame.position.offset) this.#position = { ...frame.position };
    const position = this.#position ?? frame.position;
    const info: SubscribedInfo = { channel: this.channel, position: { ...position }, recovered: frame.recovered };
    for (const w of this.#waiters.splice(0)) w.resolve();
    return { info, deliver };
  }

  /** @internal A live message for this channel: whether to deliver it now. */
  accept(frame: MessageFrame): boolean {
    if (this.#state === 'subscribing' && this.#buffer) {
      this.#buffer.push(frame);
      return false;
    }
    if (this.#state !== 'subscribed') return false;
    return this.#advance(frame);
  }

  /** @internal The subscription ended for good (`unsubscribed` or `failed`). */
  end(state: 'unsubscribed' | 'failed', error?: HeraldError): void {
    this.#state = state;
    this.#buffer = undefined;
    const reason = error ?? new HeraldError(ErrorCode.NOT_SUBSCRIBED, `subscription to "${this.channel}" was ${state}`);
    for (const w of this.#waiters.splice(0)) w.reject(reason);
  }

  /** Moves the position past `m` if `m` is after it; false for a message already seen. */
  #advance(m: MessageFrame): boolean {
    if (m.offset === undefined || m.epoch === undefined) return true;
    const p = this.#position;
    if (p && p.epoch === m.epoch && m.offset <= p.offset) return false;
    this.#position = { offset: m.offset, epoch: m.epoch };
    return true;
  }
}
