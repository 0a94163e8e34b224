/**
 * Webhook deliveries per second from the outbox: N events are committed to an engine's outbox,
 * then Herald's dispatcher sends them (signed POSTs, one connection each) to a receiver on
 * loopback answering 204 at once, and the time from the dispatcher's start to the last
 * acknowledgement is measured. The receiver runs in a child process, so it does not share the
 * dispatcher's event loop. Engines: sqlite (always), redis and nats (when reachable on loopback).
 *
 *   node packages/bench/dist/webhook-deliveries.js [--events 5000] [--concurrency 16] [--engines sqlite,redis,nats]
 */
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WebhookOutbox, WebhookOutboxLimits } from 'herald/internal/engine/webhook-outbox.js';
import { SqliteDb } from 'herald/internal/engine/sqlite/db.js';
import { SqliteWebhookOutbox } from 'herald/internal/engine/sqlite/webhook-outbox.js';
import { WebhookDispatcher } from 'herald/internal/webhooks/dispatcher.js';
import { webhookMetrics } from 'herald/internal/webhooks/metrics.js';
import { Metrics } from 'herald/internal/metrics.js';

type Log = ConstructorParameters<typeof WebhookDispatcher>[0]['log'];
const quiet = { warn: () => undefined, debug: () => undefined, info: () => undefined, error: () => undefined } as unknown as Log;

interface Args {
  events: number;
  concurrency: number;
  engines: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { events: 5000, concurrency: 16, engines: ['sqlite', 'redis', 'nats'] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--events') a.events = Number(argv[++i]);
    else if (k === '--concurrency') a.concurrency = Number(argv[++i]);
    else if (k === '--engines') a.engines = String(argv[++i]).split(',');
    else if (k === '--receiver') return a;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

const LIMITS: WebhookOutboxLimits = { leaseMs: 60_000, maxEntries: 10_000_000, maxDeadLetters: 1000 };

async function openOutbox(engine: string, dir: string, prefix: string): Promise<{ outbox: WebhookOutbox; close: () => Promise<void> }> {
  if (engine === 'sqlite') {
    const db = new SqliteDb(join(dir, 'sqlite'), 'normal');
    const outbox = new SqliteWebhookOutbox(db, LIMITS);
    return { outbox, close: async () => db.close() };
  }
  if (engine === 'redis') {
    const { RedisWebhookOutbox } = await import('herald/internal/engine/redis/webhook-outbox.js');
    const outbox = await RedisWebhookOutbox.connect({ url: 'redis://127.0.0.1:6379', prefix }, LIMITS);
    return { outbox, close: () => outbox.close() };
  }
  const { NatsWebhookOutbox } = await import('herald/internal/engine/nats/webhook-outbox.js');
  const outbox = await NatsWebhookOutbox.connect({ servers: ['nats://127.0.0.1:4222'], prefix: prefix.replace(/-/g, '_') }, LIMITS);
  return { outbox, close: () => outbox.close() };
}

/** The receiver child: answers 204 to everything and reports its port. */
function receiverMain(): void {
  void import('node:http').then(({ createServer }) => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  });
}

async function run(engine: string, args: Args, url: URL): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-wh-bench-'));
  const prefix = `herald-whbench-${randomUUID().slice(0, 8)}`;
  let opened: { outbox: WebhookOutbox; close: () => Promise<void> };
  try {
    opened = await openOutbox(engine, dir, prefix);
  } catch (err) {
    console.log(JSON.stringify({ engine, skipped: (err as Error).message }));
    return;
  }
  const { outbox } = opened;
  const body = JSON.stringify({ id: 'x', type: 'connection.opened', createdAt: Date.now(), node: 'bench', data: { connectionId: 'c', node: 'bench' } });
  for (let i = 0; i < args.events; i += 500) {
    const n = Math.min(500, args.events - i);
    await outbox.append(Array.from({ length: n }, (_, j) => ({ id: randomUUID(), endpoint: 'bench', key: `k${(i + j) % 1000}`, body })));
  }
  const metrics = webhookMetrics(new Metrics({ connections: () => 0, subscriptions: () => 0, queuedBytes: () => 0 }).registry, () => outbox.depth());
  const dispatcher = new WebhookDispatcher({
    outbox,
    endpoints: new Map([['bench', { id: 'bench', url, secrets: [{ kid: 'k', secret: 'bench-secret-0123456789' }], timeoutMs: 5000 }]]),
    retry: { initialMs: 100, maxMs: 1000, maxAttempts: 100 },
    concurrency: args.concurrency,
    endpointConcurrency: args.concurrency,
    pollIntervalMs: 5,
    metrics,
    log: quiet,
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  dispatcher.start();
  for (;;) {
    const sent = (await metrics.sent.get()).values.reduce((a, v) => a + v.value, 0);
    if (sent >= args.events && (await outbox.depth()).pending === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await dispatcher.stop();
  const failed = (await metrics.failed.get()).values.reduce((a, v) => a + v.value, 0);
  console.log(JSON.stringify({ engine, events: args.events, concurrency: args.concurrency, seconds: Number(seconds.toFixed(2)), perSecond: Math.round(args.events / seconds), failedAttempts: failed, dispatcherCpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)) }));
  await opened.close();
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  try {
    for (const engine of args.engines) await run(engine, args, new URL(`http://127.0.0.1:${port}/hook`));
  } finally {
    child.kill();
  }
}

if (process.argv.includes('--receiver')) receiverMain();
else await main();
