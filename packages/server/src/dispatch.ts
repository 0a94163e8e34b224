/**
 * Dispatch and fan-out: a dispatch from the broker is encoded once (the envelope's JSON was kept
 * from the publish, or serialized once here) into one wire frame, and the hub hands those bytes to
 * every matching local session. At-least-once dispatches go to each recipient through the
 * delivery module (tracked, retried, bounded). Long polls waiting on a channel are woken here.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReliableDelivery } from './delivery/reliable-delivery.js';
import type { Dispatch } from './engine/broker.js';
import { encodedEnvelope } from './engine/encoded-envelope.js';
import { livePoint } from './engine/recovery-seam.js';
import type { Hub } from './hub.js';
import { messageFrameBytes } from './message-frame.js';
import type { Metrics } from './metrics.js';
import type { Session } from './session.js';
import { compileFilter, type CompiledFilter } from './tag-filter.js';

/** What long polling needs: a wake-up when a message reaches a channel here. */
export interface ChannelWaits {
  /** Resolves when a message is delivered on the channel here, or after `timeoutMs`. */
  waitForChannel(channel: string, timeoutMs: number): Promise<void>;
}

export interface DispatcherOptions {
  hub: Hub;
  metrics: Metrics;
  log: FastifyBaseLogger;
  delivery: ReliableDelivery;
}

export class Dispatcher implements ChannelWaits {
  private readonly channelWaiters = new Map<string, Set<() => void>>();
  /** Dispatches fanned out this tick, for the latency histogram at flush time. */
  private acceptedThisTick: number[] = [];

  constructor(private readonly o: DispatcherOptions) {}

  waitForChannel(channel: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.channelWaiters.get(channel);
      if (!set) this.channelWaiters.set(channel, (set = new Set()));
      const waiter = () => {
        clearTimeout(timer);
        set!.delete(waiter);
        if (set!.size === 0 && this.channelWaiters.get(channel) === set) this.channelWaiters.delete(channel);
        resolve();
      };
      const timer = setTimeout(waiter, timeoutMs);
      set.add(waiter);
    });
  }

  /** Wakes every long poll now (the node is draining). */
  wakeAll(): void {
    for (const set of [...this.channelWaiters.values()]) for (const w of [...set]) w();
  }

  /** A dispatch from the broker: encode once, fan out to this node's matching sessions. */
  deliver(dispatch: Dispatch): void {
    const { hub } = this.o;
    if (dispatch.target.kind === 'channel' && this.channelWaiters.size > 0) {
      const waiters = this.channelWaiters.get(dispatch.target.channel);
      if (waiters) for (const w of [...waiters]) w();
    }
    try {
      const envelopeJson = encodedEnvelope(dispatch);
      const filter: CompiledFilter | undefined = dispatch.filter ? compileFilter(dispatch.filter) : undefined;
      const t = dispatch.target;
      let n = 0;
      if (t.kind === 'channel') {
        if (hub.channelSubscribers(t.channel) === 0) return;
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = hub.fanoutChannel(t.channel, frame, livePoint(dispatch), filter, this.reliableSender(dispatch, frame));
      } else if (t.kind === 'user') {
        if (!hub.hasUser(t.user)) return;
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = hub.fanoutUser(t.user, frame, filter, this.reliableSender(dispatch, frame));
      } else {
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = hub.fanoutAll(frame, filter, this.reliableSender(dispatch, frame));
      }
      if (n > 0) {
        this.o.metrics.deliveries.inc(n);
        this.acceptedThisTick.push(dispatch.envelope.timestamp);
      }
    } catch (err) {
      this.o.log.error({ err, msgId: dispatch.envelope.msgId }, 'delivery failed');
    }
  }

  /** After the end-of-tick flush: the latency of what this tick fanned out. */
  observeLatency(): void {
    const accepted = this.acceptedThisTick;
    if (accepted.length === 0) return;
    this.acceptedThisTick = [];
    const now = Date.now();
    for (const t of accepted) this.o.metrics.deliveryLatency.observe((now - t) / 1000);
  }

  /** For at-least-once dispatches, how each recipient is served: tracked, retried, bounded. */
  private reliableSender(dispatch: Dispatch, frame: Buffer): ((s: Session) => void) | undefined {
    if (!dispatch.reliable) return undefined;
    const { msgId } = dispatch.envelope;
    const channel = dispatch.target.kind === 'channel' ? dispatch.target.channel : undefined;
    const fromInbox = dispatch.target.kind === 'user';
    const seq = dispatch.seq;
    const delivery = this.o.delivery;
    return (s) => delivery.send(s, msgId, frame, dispatch.envelope, channel, fromInbox, seq);
  }
}
