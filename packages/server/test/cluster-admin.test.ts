/**
 * Cluster-wide admin operations on real servers: three Herald nodes in one process on Redis, and
 * three on NATS, plus a fourth as a child process that is SIGKILLed. Whichever node receives the
 * HTTP call, disconnects, requests, channel counts and stats reach every node, and an answer with a
 * dead node is partial within cluster.controlTimeoutMs and names it.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { CLI, freePort, startCliNode } from './helpers/processes.js';
import { api, API_KEY, SECRET, startTestServer, TestSocket } from './helpers/server.js';
import { waitForValue } from './helpers/wait.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();
const CLUSTER = { controlTimeoutMs: 800, heartbeatIntervalMs: 200, nodeTtlMs: 1500 };
const NAMES = ['node-a', 'node-b', 'node-c'];

/** `read()`'s value once `done` holds for it (polled; throws after `ms`). */
function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 10_000): Promise<T> {
  return waitForValue(async () => {
    const v = await read();
    return done(v) ? v : undefined;
  }, ms, 'the cluster answer expected');
}

function clusterSuite(name: string, up: boolean, engineOf: (prefix: string) => Record<string, unknown>, drop: (prefix: string) => Promise<void>): void {
  describe.skipIf(!up)(`cluster-wide admin over ${name} (three nodes)`, () => {
    const prefix = uniquePrefix(name === 'NATS' ? 'herald_admin_' : 'herald-admin-');
    const engine = engineOf(prefix);
    let a: HeraldServer;
    let b: HeraldServer;
    let c: HeraldServer;
    const sockets: TestSocket[] = [];
    const children: ChildProcess[] = [];
    const dirs: string[] = [];
    const track = (s: TestSocket) => (sockets.push(s), s);

    beforeAll(async () => {
      [a, b, c] = (await Promise.all(NAMES.map((nodeName) => startTestServer({ server: { nodeName }, engine, cluster: CLUSTER })))) as [HeraldServer, HeraldServer, HeraldServer];
      // Every node has heard every other (joining announces itself, and peers answer at once).
      for (const s of [a, b, c]) await until(async () => (await api(s, 'GET', '/api/v1/nodes')).body.nodes.length, (n) => n === 3, 5000);
    });

    afterAll(async () => {
      for (const s of sockets) s.close();
      for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.all([a, b, c].map((n) => n?.close()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      await drop(prefix);
    });

    it('lists the live nodes with version, uptime, connections and last heartbeat', async () => {
      track(await TestSocket.connect(b, { sub: 'lister' }));
      const res = await until(async () => (await api(a, 'GET', '/api/v1/nodes')).body, (body) => body.nodes.find((n: { node: string }) => n.node === 'node-b')?.connections === 1, 3000);
      expect(res.nodes.map((n: { node: string }) => n.node)).toEqual(NAMES);
      for (const n of res.nodes) {
        expect(n).toMatchObject({ version: expect.any(String), startedAt: expect.any(Number), uptimeSeconds: expect.any(Number), connections: expect.any(Number) });
        expect(Date.now() - n.lastHeartbeat).toBeLessThan(CLUSTER.nodeTtlMs);
      }
    });

    it("disconnects a user's connections on every node, whichever node is asked", async () => {
      const devices = [track(await TestSocket.connect(a, { sub: 'banned' })), track(await TestSocket.connect(b, { sub: 'banned' })), track(await TestSocket.connect(c, { sub: 'banned' }))];
      const bystander = track(await TestSocket.connect(c, { sub: 'bystander' }));
      const res = await api(a, 'POST', '/api/v1/users/banned/disconnect', { reason: 'banned' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ disconnected: 3, nodes: { replied: NAMES, missing: [] } });
      for (const d of devices) expect(await d.closed).toEqual({ code: 4502, reason: 'banned' });
      expect(bystander.ws.readyState).toBe(1);
    });

    it('disconnects one connection on another node (reconnect), and 404s an unknown one', async () => {
      const s = track(await TestSocket.connect(c, { sub: 'moved' }));
      const res = await api(a, 'POST', `/api/v1/connections/${s.info.connectionId}/disconnect`, { reconnect: true });
      expect(res.body).toEqual({ disconnected: 1, nodes: { replied: ['node-c'], missing: [] } });
      expect((await s.closed).code).toBe(4005);
      const again = await api(b, 'POST', `/api/v1/connections/${s.info.connectionId}/disconnect`, {});
      expect(again).toMatchObject({ status: 404, body: { error: { code: 'connection_not_found' } } });
    });

    it('a request is answered from a connection on another node; its timeout and not-found are as on one node', async () => {
      const s = track(await TestSocket.connect(c, { sub: 'asked' }));
      const answering = (async () => {
        const req = await s.next((f) => f.type === 'request', 5000);
        s.send({ type: 'response', correlationId: req.correlationId, data: { from: 'node-c', got: req.data } });
      })();
      const res = await api(a, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'where', data: { q: 1 } });
      await answering;
      expect(res).toMatchObject({ status: 200, body: { data: { from: 'node-c', got: { q: 1 } } } });
      const silent = await api(b, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'ignored', timeoutMs: 200 });
      expect(silent).toMatchObject({ status: 504, body: { error: { code: 'request_timeout' } } });
      const gone = await api(b, 'POST', '/api/v1/connections/node-c-zzzz/request', { method: 'x' });
      expect(gone).toMatchObject({ status: 404, body: { error: { code: 'connection_not_found' } } });
    });

    it('channel counts are cluster totals; stats have every node and the totals', async () => {
      const subs = [track(await TestSocket.connect(a)), track(await TestSocket.connect(a)), track(await TestSocket.connect(b)), track(await TestSocket.connect(c))];
      for (const s of subs) await s.subscribe('admin:room');
      await subs[3]!.subscribe('admin:solo');
      const res = await api(b, 'GET', '/api/v1/channels?prefix=admin:');
      expect(res.body).toEqual({ channels: [{ channel: 'admin:room', subscribers: 4 }, { channel: 'admin:solo', subscribers: 1 }], nodes: { replied: NAMES, missing: [] } });

      const stats = (await api(c, 'GET', '/api/v1/stats')).body;
      expect(stats.node).toBe('node-c');
      expect(stats.nodes).toEqual({ replied: NAMES, missing: [] });
      expect(stats.byNode.map((s: { node: string }) => s.node)).toEqual(NAMES);
      const sum = (k: string) => stats.byNode.reduce((n: number, s: Record<string, number>) => n + s[k]!, 0);
      expect(stats.totals.connections).toBe(sum('connections'));
      expect(stats.totals.subscriptions).toBe(sum('subscriptions'));
      expect(stats.byNode.find((s: { node: string }) => s.node === 'node-a').subscriptions).toBeGreaterThanOrEqual(2);
      expect(stats.totals.subscriptions).toBeGreaterThanOrEqual(5);
    });

    it.skipIf(!existsSync(CLI))('a SIGKILLed node makes answers partial within the bound and names it; after the TTL it is gone', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-admin-kill-'));
      dirs.push(dir);
      const port = await freePort();
      const file = join(dir, 'node.json');
      writeFileSync(file, JSON.stringify({
        server: { host: '127.0.0.1', port, nodeName: 'node-doomed' },
        auth: { jwt: { hmacSecret: SECRET } },
        api: { keys: [API_KEY] },
        engine,
        cluster: CLUSTER,
        log: { level: 'info' },
      }));
      const doomed = await startCliNode(file, children);
      const listed = await until(async () => (await api(a, 'GET', '/api/v1/nodes')).body.nodes.map((n: { node: string }) => n.node), (l) => l.length === 4, 5000);
      expect(listed).toEqual([...NAMES, 'node-doomed'].sort());
      expect((await api(b, 'GET', '/api/v1/channels')).body.nodes).toEqual({ replied: [...NAMES, 'node-doomed'].sort(), missing: [] });

      doomed.kill('SIGKILL');
      await new Promise((r) => doomed.once('exit', r));
      const t0 = Date.now();
      const partial = await api(b, 'GET', '/api/v1/channels');
      const took = Date.now() - t0;
      expect(partial.status).toBe(200);
      expect(partial.body.nodes).toEqual({ replied: NAMES, missing: ['node-doomed'] });
      expect(took).toBeLessThan(CLUSTER.controlTimeoutMs + 1000);
      const banned = await api(c, 'POST', '/api/v1/users/nobody/disconnect', {});
      expect(banned.body).toEqual({ disconnected: 0, nodes: { replied: NAMES, missing: ['node-doomed'] } });

      // No heartbeat for nodeTtlMs: it is gone, and answers are complete again.
      const after = await until(async () => (await api(a, 'GET', '/api/v1/nodes')).body.nodes.length, (n) => n === 3, CLUSTER.nodeTtlMs + 3000);
      expect(after).toBe(3);
      const whole = await until(async () => (await api(b, 'GET', '/api/v1/stats')).body.nodes, (n) => n.missing.length === 0, CLUSTER.nodeTtlMs + 3000);
      expect(whole).toEqual({ replied: NAMES, missing: [] });
    });
  });
}

clusterSuite('Redis', redisUp, (prefix) => ({ type: 'redis', redis: { url: REDIS_URL, prefix, presenceTtlMs: 3000 } }), dropRedisKeys);
clusterSuite('NATS', natsUp, (prefix) => ({ type: 'nats', nats: { servers: [NATS_URL], prefix, presenceTtlMs: 1000 } }), dropNatsStreams);
