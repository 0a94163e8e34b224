/**
 * What happened to connections, subscriptions and at-least-once messages on this node, as typed
 * events for whoever listens (the webhook outbox writer). The modules that own each fact emit
 * through the narrow `LifecycleEmitter`; listeners register with `on`, which returns a disposer.
 *
 * Emitting is synchronous and never fails the emitter: a listener that throws is reported to
 * `onListenerError` and the others still run. Events are this node's only — each node emits what
 * happened on it.
 */
import type { Tags } from '@herald/protocol';

/** `user` is absent for anonymous connections. */
export interface LifecycleEventMap {
  'connection.opened': { connectionId: string; user?: string; node: string; tags?: Tags; remoteAddress?: string };
  /** `code` is the WebSocket close code (docs/errors.md, "Close codes"). */
  'connection.closed': { connectionId: string; user?: string; node: string; code: number };
  'subscription.added': { connectionId: string; user?: string; node: string; channel: string };
  /** Only explicit unsubscribes: a closed connection's subscriptions end with its `connection.closed`. */
  'subscription.removed': { connectionId: string; user?: string; node: string; channel: string };
  /** `connectionId` is absent when the acknowledgement came over HTTP (`POST /poll/v1/inbox/ack`). */
  'message.acknowledged': { msgId: string; user?: string; connectionId?: string; channel?: string };
  'message.retries_exhausted': { msgId: string; user?: string; connectionId: string; channel?: string; attempts: number };
  /** Messages dropped from a user's inbox by `inbox.maxMessages` / `inbox.maxAgeMs`. */
  'inbox.expired': { user: string; dropped: number };
  /** From the presence module where it exists (it calls `emit` with these). */
  'presence.join': { channel: string; connectionId: string; user?: string; node?: string };
  'presence.leave': { channel: string; connectionId: string; user?: string; node?: string };
}

export type LifecycleEventName = keyof LifecycleEventMap;

export const LIFECYCLE_EVENTS: readonly LifecycleEventName[] = [
  'connection.opened',
  'connection.closed',
  'subscription.added',
  'subscription.removed',
  'message.acknowledged',
  'message.retries_exhausted',
  'inbox.expired',
  'presence.join',
  'presence.leave',
];

export type LifecycleListener<E extends LifecycleEventName> = (data: LifecycleEventMap[E], event: E) => void;

/** Listening side. */
export interface LifecycleEvents {
  on<E extends LifecycleEventName>(event: E, cb: LifecycleListener<E>): () => void;
}

/** Emitting side: what the modules that own the facts are given. */
export interface LifecycleEmitter {
  emit<E extends LifecycleEventName>(event: E, data: LifecycleEventMap[E]): void;
}

export class LifecycleBus implements LifecycleEvents, LifecycleEmitter {
  private readonly listeners = new Map<LifecycleEventName, Set<LifecycleListener<never>>>();

  constructor(private readonly onListenerError: (err: unknown, event: LifecycleEventName) => void = () => undefined) {}

  on<E extends LifecycleEventName>(event: E, cb: LifecycleListener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const entry = cb as unknown as LifecycleListener<never>;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  emit<E extends LifecycleEventName>(event: E, data: LifecycleEventMap[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const cb of set) {
      try {
        (cb as unknown as LifecycleListener<E>)(data, event);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }
}
