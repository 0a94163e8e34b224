/**
 * The engine conformance suites through Redis Sentinel (password-protected master, replica and
 * sentinels), then a failover: the master is SIGKILLed, Sentinel promotes the replica, and the
 * broker — which rejected publishes promptly during the gap — publishes again on the new master,
 * its subscriptions come back, and it reports the gap so the node's subscribers recover.
 */
import { retryUntilAccepted } from '../helpers/retry.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBroker } from '../../src/engine/redis/broker.js';
import type { RedisTarget } from '../../src/engine/redis/connection.js';
import { RedisInbox } from '../../src/engine/redis/inbox.js';
import { RedisPresence } from '../../src/engine/redis/presence.js';
import { requireRedisServerBinary, startRedisSentinel, type RedisSentinelProcesses } from '../helpers/redis-processes.js';
import { envelope, Recorder, runBrokerSuite } from './broker.suite.js';
import { waitFor } from '../helpers/wait.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { uniquePrefix } from './services.js';

const haveRedis = requireRedisServerBinary();
const prefix = uniquePrefix('herald-rs-');
const PASSWORD = 'redis-secret';
const SENTINEL_PASSWORD = 'sentinel-secret';
const PRESENCE_TTL_MS = 600;
const HISTORY = { size: 100, ttlMs: 60_000 };

describe.skipIf(!haveRedis)('Redis engines through Redis Sentinel', () => {
  let setup: RedisSentinelProcesses;
  let target: RedisTarget;

  beforeAll(async () => {
    setup = await startRedisSentinel({ sentinels: 2, password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
    target = { mode: 'sentinel', sentinels: setup.sentinels, masterName: setup.masterName, password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD };
  }, 60_000);

  afterAll(async () => {
    await setup?.stop();
  });

  runBrokerSuite(
    'redis sentinel',
    async ({ idempotencyWindowMs }) => {
      const broker = new RedisBroker({ target, prefix, ...(idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {}) });
      return { broker, cleanup: () => broker.close() };
    },
    { distributed: true },
  );

  runPresenceSuite(
    'redis sentinel',
    async () => {
      const presence = await RedisPresence.connect({ target, prefix, ttlMs: PRESENCE_TTL_MS });
      return { presence, cleanup: () => presence.close(), crash: async () => presence.abandon() };
    },
    { distributed: true, ttlMs: PRESENCE_TTL_MS },
  );

  runInboxSuite(
    'redis sentinel',
    async () => {
      const inbox = await RedisInbox.connect({ target, prefix });
      return { inbox, cleanup: () => inbox.close() };
    },
    { distributed: true },
  );

  describe('sentinel specifics', () => {
    it('fails start-up with an error naming engine.redis.sentinel.sentinels when no sentinel answers', async () => {
      const broker = new RedisBroker({ target: { mode: 'sentinel', sentinels: ['127.0.0.1:1'], masterName: 'nope', sentinelPassword: SENTINEL_PASSWORD }, prefix });
      const err = await broker.start(new Recorder().handler).then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/engine\.redis\.sentinel\.sentinels=127\.0\.0\.1:1 \(master "nope"\)/);
      expect(err?.message).not.toContain(SENTINEL_PASSWORD);
      await broker.close();
    });

    it('follows a failover: publish fails during the gap, then works on the promoted replica; subscriptions and history survive', async () => {
      const rec = new Recorder();
      let gaps = 0;
      const broker = new RedisBroker({ target, prefix, commandTimeoutMs: 1000 });
      await broker.start({ ...rec.handler, onGap: () => void gaps++ });
      try {
        const ch = `failover-${randomUUID()}`;
        const user = `u-${randomUUID()}`;
        await broker.subscribe({ kind: 'channel', channel: ch });
        await broker.subscribe({ kind: 'user', user });
        const before = (await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('before') }, HISTORY)).position;
        await rec.waitFor({ kind: 'channel', channel: ch }, 1);
        await setup.awaitReplicaCaughtUp();

        const oldMaster = await setup.currentMasterPort();
        // Publishing starts right after the kill, while Sentinel has not promoted anyone yet.
        const promoted = setup.killMasterAndAwaitPromotion();
        await setup.awaitMasterDown(oldMaster);

        // Until ioredis has found the new master, publishing fails at once instead of queueing.
        const { value: after, failures } = await retryUntilAccepted(
          async () => (await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('after') }, HISTORY)).position,
          30_000,
          'publish',
        );
        expect(failures).toBeGreaterThan(0);
        expect(await promoted).not.toBe(oldMaster);
        // The replica had the channel's meta hash and stream: same epoch, the next offset.
        expect(after).toEqual({ offset: before!.offset + 1, epoch: before!.epoch });
        const h = await broker.history(ch, { since: { offset: 0, epoch: before!.epoch }, limit: 10 });
        expect(h.complete).toBe(true);
        expect(h.entries.map((e) => e.envelope.payload)).toEqual(['before', 'after']);

        // The subscriber connection came back on the new master with its topics.
        let n = 0;
        await waitFor(
          async () => {
            if (rec.for({ kind: 'channel', channel: ch }).some((d) => d.envelope.payload === 'live')) return true;
            await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('live', `live-${n++}`) }, HISTORY);
            return false;
          },
          15_000,
          'a live probe on the new master',
          100,
        );
        await broker.publish({ target: { kind: 'user', user }, envelope: envelope('u') }, HISTORY);
        await rec.waitFor({ kind: 'user', user }, 1);
        expect(gaps).toBeGreaterThan(0);
      } finally {
        await broker.close();
      }
    }, 90_000);
  });
});
