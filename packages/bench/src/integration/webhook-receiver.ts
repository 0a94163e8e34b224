/**
 * The webhook endpoint of the `webhooks` scenario: a node:http server on loopback that answers
 * 204 at once and counts each event id once, with its end-to-end lag (the event's `createdAt` on
 * the Herald node → its arrival here; one machine, one clock). The signature is not checked: that
 * is the receiver's cost, and Herald's signing is in what is measured either way.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { newLatencyHistogram, type Histogram } from '../lib/stats.js';

export interface WebhookReceiver {
  url: string;
  /** Distinct event ids received. */
  readonly unique: number;
  /** Requests for an id already received (at-least-once resends). */
  readonly duplicates: number;
  /** Events whose first arrival here was not their first attempt (Herald-Attempt > 1). */
  readonly lateAttempts: number;
  /** performance.now() of the last new event. */
  readonly lastAt: number;
  /** Starts a new measured phase: lag histogram and counters from zero; ids seen stay seen. */
  phase(): void;
  /** Lag (createdAt → received) of the events of the current phase, µs. */
  readonly lag: Histogram;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const seen = new Set<string>();
  let unique = 0;
  let duplicates = 0;
  let lateAttempts = 0;
  let lastAt = 0;
  let lag = newLatencyHistogram();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = Date.now();
      let id = req.headers['herald-event-id'];
      let createdAt: number | undefined;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string; createdAt?: number };
        id = body.id ?? id;
        createdAt = body.createdAt;
      } catch {
        // counted by its header id alone
      }
      if (typeof id === 'string') {
        if (seen.has(id)) duplicates++;
        else {
          seen.add(id);
          unique++;
          if (Number(req.headers['herald-attempt'] ?? 1) > 1) lateAttempts++;
          lastAt = performance.now();
          if (typeof createdAt === 'number') lag.recordValue(Math.max(1, (now - createdAt) * 1000));
        }
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/herald/events`,
    get unique() {
      return unique;
    },
    get duplicates() {
      return duplicates;
    },
    get lateAttempts() {
      return lateAttempts;
    },
    get lastAt() {
      return lastAt;
    },
    get lag() {
      return lag;
    },
    phase() {
      unique = 0;
      duplicates = 0;
      lateAttempts = 0;
      lag.destroy();
      lag = newLatencyHistogram();
    },
    close: () =>
      new Promise<void>((resolve) => {
        lag.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
