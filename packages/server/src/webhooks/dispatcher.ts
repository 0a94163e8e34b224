/**
 * Sends what the outbox holds: claims due entries (never more than `concurrency` in flight on this
 * node, nor more than `endpointConcurrency` to one endpoint), POSTs each to its endpoint, and settles it — acknowledged on 2xx; otherwise retried after
 * an exponential backoff with jitter, or buried in the dead letters once `maxAttempts` attempts
 * were made. A slow or hanging receiver holds one slot until its timeout, never the others.
 *
 * Backoff after attempt n: d = min(maxMs, initialMs · 2^(n−1)), then a uniformly random delay in
 * [d/2, d] ("equal jitter"), so a receiver coming back is not hit by every node at once.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ClaimedWebhook, WebhookOutbox } from '../engine/webhook-outbox.js';
import { HERALD_VERSION } from '../version.js';
import type { WebhookMetrics } from './metrics.js';
import { setMaxListeners } from 'node:events';
import type { Agent } from 'node:http';
import { endpointAgent, sendWebhook, type SendOutcome, type SendRequest } from './sender.js';
import { webhookEventType } from './event-type.js';
import { signatureHeader, type WebhookSecret } from './signature.js';

export interface DispatchEndpoint {
  id: string;
  url: URL;
  secrets: readonly WebhookSecret[];
  timeoutMs: number;
}

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
  maxAttempts: number;
}

export interface DispatcherOptions {
  outbox: WebhookOutbox;
  endpoints: ReadonlyMap<string, DispatchEndpoint>;
  retry: RetryPolicy;
  /** Requests in flight on this node, over all endpoints. */
  concurrency: number;
  /** Requests in flight on this node to one endpoint. */
  endpointConcurrency: number;
  pollIntervalMs: number;
  metrics: WebhookMetrics;
  log: FastifyBaseLogger;
  /** The HTTP exchange; tests may wrap it. */
  send?: (req: SendRequest) => Promise<SendOutcome>;
  random?: () => number;
}

export function backoffMs(attempts: number, retry: RetryPolicy, random: () => number = Math.random): number {
  const d = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(Math.max(0, attempts - 1), 40));
  return Math.round(d / 2 + random() * (d / 2));
}

export class WebhookDispatcher {
  private running = false;
  private loops: Array<Promise<void>> = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perEndpoint = new Map<string, number>();
  /** Slots promised to claims still waiting on the outbox, so loops claiming at once share the node's concurrency. */
  private reserved = 0;
  private readonly abort = new AbortController();
  private readonly wakers = new Set<() => void>();
  private readonly agents = new Map<string, Agent>();

  constructor(private readonly o: DispatcherOptions) {
    // One listener per request in flight.
    setMaxListeners(0, this.abort.signal);
    for (const e of o.endpoints.values()) this.agents.set(e.id, endpointAgent(e.url, Math.min(o.endpointConcurrency, o.concurrency)));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // One claim loop per endpoint: an endpoint that hangs fills only its own slots
    // (endpointConcurrency), and a claim that waits (NATS) waits for that endpoint only.
    this.loops = [...this.o.endpoints.keys()].map((id) => this.run(id));
  }

  /** Stops claiming and aborts requests in flight; their entries are released to be sent again. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    this.wakeAll();
    await Promise.all(this.loops);
    await Promise.all(this.inFlight);
    for (const a of this.agents.values()) a.destroy();
  }

  /** New events were committed on this node: look now rather than at the next poll. */
  wake(): void {
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const w of [...this.wakers]) w();
  }

  private async run(endpoint: string): Promise<void> {
    const { outbox, concurrency, endpointConcurrency, pollIntervalMs, log } = this.o;
    while (this.running) {
      const mine = this.perEndpoint.get(endpoint) ?? 0;
      const free = Math.min(endpointConcurrency - mine, concurrency - this.inFlight.size - this.reserved);
      let claimed: ClaimedWebhook[] = [];
      if (free > 0) {
        this.reserved += free;
        try {
          claimed = await outbox.claim([{ endpoint, limit: free }]);
        } catch (err) {
          log.warn({ err: (err as Error).message, endpoint }, 'webhook outbox: claim failed (retrying)');
        } finally {
          this.reserved -= free;
        }
      }
      for (const entry of claimed) {
        if (!this.running) {
          await this.release(entry);
          continue;
        }
        this.perEndpoint.set(endpoint, (this.perEndpoint.get(endpoint) ?? 0) + 1);
        const p = this.deliver(entry)
          .catch((err: unknown) => log.error({ err, eventId: entry.id }, 'webhook delivery failed unexpectedly; its lease runs out and it is sent again'))
          .finally(() => {
            this.inFlight.delete(p);
            this.perEndpoint.set(endpoint, (this.perEndpoint.get(endpoint) ?? 1) - 1);
            this.wakeAll();
          });
        this.inFlight.add(p);
      }
      // Claim again at once while there was work and room; otherwise wait for a slot or the poll.
      const full = (this.perEndpoint.get(endpoint) ?? 0) >= endpointConcurrency || this.inFlight.size + this.reserved >= concurrency;
      if (this.running && (claimed.length === 0 || full)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t);
            this.wakers.delete(done);
            resolve();
          };
          const t = setTimeout(done, pollIntervalMs);
          this.wakers.add(done);
        });
      }
    }
  }

  private async deliver(entry: ClaimedWebhook): Promise<void> {
    const { metrics, log } = this.o;
    // Claimed only for configured endpoints (one loop each).
    const endpoint = this.o.endpoints.get(entry.endpoint)!;
    const timestamp = Math.floor(Date.now() / 1000);
    const type = webhookEventType(entry.body) ?? 'unknown';
    metrics.inFlight.inc();
    let outcome: SendOutcome;
    try {
      outcome = await (this.o.send ?? sendWebhook)({
        url: endpoint.url,
        body: entry.body,
        timeoutMs: endpoint.timeoutMs,
        signal: this.abort.signal,
        agent: this.agents.get(endpoint.id)!,
        headers: {
          'user-agent': `Herald-Webhooks/${HERALD_VERSION}`,
          'herald-event-id': entry.id,
          'herald-event-type': type,
          'herald-attempt': String(entry.attempts),
          'herald-signature': signatureHeader(endpoint.secrets, timestamp, entry.body),
        },
      });
    } finally {
      metrics.inFlight.dec();
    }
    if (outcome.ok) {
      metrics.sent.inc({ endpoint: endpoint.id });
      await this.settle(() => this.o.outbox.ack(entry), entry);
      return;
    }
    if (!this.running) {
      await this.release(entry);
      return;
    }
    metrics.failed.inc({ endpoint: endpoint.id, reason: outcome.reason });
    if (entry.attempts >= this.o.retry.maxAttempts) {
      log.warn({ endpoint: endpoint.id, eventId: entry.id, attempts: entry.attempts, error: outcome.error }, 'webhook: retries exhausted, moved to the dead letters');
      metrics.deadLettered.inc({ endpoint: endpoint.id });
      await this.settle(() => this.o.outbox.bury(entry, outcome.error), entry);
      return;
    }
    const delay = backoffMs(entry.attempts, this.o.retry, this.o.random);
    log.debug({ endpoint: endpoint.id, eventId: entry.id, attempts: entry.attempts, error: outcome.error, delay }, 'webhook attempt failed');
    await this.settle(() => this.o.outbox.retry(entry, delay, outcome.error), entry);
  }

  /** Gives a claimed entry back without counting against it beyond its claim: due again now. */
  private release(entry: ClaimedWebhook): Promise<void> {
    return this.settle(() => this.o.outbox.retry(entry, 0, 'released: the node stopped'), entry);
  }

  private async settle(op: () => Promise<boolean>, entry: ClaimedWebhook): Promise<void> {
    try {
      // false: the lease ran out and a peer has the entry now; it sends it again (at least once).
      if (!(await op())) this.o.log.warn({ eventId: entry.id }, 'webhook: lease lost before settling; a peer may send it again');
    } catch (err) {
      // The engine failed: the lease runs out and the entry is sent again.
      this.o.log.warn({ err: (err as Error).message, eventId: entry.id }, 'webhook outbox: settle failed');
    }
  }
}
