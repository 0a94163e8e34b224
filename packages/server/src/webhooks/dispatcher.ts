/**
 * Sends what the outbox holds: claims due entries (never more than `concurrency` in flight on this
 * node), POSTs each to its endpoint, and settles it — acknowledged on 2xx; otherwise retried after
 * an exponential backoff with jitter, or buried in the dead letters once `maxAttempts` attempts
 * were made. A slow or hanging receiver holds one slot until its timeout, never the others.
 *
 * Backoff after attempt n: d = min(maxMs, initialMs · 2^(n−1)), then a uniformly random delay in
 * [d/2, d] ("equal jitter"), so a receiver coming back is not hit by every node at once.
 */
import { setMaxListeners } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import type { ClaimedWebhook, WebhookOutbox } from '../engine/webhook-outbox.js';
import { HERALD_VERSION } from '../version.js';
import type { WebhookMetrics } from './metrics.js';
import { sendWebhook, type SendOutcome, type SendRequest } from './sender.js';
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
  concurrency: number;
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
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  /** Entries were committed on this node since the last claim began. */
  private poked = false;

  constructor(private readonly o: DispatcherOptions) {
    // Every request in flight listens on the one shutdown signal: up to `concurrency` at once is
    // expected, not a leak (Node warns past 10).
    setMaxListeners(Math.max(10, o.concurrency + 1), this.abort.signal);
  }

  /**
   * Entries were just committed on this node: claim now instead of at the next poll, so an idle
   * node sends a new event at once (the poll remains for retries coming due and peers' events).
   */
  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming and aborts requests in flight; their entries are released to be sent again. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    this.wake?.();
    await this.loop;
    await Promise.all(this.inFlight);
  }

  private async run(): Promise<void> {
    const { outbox, concurrency, pollIntervalMs, log } = this.o;
    while (this.running) {
      const free = concurrency - this.inFlight.size;
      let claimed: ClaimedWebhook[] = [];
      if (free > 0) {
        this.poked = false;
        try {
          claimed = await outbox.claim(free);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'webhook outbox: claim failed (retrying)');
        }
      }
      for (const entry of claimed) {
        if (!this.running) {
          await this.release(entry);
          continue;
        }
        const p = this.deliver(entry).finally(() => {
          this.inFlight.delete(p);
          this.wake?.();
        });
        this.inFlight.add(p);
      }
      // Claim again at once while there was work (or news of some) and room; otherwise wait for a
      // slot, a poke or the poll.
      if (this.running && (this.inFlight.size >= concurrency || (claimed.length === 0 && !this.poked))) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, pollIntervalMs);
          function done() {
            clearTimeout(t);
            resolve();
          }
          this.wake = done;
        });
        this.wake = undefined;
      }
    }
  }

  private async deliver(entry: ClaimedWebhook): Promise<void> {
    const { metrics, log } = this.o;
    const endpoint = this.o.endpoints.get(entry.endpoint);
    if (!endpoint) {
      // The endpoint left the configuration: nowhere to send it, kept for an operator to see.
      await this.settle(() => this.o.outbox.bury(entry, `endpoint "${entry.endpoint}" is not configured`), entry);
      metrics.deadLettered.inc({ endpoint: entry.endpoint });
      return;
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const type = eventTypeOf(entry.body);
    metrics.inFlight.inc();
    let outcome: SendOutcome;
    try {
      outcome = await (this.o.send ?? sendWebhook)({
        url: endpoint.url,
        body: entry.body,
        timeoutMs: endpoint.timeoutMs,
        signal: this.abort.signal,
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

function eventTypeOf(body: string): string {
  try {
    const t = (JSON.parse(body) as { type?: unknown }).type;
    return typeof t === 'string' ? t : 'unknown';
  } catch {
    return 'unknown';
  }
}
