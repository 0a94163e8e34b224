/**
 * Turns lifecycle events into outbox records: one per endpoint that asked for the event type,
 * each with its own id (the receiver's idempotency key). Records of one tick are committed in one
 * `append`; an event is committed (and from then on delivered at least once) when it resolves.
 * While an append is slow, at most `maxBuffered` records wait here; past that, and when the engine
 * refuses or fails, events are counted in herald_webhook_events_refused_total and logged.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { WebhookOutbox, WebhookRecord } from '../engine/webhook-outbox.js';
import { LIFECYCLE_EVENTS, type LifecycleEventMap, type LifecycleEventName, type LifecycleEvents } from '../lifecycle-events.js';
import type { WebhookMetrics } from './metrics.js';

export interface WriterEndpoint {
  id: string;
  events: readonly string[];
}

export interface WriterOptions {
  events: LifecycleEvents;
  endpoints: readonly WriterEndpoint[];
  outbox: Pick<WebhookOutbox, 'append'>;
  node: string;
  maxBuffered: number;
  metrics: WebhookMetrics;
  log: FastifyBaseLogger;
  /** Called when an append committed at least one record (the dispatcher claims at once). */
  onCommitted?: () => void;
}

/** The body every endpoint receives (api/webhook-event.schema.json). */
export interface WebhookEventBody<E extends LifecycleEventName = LifecycleEventName> {
  id: string;
  type: E;
  /** When the event happened on the node (ms since the epoch). */
  createdAt: number;
  node: string;
  data: LifecycleEventMap[E];
}

/** The ordering key: events about one connection, one user or one channel stay in order. */
export function orderingKey<E extends LifecycleEventName>(event: E, data: LifecycleEventMap[E]): string {
  const d = data as Partial<Record<'connectionId' | 'user' | 'channel', string>>;
  switch (event) {
    case 'message.acknowledged':
    case 'message.retries_exhausted':
    case 'inbox.expired':
      return d.user ? `user:${d.user}` : `conn:${d.connectionId ?? ''}`;
    case 'presence.join':
    case 'presence.leave':
      return `channel:${d.channel ?? ''}`;
    default:
      return `conn:${d.connectionId ?? ''}`;
  }
}

export class WebhookWriter {
  private buffer: Array<WebhookRecord & { type: LifecycleEventName }> = [];
  private scheduled = false;
  /** Records buffered or in an append not yet answered: what `maxBuffered` bounds. */
  private held = 0;
  private readonly pending = new Set<Promise<void>>();
  private readonly disposers: Array<() => void> = [];

  constructor(private readonly o: WriterOptions) {}

  start(): void {
    for (const event of LIFECYCLE_EVENTS) {
      const targets = this.o.endpoints.filter((e) => e.events.includes('*') || e.events.includes(event)).map((e) => e.id);
      if (targets.length === 0) continue;
      this.disposers.push(this.o.events.on(event, (data) => this.add(event, data, targets)));
    }
  }

  /** Stops listening and waits until every record taken so far was appended (or refused). */
  async close(): Promise<void> {
    for (const d of this.disposers.splice(0)) d();
    this.flush();
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private add<E extends LifecycleEventName>(type: E, data: LifecycleEventMap[E], targets: readonly string[]): void {
    const createdAt = Date.now();
    const key = orderingKey(type, data);
    for (const endpoint of targets) {
      if (this.held >= this.o.maxBuffered) {
        this.o.metrics.refused.inc({ reason: 'buffer_full' });
        this.o.log.warn({ type, endpoint }, 'webhook event refused: the outbox is not keeping up');
        continue;
      }
      const id = randomUUID();
      const body: WebhookEventBody<E> = { id, type, createdAt, node: this.o.node, data };
      this.buffer.push({ id, endpoint, key, body: JSON.stringify(body), type });
      this.held++;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.buffer;
    if (batch.length === 0) return;
    this.buffer = [];
    const records = batch.map(({ type: _type, ...r }) => r);
    const p = this.o.outbox
      .append(records)
      .then(({ stored, refused }) => {
        for (const r of batch.slice(0, stored)) this.o.metrics.appended.inc({ event: r.type });
        if (stored > 0) this.o.onCommitted?.();
        if (refused > 0) {
          this.o.metrics.refused.inc({ reason: 'outbox_full' }, refused);
          this.o.log.warn({ refused }, 'webhook events refused: the outbox is full (webhooks.maxOutbox)');
        }
      })
      .catch((err: unknown) => {
        this.o.metrics.refused.inc({ reason: 'engine' }, batch.length);
        this.o.log.error({ err: (err as Error).message, events: batch.length }, 'webhook events not committed: the engine failed');
      })
      .finally(() => {
        this.held -= batch.length;
        this.pending.delete(p);
      });
    this.pending.add(p);
  }
}
