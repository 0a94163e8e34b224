/**
 * Channel presence on real servers: three Herald nodes in one process on Redis, and three on NATS,
 * plus a fourth as a child process that is SIGKILLed; and one CLI run with `server.workers: 2`.
 * Lists and counts are the cluster's whichever node answers, every subscriber on every node sees
 * a channel's joins and leaves in one order, and a killed node's members leave exactly once, after
 * cluster.nodeTtlMs, seen by everyone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { CLI, freePort, startCliNode } from './helpers/processes.js';
import { api, API_KEY, makeToken, SECRET, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();
const CLUSTER = { controlTimeoutMs: 800, heartbeatIntervalMs: 200, nodeTtlMs: 1500 };
const NAMES = ['node-a', 'node-b', 'node-c'];
const CHANNELS = { namespaces: { room: { presence: true } } };

/** The join/leave frames `s` got for `channel`, as `type:client`, leaving out those of the `except` connections. */
const events = (s: TestSocket, channel: string, except: TestSocket[] = []): string[] =>
  s.frames
    .filter((f: Frame) => (f.type === 'join' || f.type === 'leave') && f.channel === channel && !except.some((x) => x.info.connectionId === f.member.client))
    .map((f) => `${f.type}:${f.member.client}`);

/** Polls a node's presence-stats until they are `want` (throws with the last answer after a while). */
async function statsReach(node: HeraldServer, channel: string, want: { connections: number; users: number }): Promise<void> {
  let last: unknown;
  await waitFor(async () => {
    last = (await api(node, 'GET', `/api/v1/channels/${channel}/presence-stats`)).body;
    return JSON.stringify(last) === JSON.stringify({ channel, ...want });
  }, 5000, `presence-stats ${JSON.stringify(want)}`).catch((err) => {
    throw new Error(`${(err as Error).message}; last answer ${JSON.stringify(last)}`);
  });
}

function clusterSuite(name: string, up: boolean, engineOf: (prefix: string) => Record<string, unknown>, drop: (prefix: string) => Promise<void>): void {
  describe.skipIf(!up)(`channel presence over ${name} (three nodes)`, () => {
    const prefix = uniquePrefix(name === 'NATS' ? 'herald_cpres_' : 'herald-cpres-');
    const engine = engineOf(prefix);
    let nodes: HeraldServer[] = [];
    const sockets: TestSocket[] = [];
    const children: ChildProcess[] = [];
    const dirs: string[] = [];
    const track = (s: TestSocket) => (sockets.push(s), s);

    beforeAll(async () => {
      nodes = await Promise.all(NAMES.map((nodeName) => startTestServer({ server: { nodeName }, engine, cluster: CLUSTER, channels: CHANNELS })));
    });

    afterAll(async () => {
      for (const s of sockets) s.close();
      for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.close()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      await drop(prefix);
    });

    /** A subscriber with join/leave on each node. */
    async function watchers(channel: string): Promise<TestSocket[]> {
      const ws = await Promise.all(nodes.map(async (n, i) => track(await TestSocket.connect(n, { sub: `watcher-${i}` }))));
      for (const w of ws) expect((await w.request({ type: 'subscribe', channel, presence: true })).type).toBe('subscribed');
      return ws;
    }

    it('lists and counts are cluster totals; every subscriber on every node sees one order of joins and leaves', async () => {
      const ch = 'room:order';
      const ws = await watchers(ch);
      const members: TestSocket[] = [];
      // Members join and leave through all three nodes, interleaved and concurrently.
      await Promise.all(
        [0, 1, 2, 3, 4, 5, 6, 7, 8].map(async (i) => {
          const s = track(await TestSocket.connect(nodes[i % 3]!, { sub: `user-${i % 4}`, info: { seat: i } }));
          await s.subscribe(ch);
          members.push(s);
        }),
      );
      // Watchers subscribed one after another, so each has the joins of those after it; the
      // members' joins came after all of them.
      const total = 9;
      await waitFor(() => ws.every((w) => events(w, ch, ws).length === total), 10_000, 'every join on every node');
      // On NATS the counters are written just after the member (its event may come first).
      for (const n of nodes) await statsReach(n, ch, { connections: 12, users: 7 });
      const listed: string[] = [];
      let cursor: string | undefined;
      do {
        const page = (await api(nodes[listed.length % 3]!, 'GET', `/api/v1/channels/${ch}/presence?limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).body;
        listed.push(...page.members.map((m: { client: string }) => m.client));
        cursor = page.next;
      } while (cursor);
      expect(listed).toEqual([...ws, ...members].map((s) => s.info.connectionId).sort());
      const viaFrame = await members[0]!.request({ type: 'presence_stats', channel: ch });
      expect(viaFrame).toMatchObject({ connections: 12, users: 7 });
      const info = (await members[1]!.request({ type: 'presence', channel: ch, limit: 1000 })).members.find((m: { client: string }) => m.client === members[1]!.info.connectionId);
      expect(info).toEqual({ client: members[1]!.info.connectionId, user: members[1]!.info.user, info: { seat: expect.any(Number) } });

      await Promise.all(
        members.slice(0, 5).map(async (s, i) => {
          if (i % 2) s.close();
          else await s.request({ type: 'unsubscribe', channel: ch });
        }),
      );
      await waitFor(() => ws.every((w) => events(w, ch, ws).length === total + 5), 10_000, 'every leave on every node');
      const first = events(ws[0]!, ch, ws);
      for (const w of ws.slice(1)) expect(events(w, ch, ws)).toEqual(first);
      for (const e of first.filter((x) => x.startsWith('leave:'))) expect(first.indexOf(`join:${e.slice(6)}`)).toBeLessThan(first.indexOf(e));
      expect(new Set(first).size).toBe(first.length);
      await statsReach(nodes[2]!, ch, { connections: 7, users: 3 + new Set(members.slice(5).map((m) => m.info.user)).size });
    });

    it.runIf(name === 'Redis')('a node watches a channel\'s events only while one of its subscribers asked for them', async () => {
      const ch = 'room:quiet';
      const redis = new Redis(REDIS_URL);
      const watchersOf = async () => Number(((await redis.pubsub('NUMSUB', `${prefix}:cpev:${ch}`)) as [string, number])[1]);
      try {
        const plain = track(await TestSocket.connect(nodes[0]!, { sub: 'plain' }));
        await plain.subscribe(ch);
        await statsReach(nodes[1]!, ch, { connections: 1, users: 1 });
        expect(await watchersOf()).toBe(0);
        const asking = track(await TestSocket.connect(nodes[1]!, { sub: 'asking' }));
        expect((await asking.request({ type: 'subscribe', channel: ch, presence: true })).type).toBe('subscribed');
        expect(await watchersOf()).toBe(1);
        expect((await asking.request({ type: 'unsubscribe', channel: ch })).type).toBe('unsubscribed');
        await waitFor(async () => (await watchersOf()) === 0, 5000, 'the watch released');
        expect(plain.frames.filter((f) => f.type === 'join' || f.type === 'leave')).toEqual([]);
      } finally {
        redis.disconnect();
      }
    });

    it.skipIf(!existsSync(CLI))("a SIGKILLed node's members leave exactly once after cluster.nodeTtlMs, seen on every node", async () => {
      const ch = 'room:kill';
      const ws = await watchers(ch);
      const dir = mkdtempSync(join(tmpdir(), 'herald-cpres-kill-'));
      dirs.push(dir);
      const port = await freePort();
      const file = join(dir, 'node.json');
      writeFileSync(file, JSON.stringify({
        server: { host: '127.0.0.1', port, nodeName: 'node-doomed' },
        auth: { jwt: { hmacSecret: SECRET } },
        api: { keys: [API_KEY] },
        engine,
        cluster: CLUSTER,
        channels: CHANNELS,
        log: { level: 'info' },
      }));
      const doomed = await startCliNode(file, children);
      const url = `ws://127.0.0.1:${port}/ws`;
      const onDoomed: TestSocket[] = [];
      for (let i = 0; i < 4; i++) {
        const s = track(await TestSocket.open(url));
        const reply = await s.request({ type: 'connect', token: await makeToken({ sub: `doomed-user-${i % 2}` }) });
        s.info = reply;
        await s.subscribe(ch);
        onDoomed.push(s);
      }
      const ids = onDoomed.map((s) => s.info.connectionId as string);
      await waitFor(() => ws.every((w) => ids.every((id) => events(w, ch).includes(`join:${id}`))), 10_000, 'the doomed members joined');
      await statsReach(nodes[0]!, ch, { connections: 7, users: 5 });

      doomed.kill('SIGKILL');
      await new Promise((r) => doomed.once('exit', r));
      await waitFor(() => ws.every((w) => ids.every((id) => events(w, ch).includes(`leave:${id}`))), CLUSTER.nodeTtlMs * 3 + 10_000, 'the leaves of the dead node on every node');
      await statsReach(nodes[1]!, ch, { connections: 3, users: 3 });
      // Every surviving node sweeps; a marker leave after the sweeps shows nothing more is coming.
      const marker = track(await TestSocket.connect(nodes[2]!, { sub: 'marker' }));
      await marker.subscribe(ch);
      marker.close();
      await waitFor(() => ws.every((w) => events(w, ch).includes(`leave:${marker.info.connectionId}`)), 10_000, 'the marker leave');
      const first = events(ws[0]!, ch, ws);
      for (const w of ws.slice(1)) expect(events(w, ch, ws)).toEqual(first);
      for (const id of ids) expect(first.filter((e) => e === `leave:${id}`)).toHaveLength(1);
    });
  });
}

clusterSuite('Redis', redisUp, (prefix) => ({ type: 'redis', redis: { url: REDIS_URL, prefix } }), dropRedisKeys);
clusterSuite('NATS', natsUp, (prefix) => ({ type: 'nats', nats: { servers: [NATS_URL], prefix } }), async (prefix) => {
  await dropNatsStreams(prefix);
});

describe('channel presence with server.workers: 2', () => {
  const procs: ChildProcess[] = [];
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  });

  it.runIf(redisUp && existsSync(CLI))('members and events span both worker processes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cpres-workers-'));
    const port = await freePort();
    const file = join(dir, 'herald.json');
    const prefix = `hcw-${randomUUID().slice(0, 8)}`;
    writeFileSync(file, JSON.stringify({
      server: { host: '127.0.0.1', port, workers: 2 },
      auth: { jwt: { hmacSecret: SECRET } },
      api: { keys: [API_KEY] },
      engine: { type: 'redis', redis: { url: REDIS_URL, prefix } },
      cluster: CLUSTER,
      channels: CHANNELS,
      log: { level: 'info' },
    }));
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`workers did not start: ${out}`)), 20_000);
      const check = (d: Buffer) => {
        out += String(d);
        if ((out.match(/Herald listening/g) ?? []).length >= 2) {
          clearTimeout(t);
          resolve();
        }
      };
      proc.stdout!.on('data', check);
      proc.stderr!.on('data', check);
    });
    try {
      const ch = 'room:workers';
      const sockets: TestSocket[] = [];
      for (let i = 0; i < 8; i++) {
        const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
        s.info = await s.request({ type: 'connect', token: await makeToken({ sub: `w${i}` }) });
        expect((await s.request({ type: 'subscribe', channel: ch, presence: true })).type).toBe('subscribed');
        sockets.push(s);
      }
      expect(new Set(sockets.map((s) => s.info.node)).size).toBe(2);
      const ids = sockets.map((s) => s.info.connectionId as string);
      // The first subscriber hears every later join, whichever worker holds it.
      await waitFor(() => ids.every((id) => events(sockets[0]!, ch).includes(`join:${id}`)), 10_000, 'joins from both workers');
      const stats = await api({ url: `http://127.0.0.1:${port}` }, 'GET', `/api/v1/channels/${ch}/presence-stats`);
      expect(stats.body).toEqual({ channel: ch, connections: 8, users: 8 });
      sockets[7]!.close();
      sockets[6]!.close();
      await waitFor(() => sockets.slice(0, 6).every((s) => events(s, ch).includes(`leave:${ids[7]}`) && events(s, ch).includes(`leave:${ids[6]}`)), 10_000, 'leaves on both workers');
      const orders = sockets.slice(0, 6).map((s) => events(s, ch).filter((e) => e.startsWith('leave:')));
      for (const o of orders) expect(o).toEqual(orders[0]);
      for (const s of sockets) s.close();
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      await dropRedisKeys(prefix);
    }
  });
});
