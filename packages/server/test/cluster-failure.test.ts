/**
 * Failure tests with three nodes over the real Redis (and NATS, where the same story applies):
 *
 * 1. The broker becomes unreachable (a TCP proxy we control sits between each node and the
 *    broker; cutting it resets every connection and refuses new ones until restored). HTTP publish
 *    must answer a prompt, retryable 503 `broker_unavailable` — never a 2xx that is then lost;
 *    WebSocket connections stay up; when the broker returns, nodes resubscribe, close channel
 *    subscribers with 4005, and the SDK client reconnects and recovers what it missed from history.
 * 2. A node is killed with SIGKILL (nodes are child processes of the built CLI): the SDK client,
 *    connected through a small TCP load balancer that forwards to the first live node, reconnects
 *    to another node and recovers; a numbered stream published through the other nodes' HTTP APIs
 *    before, during and after the kill arrives exactly once and in order.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '@herald/client';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { CLI, freePort, startCliNode } from './helpers/processes.js';
import { API_KEY, makeToken, SECRET, startTestServer, TestSocket } from './helpers/server.js';
import { pause, waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();

// ---- helpers -------------------------------------------------------------------------------------

/** A TCP proxy to one upstream that the test can cut (reset everything, refuse new) and restore. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private cut = false;
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(upstreamHost: string, upstreamPort: number): Promise<CuttableProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new CuttableProxy(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => {
      if (proxy.cut) {
        client.destroy();
        return;
      }
      const upstream = netConnect({ host: upstreamHost, port: upstreamPort });
      proxy.track(client);
      proxy.track(upstream);
      client.pipe(upstream).pipe(client);
      const kill = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', kill).on('close', kill);
      upstream.on('error', kill).on('close', kill);
    });
    return proxy;
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }

  /** Broker "down": every open connection is reset and new ones are refused. */
  down(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A tiny L4 load balancer: each new connection goes to the first backend that accepts it. */
class FirstLiveBalancer {
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(backends: number[]): Promise<FirstLiveBalancer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const lb = new FirstLiveBalancer(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => {
      lb.sockets.add(client);
      client.on('close', () => lb.sockets.delete(client));
      client.on('error', () => client.destroy());
      client.pause();
      const tryBackend = (i: number) => {
        if (i >= backends.length) {
          client.destroy();
          return;
        }
        const upstream = netConnect({ host: '127.0.0.1', port: backends[i]! });
        upstream.once('error', () => {
          if (!upstream.readyState.includes('open')) tryBackend(i + 1);
        });
        upstream.once('connect', () => {
          upstream.removeAllListeners('error');
          lb.sockets.add(upstream);
          upstream.on('close', () => {
            lb.sockets.delete(upstream);
            client.destroy();
          });
          upstream.on('error', () => upstream.destroy());
          client.on('close', () => upstream.destroy());
          client.pipe(upstream).pipe(client);
          client.resume();
        });
      };
      tryBackend(0);
    });
    return lb;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Attempt {
  status: number;
  code?: string;
  temporary?: boolean;
  ms: number;
}

/** POSTs a publish with a fixed msgId until a 2xx; every answer is recorded. */
async function publishUntilAccepted(bases: string[], body: object, attempts: Attempt[]): Promise<void> {
  let k = 0;
  let refused: string | undefined;
  await waitFor(
    async () => {
      const base = bases[k++ % bases.length]!;
      const t0 = Date.now();
      try {
        const res = await fetch(`${base}/api/v1/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        const err = res.ok ? undefined : (JSON.parse(text) as { error?: { code?: string; temporary?: boolean } }).error;
        attempts.push({ status: res.status, ...(err?.code ? { code: err.code } : {}), ...(err?.temporary !== undefined ? { temporary: err.temporary } : {}), ms: Date.now() - t0 });
        if (res.status < 500 && !res.ok) refused = `refused: ${res.status} ${text}`;
        return res.ok || refused !== undefined;
      } catch {
        attempts.push({ status: 0, ms: Date.now() - t0 }); // connection refused/reset (a killed node)
        return false;
      }
    },
    60_000,
    `the publish ${JSON.stringify(body)} to be accepted`,
    50,
  );
  if (refused) throw new Error(refused);
}

/**
 * Publishes a marker to `channel` through `base` and waits for `sdk` to get it: a duplicate of
 * anything published there earlier would have arrived first.
 */
async function markAfter(base: string, channel: string, sdk: ReturnType<typeof sdkClient>): Promise<void> {
  const res = await fetch(`${base}/api/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ channel, eventType: 'marker', payload: null }),
  });
  expect(res.status).toBe(200);
  const { msgId } = (await res.json()) as { msgId: string };
  await waitFor(() => sdk.markers.includes(msgId), 15_000, `the marker on ${channel}`);
}

function sdkClient(url: string, token: string, channel: string) {
  const client = new HeraldClient({ url, WebSocket: WebSocket as never, token, reconnect: { strategy: 'fixed', delay: 100, maxAttempts: 1000 } });
  const seen: number[] = [];
  const closes: number[] = [];
  let recoveryFailed = 0;
  let subscribed = 0;
  const sub = client.subscribe<{ i: number }>(channel);
  sub.on('subscribed', () => void subscribed++);
  const markers: string[] = [];
  sub.on('message', (m) => void (m.eventType === 'marker' ? markers.push(m.msgId) : seen.push(m.payload.i)));
  sub.on('recoveryFailed', () => void recoveryFailed++);
  client.on('disconnected', (d) => void closes.push(d.code));
  const node = () => (client.state.status === 'connected' ? client.state.node : undefined);
  return { client, seen, markers, node, closes, recoveryFailed: () => recoveryFailed, subscribed: () => subscribed };
}

const range = (n: number) => Array.from({ length: n }, (_, k) => k + 1);

interface EngineCase {
  name: 'redis' | 'nats';
  up: boolean;
  upstream: { host: string; port: number };
  engine(prefix: string, port: number): Record<string, unknown>;
  cleanup(prefix: string): Promise<void>;
}

const ENGINES: EngineCase[] = [
  {
    name: 'redis',
    up: redisUp,
    upstream: { host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379) },
    engine: (prefix, port) => ({ type: 'redis', redis: { url: `redis://127.0.0.1:${port}`, prefix, presenceTtlMs: 3000 } }),
    cleanup: async (prefix) => {
      await dropRedisKeys(prefix);
    },
  },
  {
    name: 'nats',
    up: natsUp,
    upstream: { host: new URL(NATS_URL).hostname, port: Number(new URL(NATS_URL).port || 4222) },
    engine: (prefix, port) => ({ type: 'nats', nats: { servers: [`nats://127.0.0.1:${port}`], prefix } }),
    cleanup: (prefix) => dropNatsStreams(prefix),
  },
];

// ---- 1. the broker becomes unreachable -----------------------------------------------------------

for (const ec of ENGINES) {
  describe.skipIf(!ec.up)(`broker outage with three nodes (${ec.name})`, () => {
    const prefix = uniquePrefix(ec.name === 'nats' ? 'herald_fail_' : 'herald-fail-');
    const proxies: CuttableProxy[] = [];
    const nodes: HeraldServer[] = [];
    const closers: Array<() => void> = [];

    afterAll(async () => {
      for (const c of closers) c();
      await Promise.all(nodes.map((n) => n.close()));
      await Promise.all(proxies.map((p) => p.close()));
      await ec.cleanup(prefix);
    });

    async function cluster(): Promise<[HeraldServer, HeraldServer, HeraldServer]> {
      if (nodes.length === 0) {
        for (const name of ['fail-a', 'fail-b', 'fail-c']) {
          const proxy = await CuttableProxy.start(ec.upstream.host, ec.upstream.port);
          proxies.push(proxy);
          nodes.push(await startTestServer({ server: { nodeName: name }, engine: ec.engine(prefix, proxy.port), channels: { history: { size: 10_000, ttlMs: 600_000 }, maxRecover: 10_000 } }));
        }
      }
      return nodes as [HeraldServer, HeraldServer, HeraldServer];
    }

    it('every node loses the broker: publish answers 503 broker_unavailable promptly, sockets stay up, the client recovers everything accepted', async () => {
      const [a, b, c] = await cluster();
      const channel = 'outage:all';
      const sdk = sdkClient(c.wsUrl, await makeToken({ sub: 'watcher', channels: ['outage:*'] }), channel);
      closers.push(() => sdk.client.close());
      await sdk.client.connect();
      await waitFor(() => sdk.subscribed() > 0, 10_000, 'subscribed');
      const idle = await TestSocket.connect(b, { sub: 'idle' }); // no channel subscriptions
      closers.push(() => idle.close());
      let idleClosed = false;
      void idle.closed.then(() => (idleClosed = true));

      const N = 60;
      const attempts: Attempt[] = [];
      let outage: Promise<void> | undefined;
      let duringOutage: { sdkState: string; idleOpen: boolean } | undefined;
      for (let i = 1; i <= N; i++) {
        if (i === 20) {
          for (const p of proxies) p.down();
          // The outage's length is the test's own doing: its sockets must survive a while of it.
          outage = (async () => {
            await pause(800);
            duringOutage = { sdkState: sdk.client.state.status, idleOpen: idle.ws.readyState === WebSocket.OPEN };
            await pause(700);
            for (const p of proxies) p.up();
          })();
        }
        await publishUntilAccepted([a.url], { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-all-${i}` }, attempts);
      }
      await outage;
      await waitFor(() => sdk.seen.length >= N, 15_000, `${N} messages (have ${sdk.seen.length})`);
      await markAfter(a.url, channel, sdk);

      const failures = attempts.filter((x) => x.status !== 200);
      expect(failures.length).toBeGreaterThan(0); // the outage really refused publishes
      for (const f of failures) expect(f).toMatchObject({ status: 503, code: 'broker_unavailable', temporary: true });
      expect(Math.max(...failures.map((f) => f.ms))).toBeLessThan(3500); // prompt, not a hang
      expect(duringOutage).toEqual({ sdkState: 'connected', idleOpen: true });
      expect(sdk.seen).toEqual(range(N)); // every accepted message, once, in order
      expect(sdk.recoveryFailed()).toBe(0);
      expect(idleClosed).toBe(false); // a connection without channel subscriptions is never touched
    }, 60_000);

    it('one node loses the broker: the others keep accepting; its subscriber is asked to reconnect (4005) and recovers the gap', async () => {
      const [a, b, c] = await cluster();
      const channel = 'outage:one';
      const sdk = sdkClient(c.wsUrl, await makeToken({ sub: 'watcher2', channels: ['outage:*'] }), channel);
      closers.push(() => sdk.client.close());
      await sdk.client.connect();
      await waitFor(() => sdk.subscribed() > 0, 10_000, 'subscribed');

      const N = 40;
      const attempts: Attempt[] = [];
      let onC: Attempt[] = [];
      for (let i = 1; i <= N; i++) {
        if (i === 10) {
          proxies[2]!.down();
          onC = [];
          await publishUntilAccepted([a.url], { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-one-${i}` }, attempts);
          // C itself cannot accept: it answers 503 at once.
          const t0 = Date.now();
          const res = await fetch(`${c.url}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ channel, eventType: 'n', payload: { i: -1 } }) });
          onC.push({ status: res.status, ...((await res.json()) as { error: { code: string; temporary: boolean } }).error, ms: Date.now() - t0 });
          continue;
        }
        if (i === 25) {
          expect(sdk.client.state.status).toBe('connected'); // C's socket stayed up through its outage
          expect(sdk.seen.length).toBeLessThan(i - 1); // and it missed live messages meanwhile
          proxies[2]!.up();
        }
        await publishUntilAccepted([a.url, b.url], { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-one-${i}` }, attempts);
      }
      await waitFor(() => sdk.seen.length >= N, 15_000, `${N} messages (have ${sdk.seen.length})`);
      await markAfter(a.url, channel, sdk);

      expect(attempts.every((x) => x.status === 200)).toBe(true); // A and B never refused
      expect(onC).toHaveLength(1);
      expect(onC[0]).toMatchObject({ status: 503, code: 'broker_unavailable', temporary: true });
      expect(onC[0]!.ms).toBeLessThan(3500);
      expect(sdk.closes).toContain(4005);
      expect(sdk.seen).toEqual(range(N));
      expect(sdk.recoveryFailed()).toBe(0);
    }, 60_000);
  });
}

// ---- 2. a node is killed with SIGKILL ------------------------------------------------------------

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});


const startNode = (configFile: string): Promise<ChildProcess> => startCliNode(configFile, children);

for (const ec of ENGINES) {
  describe.skipIf(!ec.up || !existsSync(CLI))(`SIGKILL of one node of three (${ec.name}, child processes)`, () => {
    const prefix = uniquePrefix(ec.name === 'nats' ? 'herald_kill_' : 'herald-kill-');
    afterAll(() => ec.cleanup(prefix));

    it('the client moves to a live node and recovers: a numbered stream arrives exactly once, in order', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-kill3-'));
      const ports = [await freePort(), await freePort(), await freePort()];
      const procs: ChildProcess[] = [];
      for (let k = 0; k < 3; k++) {
        const file = join(dir, `node${k + 1}.json`);
        const engine = ec.engine(prefix, ec.upstream.port);
        writeFileSync(file, JSON.stringify({
          server: { host: '127.0.0.1', port: ports[k], nodeName: `kill-node${k + 1}` },
          auth: { jwt: { hmacSecret: SECRET } },
          api: { keys: [API_KEY] },
          engine,
          channels: { history: { size: 10_000, ttlMs: 600_000 }, maxRecover: 10_000 },
          log: { level: 'info' },
        }));
        procs.push(await startNode(file));
      }
      const lb = await FirstLiveBalancer.start(ports);
      const channel = 'kill:stream';
      const sdk = sdkClient(`ws://127.0.0.1:${lb.port}/ws`, await makeToken({ sub: 'survivor', channels: ['kill:*'] }), channel);
      await sdk.client.connect();
      await waitFor(() => sdk.subscribed() > 0, 10_000, 'subscribed');
      const firstNode = sdk.node();

      const others = [`http://127.0.0.1:${ports[1]}`, `http://127.0.0.1:${ports[2]}`];
      const N = 300;
      const KILL_AT = 120;
      const attempts: Attempt[] = [];
      for (let i = 1; i <= N; i++) {
        if (i === KILL_AT) {
          procs[0]!.kill('SIGKILL');
          await new Promise((r) => procs[0]!.once('exit', r));
        }
        await publishUntilAccepted([others[i % 2]!], { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-${i}` }, attempts);
      }
      await waitFor(() => sdk.seen.length >= N, 20_000, `${N} messages (have ${sdk.seen.length})`);
      await markAfter(others[0]!, channel, sdk);
      const secondNode = sdk.node();
      sdk.client.close();
      await lb.close();
      for (const p of procs.slice(1)) p.kill('SIGTERM');

      expect(firstNode).toBe('kill-node1');
      expect(secondNode).toBe('kill-node2');
      expect(sdk.closes.length).toBeGreaterThanOrEqual(1); // the kill really cut the connection
      expect(attempts.every((x) => x.status === 200)).toBe(true); // the other nodes never refused
      expect(sdk.seen).toEqual(range(N));
      expect(sdk.recoveryFailed()).toBe(0);
    }, 60_000);
  });
}
