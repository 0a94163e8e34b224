/** The webhook metrics (herald_webhook_*), on the node's registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface WebhookMetrics {
  appended: Counter<'event'>;
  refused: Counter<'reason'>;
  sent: Counter<'endpoint'>;
  failed: Counter<'endpoint' | 'reason'>;
  deadLettered: Counter<'endpoint'>;
  inFlight: Gauge;
}

export function webhookMetrics(registry: Registry, depth: () => Promise<{ pending: number; dead: number }>): WebhookMetrics {
  const registers = [registry];
  // One engine read per scrape feeds both gauges.
  let last: Promise<{ pending: number; dead: number }> | undefined;
  const read = () => (last ??= depth().finally(() => setImmediate(() => (last = undefined))));
  new Gauge({
    name: 'herald_webhook_outbox_depth',
    help: 'Webhook events waiting in the outbox (all nodes of a shared engine), claimed or not',
    registers,
    async collect() {
      this.set((await read().catch(() => ({ pending: NaN }))).pending);
    },
  });
  new Gauge({
    name: 'herald_webhook_dead_letters',
    help: 'Webhook events in the dead-letter list',
    registers,
    async collect() {
      this.set((await read().catch(() => ({ dead: NaN }))).dead);
    },
  });
  return {
    appended: new Counter({ name: 'herald_webhook_events_total', help: 'Webhook events committed to the outbox, by event type (one per endpoint)', labelNames: ['event'], registers }),
    refused: new Counter({ name: 'herald_webhook_events_refused_total', help: 'Webhook events not committed: outbox full (webhooks.maxOutbox) or the engine failed', labelNames: ['reason'], registers }),
    sent: new Counter({ name: 'herald_webhook_sent_total', help: 'Webhook deliveries answered 2xx', labelNames: ['endpoint'], registers }),
    failed: new Counter({ name: 'herald_webhook_failed_total', help: 'Webhook attempts that failed (status, timeout, network)', labelNames: ['endpoint', 'reason'], registers }),
    deadLettered: new Counter({ name: 'herald_webhook_dead_lettered_total', help: 'Webhook events moved to the dead letters after webhooks.retry.maxAttempts', labelNames: ['endpoint'], registers }),
    inFlight: new Gauge({ name: 'herald_webhook_in_flight', help: 'Webhook requests this node has in flight', registers }),
  };
}
