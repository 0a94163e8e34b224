/**
 * The engine conformance suites on Redis, plus what only a networked broker has: publish failing
 * fast while Redis is away, and subscriptions coming back with the connection.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisBroker } from '../../src/engine/redis/broker.js';
import { RedisInbox } from '../../src/engine/redis/inbox.js';
import { RedisPresence } from '../../src/engine/redis/presence.js';
import { envelope, Recorder, runBrokerSuite } from './broker.suite.js';
import { waitFor } from '../helpers/wait.js';
import { runIdempotencySuite } from './idempotency.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { runControlSuite } from './control.suite.js';
import { runChannelPresenceSuite } from './channel-presence.suite.js';
import { RedisChannelPresenceStore } from '../../src/engine/redis/channel-presence.js';
import { BusControlPlane } from '../../src/engine/control-bus.js';
import { RedisControlBus } from '../../src/engine/redis/control.js';
import { REDIS_URL, requireRedis, uniquePrefix } from './services.js';

const redisUp = await requireRedis();
const prefix = uniquePrefix('herald-test-');
const PRESENCE_TTL_MS = 600;
const HISTORY = { size: 100, ttlMs: 60_000 };
const CONTROL = { heartbeatMs: 250, nodeTtlMs: 1500 };
const CHANNEL_PRESENCE = { heartbeatMs: 250, nodeTtlMs: 1500 };

/** Deletes every key under the prefix. */
async function dropKeys(url: string, keyPrefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true });
  await r.connect();
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await r.del(...keys);
  } while (cursor !== '0');
  await r.quit();
}

/** The keys (meta hashes and streams) of the channels whose names contain `part`, sorted. */
async function channelKeys(url: string, keyPrefix: string, part: string): Promise<string[]> {
  const r = new Redis(url, { lazyConnect: true });
  await r.connect();
  const found: string[] = [];
  for (const kind of ['chm', 'chs']) {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}:${kind}:*${part}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  await r.quit();
  return found.sort();
}

describe.skipIf(!redisUp)('Redis engines', () => {
  afterAll(async () => {
    await dropKeys(REDIS_URL, prefix);
  });

  runBrokerSuite(
    'redis',
    async ({ idempotencyWindowMs }) => {
      const broker = new RedisBroker({ url: REDIS_URL, prefix, ...(idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {}) });
      return { broker, cleanup: () => broker.close(), footprint: (part) => channelKeys(REDIS_URL, prefix, part) };
    },
    { distributed: true },
  );

  runChannelPresenceSuite(
    'redis',
    async () => {
      const store = await RedisChannelPresenceStore.connect({ url: REDIS_URL, prefix, timing: CHANNEL_PRESENCE });
      return { store, cleanup: () => store.close() };
    },
    { distributed: true, ...CHANNEL_PRESENCE },
  );

  runPresenceSuite(
    'redis',
    async () => {
      const presence = await RedisPresence.connect({ url: REDIS_URL, prefix, ttlMs: PRESENCE_TTL_MS });
      return { presence, cleanup: () => presence.close(), crash: async () => presence.abandon() };
    },
    { distributed: true, ttlMs: PRESENCE_TTL_MS },
  );

  runControlSuite(
    'redis',
    async () => {
      const bus = await RedisControlBus.connect({ url: REDIS_URL, prefix });
      const plane = new BusControlPlane(bus, CONTROL);
      return { plane, cleanup: () => plane.close(), crash: async () => bus.abandon() };
    },
    { distributed: true, ...CONTROL },
  );

  runInboxSuite(
    'redis',
    async () => {
      const inbox = await RedisInbox.connect({ url: REDIS_URL, prefix });
      return { inbox, cleanup: () => inbox.close() };
    },
    { distributed: true },
  );

  runIdempotencySuite(
    'redis',
    async ({ idempotencyWindowMs }) => {
      const window = idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {};
      const broker = new RedisBroker({ url: REDIS_URL, prefix, ...window });
      const inbox = await RedisInbox.connect({ url: REDIS_URL, prefix, ...window });
      return {
        broker,
        inbox,
        cleanup: async () => {
          await broker.close();
          await inbox.close();
        },
      };
    },
    { distributed: true },
  );

  describe('Redis control bus specifics', () => {
    it('subscribes again after the connection to Redis comes back', async () => {
      const proxy = await TcpProxy.start(REDIS_URL);
      const far = new BusControlPlane(await RedisControlBus.connect({ url: `redis://127.0.0.1:${proxy.port}`, prefix }), CONTROL);
      const near = new BusControlPlane(await RedisControlBus.connect({ url: REDIS_URL, prefix }), CONTROL);
      const describe = () => ({ version: '1', startedAt: Date.now(), connections: 0 });
      const farName = `far-${randomUUID().slice(0, 6)}`;
      const nearName = `near-${randomUUID().slice(0, 6)}`;
      try {
        await far.join({ node: farName, handle: () => 'far', describe });
        const n = await near.join({ node: nearName, handle: () => 'near', describe });
        await waitFor(() => n.nodes().length >= 2, 3000, 'both control-plane members listed');
        expect((await n.broadcast({ op: 'x' }, 1000)).replied).toEqual([farName, nearName].sort());
        await proxy.stop();
        expect((await n.broadcast({ op: 'x' }, 300)).missing).toEqual([farName]);
        await proxy.resume();
        const deadline = Date.now() + 10_000;
        let replied: string[] = [];
        while (Date.now() < deadline && !replied.includes(farName)) replied = (await n.broadcast({ op: 'x' }, 300)).replied;
        expect(replied).toEqual([farName, nearName].sort());
      } finally {
        await far.close();
        await near.close();
        await proxy.close();
      }
    });
  });

  describe('RedisBroker specifics', () => {
    it('fails start-up with an error naming engine.redis.url when Redis is unreachable', async () => {
      const started = Date.now();
      const broker = new RedisBroker({ url: 'redis://user:secret@127.0.0.1:1', prefix });
      const err = await broker.start(new Recorder().handler).then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/engine\.redis\.url=redis:\/\/\*\*\*@127\.0\.0\.1:1/);
      expect(err?.message).not.toContain('secret');
      expect(Date.now() - started).toBeLessThan(6000);
      await broker.close();
    });

    it('a new epoch is created when the channel\'s keys vanish (Redis lost its data)', async () => {
      const broker = new RedisBroker({ url: REDIS_URL, prefix });
      await broker.start(new Recorder().handler);
      try {
        const ch = `vanish-${randomUUID()}`;
        const p1 = (await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(1) }, HISTORY)).position;
        const r = new Redis(REDIS_URL);
        await r.del(`${prefix}:chm:{${ch}}`, `${prefix}:chs:{${ch}}`);
        await r.quit();
        const h = await broker.history(ch, { since: p1!, limit: 10 });
        expect(h.complete).toBe(false);
        expect(h.position.epoch).not.toBe(p1!.epoch);
        expect(h.position.offset).toBe(0);
        // The read created nothing; the next publish starts a new stream, which the reader recovers.
        const p2 = (await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(2) }, HISTORY)).position;
        expect(p2?.offset).toBe(1);
        expect(p2?.epoch).not.toBe(p1!.epoch);
        const rec = await broker.history(ch, { since: h.position, limit: 10 });
        expect(rec.complete).toBe(true);
        expect(rec.entries.map((e) => e.envelope.payload)).toEqual([2]);
      } finally {
        await broker.close();
      }
    });

    it('rejects publish promptly while Redis is away, and resubscribes when it is back', async () => {
      const proxy = await TcpProxy.start(REDIS_URL);
      const url = `redis://127.0.0.1:${proxy.port}`;
      const rec = new Recorder();
      const broker = new RedisBroker({ url, prefix, commandTimeoutMs: 1000 });
      const observer = new RedisBroker({ url: REDIS_URL, prefix });
      await broker.start(rec.handler);
      await observer.start(new Recorder().handler);
      try {
        const ch = `outage-${randomUUID()}`;
        const user = `u-${randomUUID()}`;
        await broker.subscribe({ kind: 'channel', channel: ch });
        await broker.subscribe({ kind: 'user', user });
        await observer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('before') }, HISTORY);
        await rec.waitFor({ kind: 'channel', channel: ch }, 1);

        await proxy.stop();
        const t0 = Date.now();
        const err = await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('down') }, HISTORY).then(() => undefined, (e: Error) => e);
        expect(err).toBeInstanceOf(Error);
        expect(Date.now() - t0).toBeLessThan(2500);
        await expect(broker.history(ch, { limit: 1 })).rejects.toThrow();
        // Subscribing while down fails now, but the wish is kept for the reconnect.
        const late = `late-${randomUUID()}`;
        await expect(broker.subscribe({ kind: 'channel', channel: late })).rejects.toThrow();

        await proxy.resume();
        // Publish from the healthy observer until the reconnected subscriber gets it.
        await waitFor(
          async () => {
            if (rec.for({ kind: 'channel', channel: ch }).some((d) => d.envelope.payload === 'after')) return true;
            await observer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('after') }, HISTORY);
            return false;
          },
          10_000,
          'the reconnected subscriber to get a probe',
          100,
        );
        await observer.publish({ target: { kind: 'user', user }, envelope: envelope('u') }, HISTORY);
        await observer.publish({ target: { kind: 'channel', channel: late }, envelope: envelope('late') }, HISTORY);
        await observer.publish({ target: { kind: 'broadcast' }, envelope: envelope('all') }, HISTORY);
        await rec.waitFor({ kind: 'user', user }, 1);
        await rec.waitFor({ kind: 'channel', channel: late }, 1);
        await rec.waitFor({ kind: 'broadcast' }, 1);
        expect((await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('up') }, HISTORY)).position).toBeDefined();
      } finally {
        await broker.close();
        await observer.close();
        await proxy.close();
      }
    });
  });
});

/** A TCP forwarder to Redis that can drop every connection and refuse new ones, then come back. */
class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly target: URL,
    public port: number,
  ) {}

  static async start(url: string): Promise<TcpProxy> {
    const p = new TcpProxy(new URL(url), 0);
    await p.listen();
    return p;
  }

  private listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = netConnect(Number(this.target.port || 6379), this.target.hostname);
      this.sockets.add(client);
      this.sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    this.server = server;
    return new Promise((resolve) =>
      server.listen(this.port, '127.0.0.1', () => {
        this.port = (server.address() as { port: number }).port;
        resolve();
      }),
    );
  }

  /** Redis "goes away": open connections drop, new ones are refused. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise((r) => server.close(r));
  }

  resume(): Promise<void> {
    return this.listen();
  }

  close(): Promise<void> {
    return this.stop();
  }
}
