/**
 * The webhook outbox's engine goes away (Redis behind a TCP proxy that drops every connection):
 * events that cannot be committed are refused out loud — counted in
 * herald_webhook_events_refused_total{reason="engine"} — the node keeps serving, and once Redis is
 * back the events committed from then on are delivered.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import pino from 'pino';
import { resolveConfig, type DeepPartial, type HeraldConfig } from '../src/config.js';
import { createRedisEngines } from '../src/engine/redis/index.js';
import { RedisWebhookOutbox } from '../src/engine/redis/webhook-outbox.js';
import type { HeraldServer } from '../src/server.js';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const redisUp = await requireRedis();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Forwards to Redis; `stop` drops every connection and refuses new ones until `resume`. */
class Proxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async listen(): Promise<void> {
    const target = new URL(REDIS_URL);
    const server = createServer((client) => {
      const upstream = netConnect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined).on('close', () => {
          client.destroy();
          upstream.destroy();
          this.sockets.delete(s);
        });
      }
      client.pipe(upstream).pipe(client);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

async function metric(s: HeraldServer, line: RegExp): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').pop()) : 0;
}

it.skipIf(!redisUp)('refuses events out loud while the engine is away, and delivers again once it is back', async () => {
  const prefix = uniquePrefix('herald-wh-outage-');
  cleanups.push(() => dropRedisKeys(prefix));
  const proxy = new Proxy();
  await proxy.listen();
  cleanups.push(() => proxy.stop());
  const r = await WebhookReceiver.start();
  cleanups.push(() => r.close());
  const overrides = {
    engine: { type: 'redis', redis: { url: REDIS_URL, prefix } },
    webhooks: { endpoints: [{ id: 'app', url: r.url, events: ['connection.opened'], secrets: [{ kid: 'k', secret: 'outage-secret-0123456789' }] }], pollIntervalMs: 20 },
  } as DeepPartial<HeraldConfig>;
  // The node's own engines on Redis directly; only its webhook outbox goes through the proxy.
  const engines = await createRedisEngines(resolveConfig(overrides), 'outage-node', pino({ level: 'silent' }));
  engines.openWebhookOutbox = (limits) => RedisWebhookOutbox.connect({ url: `redis://127.0.0.1:${proxy.port}`, prefix, commandTimeoutMs: 500 }, limits);
  const s = await startTestServer(overrides, engines);
  cleanups.push(() => s.close());

  await TestSocket.connect(s, { sub: 'before' });
  await waitFor(() => r.received.some((w) => w.event.data.user === 'before'), 10_000, 'the first event');

  await proxy.stop();
  await TestSocket.connect(s, { sub: 'during' });
  await waitFor(async () => (await metric(s, /^herald_webhook_events_refused_total\{reason="engine"\}/)) >= 1, 10_000, 'the refusal counted');
  // The node still serves connections meanwhile.
  const bystander = await TestSocket.connect(s, { sub: 'bystander' });
  expect(bystander.info.type).toBe('connected');

  await proxy.listen();
  // ioredis reconnects in the background: connect until an event is committed and delivered.
  await waitFor(async () => {
    if (r.received.some((w) => w.event.data.user === 'after')) return true;
    (await TestSocket.connect(s, { sub: 'after' })).close();
    return false;
  }, 20_000, 'an event after the engine came back', 500);
  expect(r.received.some((w) => w.event.data.user === 'during')).toBe(false);
});
