/** The webhook dispatcher's backoff, its concurrency bound and the signature header format, without a server. */
import { createHmac } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { WebhookOutbox } from '../src/engine/webhook-outbox.js';
import { backoffMs, WebhookDispatcher } from '../src/webhooks/dispatcher.js';
import { webhookMetrics } from '../src/webhooks/metrics.js';
import { pause, waitFor } from './helpers/wait.js';
import { signatureHeader } from '../src/webhooks/signature.js';
import { maskSecrets } from '../src/cli/mask.js';

describe('webhook backoff', () => {
  const retry = { initialMs: 1000, maxMs: 30_000, maxAttempts: 10 };

  it('doubles per attempt up to maxMs, each delay in the upper half of its step', () => {
    const steps = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
    steps.forEach((d, i) => {
      expect(backoffMs(i + 1, retry, () => 0)).toBe(d / 2);
      expect(backoffMs(i + 1, retry, () => 1)).toBe(d);
    });
  });

  it('stays finite for huge attempt counts', () => {
    expect(backoffMs(10_000, retry, () => 0.5)).toBe(22_500);
  });
});

describe('Herald-Signature', () => {
  it('is t, then one kid/v1 pair per secret in order, v1 the HMAC-SHA256 of "<t>.<body>"', () => {
    const body = '{"a":"ü"}';
    const h = signatureHeader([{ kid: 'new', secret: 's-new-0123456789abcdef' }, { kid: 'old', secret: 's-old-0123456789abcdef' }], 1700000000, body);
    const mac = (secret: string) => createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(h).toBe(`t=1700000000,kid=new,v1=${mac('s-new-0123456789abcdef')},kid=old,v1=${mac('s-old-0123456789abcdef')}`);
  });

  it('secrets are masked when the configuration is printed (herald config check), key ids are not', () => {
    const masked = maskSecrets({ webhooks: { endpoints: [{ id: 'app', url: 'https://u:p@example.com/x', secrets: [{ kid: 'k1', secret: 'a-very-secret-value-123' }] }] } }) as {
      webhooks: { endpoints: Array<{ url: string; secrets: Array<{ kid: string; secret: string }> }> };
    };
    expect(masked.webhooks.endpoints[0]!.secrets[0]).toEqual({ kid: 'k1', secret: '<masked: 23 characters>' });
    expect(masked.webhooks.endpoints[0]!.url).toBe('https://u:***@example.com/x');
  });
});

describe('dispatcher concurrency', () => {
  it('never has more than webhooks.concurrency requests in flight, however many endpoint loops claim at once', async () => {
    const endpoints = new Map(['a', 'b', 'c'].map((id) => [id, { id, url: new URL(`http://127.0.0.1:9/${id}`), secrets: [{ kid: 'k', secret: 'webhook-secret-0123456789' }], timeoutMs: 1000 }]));
    let next = 0;
    // Every claim answers after a turn of the event loop (as an engine does), with as many entries as asked.
    const outbox = {
      claim: async (want: Array<{ endpoint: string; limit: number }>) => {
        await new Promise((r) => setImmediate(r));
        return want.flatMap((w) => Array.from({ length: w.limit }, () => ({ id: `e${next++}`, endpoint: w.endpoint, key: 'k', body: '{"type":"x"}', createdAt: 0, attempts: 1, lease: `l${next}` })));
      },
      ack: async () => true,
      retry: async () => true,
      bury: async () => true,
    } as unknown as WebhookOutbox;
    let inFlight = 0;
    let most = 0;
    const release: Array<() => void> = [];
    const dispatcher = new WebhookDispatcher({
      outbox,
      endpoints,
      retry: { initialMs: 10, maxMs: 10, maxAttempts: 3 },
      concurrency: 10,
      endpointConcurrency: 8,
      pollIntervalMs: 5,
      metrics: webhookMetrics(new Registry(), async () => ({ pending: 0, dead: 0 })),
      log: { warn: () => {}, error: () => {}, debug: () => {}, info: () => {} } as unknown as FastifyBaseLogger,
      send: () => {
        inFlight++;
        most = Math.max(most, inFlight);
        return new Promise((resolve) => release.push(() => (inFlight--, resolve({ ok: true, status: 204 }))));
      },
    });
    dispatcher.start();
    await waitFor(() => inFlight === 10, 5000, 'the node full');
    // Let the loops try again while it is full, then free some slots and let them refill.
    for (let round = 0; round < 5; round++) {
      // Deliberate pacing: the three loops (polling every 5 ms) get turns to claim while full.
      await pause(20);
      for (const r of release.splice(0, 4)) r();
    }
    await pause(20); // the last refills
    expect(most).toBe(10);
    for (const r of release.splice(0)) r();
    const stopped = dispatcher.stop();
    for (let i = 0; i < 50 && release.length; i++) for (const r of release.splice(0)) r();
    await stopped;
  });
});
