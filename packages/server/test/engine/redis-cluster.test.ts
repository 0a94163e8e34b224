/**
 * The engine conformance suites on a real three-master Redis Cluster (password protected), plus
 * what only a cluster has: every script stays in one hash slot, channel and user topics are
 * sharded onto the shard that owns them, and dispatches cross shards and nodes.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBroker } from '../../src/engine/redis/broker.js';
import type { RedisTarget } from '../../src/engine/redis/connection.js';
import { RedisInbox } from '../../src/engine/redis/inbox.js';
import { RedisPresence } from '../../src/engine/redis/presence.js';
import { requireRedisServerBinary, startRedisCluster, type RedisClusterProcesses } from '../helpers/redis-processes.js';
import { envelope, Recorder, runBrokerSuite } from './broker.suite.js';
import { waitFor } from '../helpers/wait.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { runControlSuite } from './control.suite.js';
import { runChannelPresenceSuite } from './channel-presence.suite.js';
import { RedisChannelPresenceStore } from '../../src/engine/redis/channel-presence.js';
import { BusControlPlane } from '../../src/engine/control-bus.js';
import { RedisControlBus } from '../../src/engine/redis/control.js';
import { uniquePrefix } from './services.js';

const haveRedis = requireRedisServerBinary();
const prefix = uniquePrefix('herald-rc-');
const PASSWORD = 'cluster-secret';
const PRESENCE_TTL_MS = 600;
const HISTORY = { size: 100, ttlMs: 60_000 };
const CONTROL = { heartbeatMs: 250, nodeTtlMs: 1500 };
const CHANNEL_PRESENCE = { heartbeatMs: 250, nodeTtlMs: 1500 };

describe.skipIf(!haveRedis)('Redis engines on a Redis Cluster (3 masters)', () => {
  let cluster: RedisClusterProcesses;
  let target: RedisTarget;

  beforeAll(async () => {
    cluster = await startRedisCluster(3, PASSWORD);
    target = { mode: 'cluster', nodes: cluster.nodes, password: PASSWORD };
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  runBrokerSuite(
    'redis cluster',
    async ({ idempotencyWindowMs }) => {
      const broker = new RedisBroker({ target, prefix, ...(idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {}) });
      return { broker, cleanup: () => broker.close() };
    },
    { distributed: true },
  );

  runPresenceSuite(
    'redis cluster',
    async () => {
      const presence = await RedisPresence.connect({ target, prefix, ttlMs: PRESENCE_TTL_MS });
      return { presence, cleanup: () => presence.close(), crash: async () => presence.abandon() };
    },
    { distributed: true, ttlMs: PRESENCE_TTL_MS },
  );

  // Each channel's keys share a slot ({channel}); its events are PUBLISHed from that slot's master.
  runChannelPresenceSuite(
    'redis cluster',
    async () => {
      const store = await RedisChannelPresenceStore.connect({ target, prefix, timing: CHANNEL_PRESENCE });
      return { store, cleanup: () => store.close() };
    },
    { distributed: true, ...CHANNEL_PRESENCE },
  );

  // Plain pub/sub on a Redis Cluster: a PUBLISH on any master reaches subscribers on every master.
  runControlSuite(
    'redis cluster',
    async () => {
      const bus = await RedisControlBus.connect({ target, prefix });
      const plane = new BusControlPlane(bus, CONTROL);
      return { plane, cleanup: () => plane.close(), crash: async () => bus.abandon() };
    },
    { distributed: true, ...CONTROL },
  );

  runInboxSuite(
    'redis cluster',
    async () => {
      const inbox = await RedisInbox.connect({ target, prefix });
      return { inbox, cleanup: () => inbox.close() };
    },
    { distributed: true },
  );

  /** Channel names until every master owns at least one of them (slot = hash of `{name}`). */
  async function channelsOnEveryShard(tag: string): Promise<Map<number, string>> {
    const byOwner = new Map<number, string>();
    for (let i = 0; byOwner.size < cluster.ports.length && i < 200; i++) {
      const ch = `${tag}-${i}-${randomUUID().slice(0, 4)}`;
      const owner = await cluster.ownerOf(`{${ch}}`);
      if (!byOwner.has(owner)) byOwner.set(owner, ch);
    }
    expect(byOwner.size).toBe(cluster.ports.length);
    return byOwner;
  }

  describe('cluster specifics', () => {
    it('channels on every shard, users and broadcast cross from one broker to another', async () => {
      const recA = new Recorder();
      const recB = new Recorder();
      const a = new RedisBroker({ target, prefix });
      const b = new RedisBroker({ target, prefix });
      await a.start(recA.handler);
      await b.start(recB.handler);
      try {
        const channels = [...(await channelsOnEveryShard('shard')).values()];
        const user = `u-${randomUUID()}`;
        for (const ch of channels) await b.subscribe({ kind: 'channel', channel: ch });
        await b.subscribe({ kind: 'user', user });
        for (const ch of channels) {
          for (let i = 1; i <= 3; i++) {
            const pos = (await a.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope({ ch, i }) }, HISTORY)).position;
            expect(pos?.offset).toBe(i);
          }
        }
        await a.publish({ target: { kind: 'user', user }, envelope: envelope('to-user') }, HISTORY);
        await a.publish({ target: { kind: 'broadcast' }, envelope: envelope('to-all') }, HISTORY);
        for (const ch of channels) {
          const got = await recB.waitFor({ kind: 'channel', channel: ch }, 3);
          expect(got.map((d) => [d.position?.offset, (d.envelope.payload as { i: number }).i])).toEqual([
            [1, 1],
            [2, 2],
            [3, 3],
          ]);
          // History lives on the same shard and agrees with the live positions.
          const h = await b.history(ch, { since: { offset: 0, epoch: got[0]!.position!.epoch }, limit: 10 });
          expect(h.complete).toBe(true);
          expect(h.entries.map((e) => e.offset)).toEqual([1, 2, 3]);
        }
        expect((await recB.waitFor({ kind: 'user', user }, 1))[0]!.envelope.payload).toBe('to-user');
        await recB.waitFor({ kind: 'broadcast' }, 1);
        await recA.waitFor({ kind: 'broadcast' }, 1);
        expect(recA.got.filter((d) => d.target.kind === 'channel')).toHaveLength(0);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('subscribes a channel topic (SSUBSCRIBE) on the shard that owns the channel, and only there', async () => {
      const broker = new RedisBroker({ target, prefix });
      await broker.start(new Recorder().handler);
      try {
        for (const [owner, ch] of await channelsOnEveryShard('owner')) {
          await broker.subscribe({ kind: 'channel', channel: ch });
          const topic = `${prefix}:ch:{${ch}}`;
          for (const port of cluster.ports) {
            const r = new Redis({ host: '127.0.0.1', port, password: PASSWORD });
            try {
              const shardChannels = (await r.call('PUBSUB', 'SHARDCHANNELS', topic)) as string[];
              expect(shardChannels, `port ${port} (owner ${owner})`).toEqual(port === owner ? [topic] : []);
            } finally {
              r.disconnect();
            }
          }
          await broker.unsubscribe({ kind: 'channel', channel: ch });
        }
      } finally {
        await broker.close();
      }
    });

    it('idempotent publishes keep their key in their audience\'s slot: on every shard, for channels, users and inboxes, a key is stored once', async () => {
      const a = new RedisBroker({ target, prefix });
      const b = new RedisBroker({ target, prefix });
      const inbox = await RedisInbox.connect({ target, prefix });
      await a.start(new Recorder().handler);
      await b.start(new Recorder().handler);
      try {
        const names = [...(await channelsOnEveryShard('idem')).values()];
        for (const name of names) {
          const key = { scope: 'api', msgId: `k-${randomUUID()}` };
          const results = await Promise.all([a, b, a, b].map((broker, i) => broker.publish({ target: { kind: 'channel', channel: name }, envelope: envelope(i, key.msgId) }, HISTORY, key)));
          expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
          expect(new Set(results.map((r) => JSON.stringify(r.position))).size).toBe(1);
          // The same name as a user: the key lives in that user's slot, beside the inbox and topic.
          const toUser = await Promise.all([a, b].map((broker) => broker.publish({ target: { kind: 'user', user: name }, envelope: envelope('u', key.msgId) }, HISTORY, key)));
          expect(toUser.filter((r) => !r.duplicate)).toHaveLength(1);
          const inboxKey = { scope: 'api', msgId: `i-${randomUUID()}` };
          const limits = { maxMessages: 10, maxAgeMs: 60_000 };
          const appended = await Promise.all([1, 2].map(() => inbox.append(name, { envelope: envelope('i', inboxKey.msgId) }, limits, inboxKey)));
          expect(appended.filter((r) => !r.earlier)).toHaveLength(1);
        }
      } finally {
        await a.close();
        await b.close();
        await inbox.close();
      }
    });

    it('follows a slot migration: publish is redirected (MOVED) to the new owner, the subscription moves with it, and a gap is reported', async () => {
      const rec = new Recorder();
      let gaps = 0;
      const reader = new RedisBroker({ target, prefix });
      const writer = new RedisBroker({ target, prefix });
      await reader.start({ ...rec.handler, onGap: () => void gaps++ });
      await writer.start(new Recorder().handler);
      const admin = (port: number) => new Redis({ host: '127.0.0.1', port, password: PASSWORD });
      try {
        const ch = `migrate-${randomUUID()}`;
        await reader.subscribe({ kind: 'channel', channel: ch });
        const p1 = (await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(1) }, HISTORY)).position;
        await rec.waitFor({ kind: 'channel', channel: ch }, 1);

        // Move the channel's slot to another master the way `redis-cli --cluster reshard` does.
        const from = await cluster.ownerOf(`{${ch}}`);
        const to = cluster.ports.find((p) => p !== from)!;
        const src = admin(from);
        const dst = admin(to);
        try {
          const slot = Number(await src.call('CLUSTER', 'KEYSLOT', `{${ch}}`));
          const srcId = String(await src.call('CLUSTER', 'MYID'));
          const dstId = String(await dst.call('CLUSTER', 'MYID'));
          await dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', srcId);
          await src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dstId);
          const keys = (await src.call('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as string[];
          expect(keys.length).toBeGreaterThan(0);
          await src.call('MIGRATE', '127.0.0.1', to, '', 0, 5000, 'AUTH', PASSWORD, 'KEYS', ...keys);
          for (const port of cluster.ports) {
            const r = port === from ? src : port === to ? dst : admin(port);
            await r.call('CLUSTER', 'SETSLOT', slot, 'NODE', dstId);
            if (r !== src && r !== dst) r.disconnect();
          }
        } finally {
          src.disconnect();
          dst.disconnect();
        }
        expect(await cluster.ownerOf(`{${ch}}`)).toBe(to);

        // The writer's slot map is stale: the publish is redirected and continues the channel's offsets.
        const p2 = (await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(2) }, HISTORY)).position;
        expect(p2).toEqual({ offset: p1!.offset + 1, epoch: p1!.epoch });
        // The old owner dropped the shard channel; ioredis subscribes it on the new owner.
        // Publish probes until one arrives: then the subscription is in place on the new owner.
        let n = 3;
        await waitFor(
          async () => {
            if (rec.for({ kind: 'channel', channel: ch }).some((d) => (d.envelope.payload as number) >= 3)) return true;
            await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(n++) }, HISTORY);
            return false;
          },
          20_000,
          'a probe through the moved shard subscription',
          200,
        );
        expect(gaps).toBeGreaterThan(0);
        const r = admin(to);
        try {
          expect(await r.call('PUBSUB', 'SHARDCHANNELS', `${prefix}:ch:{${ch}}`)).toEqual([`${prefix}:ch:{${ch}}`]);
        } finally {
          r.disconnect();
        }
        const h = await writer.history(ch, { since: p1!, limit: 100 });
        expect(h.complete).toBe(true);
        expect(h.entries[0]!.offset).toBe(p2!.offset);
      } finally {
        await reader.close();
        await writer.close();
      }
    }, 60_000);

    it('fails start-up with an error naming engine.redis.cluster.nodes when no seed answers', async () => {
      const broker = new RedisBroker({ target: { mode: 'cluster', nodes: ['127.0.0.1:1'], password: PASSWORD }, prefix });
      const err = await broker.start(new Recorder().handler).then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/engine\.redis\.cluster\.nodes=127\.0\.0\.1:1/);
      expect(err?.message).not.toContain(PASSWORD);
      await broker.close();
    });
  });
});
