/**
 * Webhooks, assembled: the writer (lifecycle events → outbox), the dispatcher (outbox → HTTP) and
 * the dead-letter operations the HTTP API exposes. Absent when `webhooks.endpoints` is empty.
 *
 * The memory engine is refused: it keeps nothing across a restart, and an outbox that forgets its
 * events on a crash would make "at least once" untrue. The start-up error says so and names the
 * engines that qualify.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import { ConfigError, type HeraldConfig } from '../config.js';
import type { DeadWebhook, WebhookOutbox, WebhookOutboxLimits } from '../engine/webhook-outbox.js';
import type { LifecycleEvents } from '../lifecycle-events.js';
import { WebhookDispatcher, type DispatchEndpoint, type DispatcherOptions } from './dispatcher.js';
import { webhookMetrics } from './metrics.js';
import { WebhookWriter } from './writer.js';

/** What the HTTP API may do with dead letters. */
export interface DeadLetterOps {
  list(limit: number): Promise<DeadWebhook[]>;
  /** Back to the outbox, attempts reset; false when unknown. */
  retry(id: string): Promise<boolean>;
  remove(id: string): Promise<boolean>;
}

export interface WebhooksOptions {
  config: Readonly<HeraldConfig>;
  engineType: string;
  openOutbox: ((limits: WebhookOutboxLimits) => Promise<WebhookOutbox>) | undefined;
  events: LifecycleEvents;
  registry: Registry;
  log: FastifyBaseLogger;
  node: string;
  /** For tests: wraps the HTTP exchange. */
  send?: DispatcherOptions['send'];
}

export class Webhooks implements DeadLetterOps {
  private constructor(
    private readonly outbox: WebhookOutbox,
    private readonly writer: WebhookWriter,
    private readonly dispatcher: WebhookDispatcher,
  ) {}

  /** Undefined when no endpoint is configured; a ConfigError for a configuration it cannot honour. */
  static async open(o: WebhooksOptions): Promise<Webhooks | undefined> {
    const w = o.config.webhooks;
    if (w.endpoints.length === 0) return undefined;
    if (!o.openOutbox) {
      throw new ConfigError(`webhooks.endpoints: engine.type "${o.engineType}" keeps nothing across a restart, so webhooks could not be delivered at least once; use engine.type sqlite, redis or nats`);
    }
    // The endpoints were checked with the rest of the configuration (config-backend.ts).
    const endpoints = new Map<string, DispatchEndpoint>();
    for (const e of w.endpoints) endpoints.set(e.id, { id: e.id, url: new URL(e.url), secrets: e.secrets, timeoutMs: e.timeoutMs ?? w.timeoutMs });
    const outbox = await o.openOutbox({ leaseMs: w.leaseMs, maxEntries: w.maxOutbox, maxDeadLetters: w.maxDeadLetters });
    const metrics = webhookMetrics(o.registry, () => outbox.depth());
    if (!outbox.orderedByKey) o.log.info(`webhooks: engine.type "${o.engineType}" does not keep per-key order (docs/integration.md#webhooks)`);
    const dispatcher = new WebhookDispatcher({
      outbox,
      endpoints,
      retry: w.retry,
      concurrency: w.concurrency,
      endpointConcurrency: Math.min(w.endpointConcurrency, w.concurrency),
      pollIntervalMs: w.pollIntervalMs,
      metrics,
      log: o.log,
      ...(o.send ? { send: o.send } : {}),
    });
    const writer = new WebhookWriter({ events: o.events, endpoints: w.endpoints, outbox, node: o.node, maxBuffered: w.maxOutbox, metrics, log: o.log, onCommitted: () => dispatcher.wake() });
    // Listening from now on, so nothing that happens before the dispatcher starts is missed.
    writer.start();
    return new Webhooks(outbox, writer, dispatcher);
  }

  /** Starts sending. */
  start(): void {
    this.dispatcher.start();
  }

  /** Commits what was emitted so far, stops sending (requests in flight are released), closes the outbox. */
  async close(): Promise<void> {
    await this.writer.close();
    await this.dispatcher.stop();
    await this.outbox.close();
  }

  list(limit: number): Promise<DeadWebhook[]> {
    return this.outbox.deadLetters(limit);
  }

  retry(id: string): Promise<boolean> {
    return this.outbox.requeue(id);
  }

  remove(id: string): Promise<boolean> {
    return this.outbox.discard(id);
  }

  depth(): Promise<{ pending: number; dead: number }> {
    return this.outbox.depth();
  }
}
