/**
 * Webhooks across nodes and crashes, with real engines and a real receiver:
 * - two nodes on one Redis / NATS outbox each deliver their events, every event once;
 * - a node started from the CLI and SIGKILLed while it holds events (the receiver has their
 *   requests and never answers) loses none: on Redis and NATS a peer sends them once the lease
 *   runs out, on SQLite the restarted node does — each event id answered 2xx exactly once.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeepPartial, HeraldConfig } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { CLI, freePort, startCliNode } from './helpers/processes.js';
import { API_KEY, makeToken, SECRET, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();
const WEBHOOK_SECRET = { kid: 'k1', secret: 'cluster-webhook-secret-0123' };
const LEASE_MS = 1500;

const servers: HeraldServer[] = [];
const receivers: WebhookReceiver[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];
const drops: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const p of children.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const s of servers.splice(0)) await s.close().catch(() => undefined);
  for (const r of receivers.splice(0)) await r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const d of drops.splice(0)) await d();
});

function webhooksConfig(r: WebhookReceiver) {
  return {
    endpoints: [{ id: 'app', url: r.url, events: ['connection.opened', 'connection.closed'], secrets: [WEBHOOK_SECRET], timeoutMs: 60_000 }],
    pollIntervalMs: 20,
    leaseMs: LEASE_MS,
    retry: { initialMs: 20, maxMs: 200, maxAttempts: 50 },
  };
}

async function receiver(): Promise<WebhookReceiver> {
  const r = await WebhookReceiver.start();
  receivers.push(r);
  return r;
}

/** Event ids the receiver answered 2xx, with how often each. */
function answered(r: WebhookReceiver, ok: Set<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of r.received) if (ok.has(`${w.event.id}@${w.headers['herald-attempt']}`)) counts.set(w.event.id, (counts.get(w.event.id) ?? 0) + 1);
  return counts;
}

/** Makes the receiver answer 200 from now on, remembering which requests it answered so. */
function answerOk(r: WebhookReceiver): Set<string> {
  const ok = new Set<string>();
  r.respond = (_req, _res, w) => {
    ok.add(`${w.event.id}@${w.headers['herald-attempt']}`);
    return 200;
  };
  return ok;
}

/** Holds every request open: the sender never learns the outcome. */
function hang(r: WebhookReceiver): void {
  r.respond = () => 'handled';
}

/** A connection to a node known only by its port (a child process). */
async function connectTo(port: number, sub: string): Promise<TestSocket> {
  const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
  const reply = await s.request({ type: 'connect', token: await makeToken({ sub }) });
  expect(reply.type).toBe('connected');
  return s;
}

async function cliNode(engine: Record<string, unknown>, r: WebhookReceiver, port?: number, dir?: string): Promise<{ proc: ChildProcess; port: number; dir: string }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'herald-wh-kill-'));
  if (!dir) dirs.push(d);
  const p = port ?? (await freePort());
  const file = join(d, 'node.json');
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port: p },
    auth: { jwt: { hmacSecret: SECRET } },
    api: { keys: [API_KEY] },
    engine: typeof engine.sqlite === 'object' ? { ...engine, sqlite: { ...(engine.sqlite as object), dataDir: join(d, 'data') } } : engine,
    webhooks: webhooksConfig(r),
    log: { level: 'info' },
  }));
  return { proc: await startCliNode(file, children), port: p, dir: d };
}

function clusterSuite(name: string, up: boolean, engineOf: (prefix: string) => Record<string, unknown>, drop: (prefix: string) => Promise<void>): void {
  describe.skipIf(!up)(`webhooks on ${name}`, () => {
    function engine(): Record<string, unknown> {
      const prefix = uniquePrefix(name === 'NATS' ? 'herald_wh_' : 'herald-wh-');
      drops.push(() => drop(prefix));
      return engineOf(prefix);
    }

    async function node(eng: Record<string, unknown>, r: WebhookReceiver): Promise<HeraldServer> {
      const s = await startTestServer({ engine: eng, webhooks: webhooksConfig(r) } as DeepPartial<HeraldConfig>);
      servers.push(s);
      return s;
    }

    it('two nodes share one outbox: every event of both is delivered, each once', async () => {
      const r = await receiver();
      const ok = answerOk(r);
      const eng = engine();
      const [a, b] = [await node(eng, r), await node(eng, r)];
      const ids: string[] = [];
      for (const [i, s] of [a, b, a, b, a, b].entries()) {
        const sock = await TestSocket.connect(s, { sub: `user${i}` });
        ids.push(sock.info.connectionId as string);
        sock.close();
      }
      await waitFor(() => answered(r, ok).size === 12, 15_000, '12 events answered');
      const counts = answered(r, ok);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      const seen = r.received.filter((w) => ok.has(`${w.event.id}@${w.headers['herald-attempt']}`));
      for (const id of ids) expect(seen.filter((w) => w.event.data.connectionId === id).map((w) => w.event.type).sort()).toEqual(['connection.closed', 'connection.opened']);
    });

    it.skipIf(!existsSync(CLI))('a SIGKILLed node loses no committed event: a peer sends it once the lease runs out', async () => {
      const r = await receiver();
      hang(r);
      const eng = engine();
      const doomed = await cliNode(eng, r);
      for (const u of ['k1', 'k2', 'k3']) await connectTo(doomed.port, u);
      // The node committed and claimed all three: the receiver holds their requests.
      await waitFor(() => r.received.length >= 3, 10_000, 'three held requests');
      const held = new Set(r.received.map((w) => w.event.id));
      expect(held.size).toBe(3);
      doomed.proc.kill('SIGKILL');
      await new Promise((res) => doomed.proc.once('exit', res));
      const ok = answerOk(r);
      await node(eng, r);
      await waitFor(() => [...held].every((id) => answered(r, ok).has(id)), 15_000, 'the peer to send the held events');
      const counts = answered(r, ok);
      for (const id of held) expect(counts.get(id)).toBe(1);
      // Resent as the next attempt of the same event, after the lease.
      for (const w of r.received.filter((x) => held.has(x.event.id) && ok.has(`${x.event.id}@${x.headers['herald-attempt']}`))) expect(Number(w.headers['herald-attempt'])).toBeGreaterThanOrEqual(2);
    });
  });
}

clusterSuite('Redis', redisUp, (prefix) => ({ type: 'redis', redis: { url: REDIS_URL, prefix } }), dropRedisKeys);
clusterSuite('NATS', natsUp, (prefix) => ({ type: 'nats', nats: { servers: [NATS_URL], prefix } }), dropNatsStreams);

describe('webhooks on SQLite', () => {
  it.skipIf(!existsSync(CLI))('a SIGKILLed node loses no committed event: the restarted node sends it', async () => {
    const r = await receiver();
    hang(r);
    const first = await cliNode({ type: 'sqlite', sqlite: { synchronous: 'normal' } }, r);
    for (const u of ['s1', 's2']) await connectTo(first.port, u);
    await waitFor(() => r.received.length >= 2, 10_000, 'two held requests');
    const held = new Set(r.received.map((w) => w.event.id));
    first.proc.kill('SIGKILL');
    await new Promise((res) => first.proc.once('exit', res));
    const ok = answerOk(r);
    await cliNode({ type: 'sqlite', sqlite: { synchronous: 'normal' } }, r, first.port, first.dir);
    await waitFor(() => [...held].every((id) => answered(r, ok).has(id)), 15_000, 'the restarted node to send the held events');
    for (const id of held) expect(answered(r, ok).get(id)).toBe(1);
  });
});
