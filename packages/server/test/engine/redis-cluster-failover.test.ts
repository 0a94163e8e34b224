/**
 * A Redis Cluster master fails: 3 masters with one replica each, the master owning a channel's
 * slot is SIGKILLed, and the cluster promotes its replica. Publishing to that channel fails while
 * the slot has no master, then works again on the promoted replica with the channel's history
 * intact; the sharded subscription moves to the new master and the broker reports the gap.
 */
import { retryUntilAccepted } from '../helpers/retry.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBroker } from '../../src/engine/redis/broker.js';
import type { RedisTarget } from '../../src/engine/redis/connection.js';
import { requireRedisServerBinary, startRedisCluster, type RedisClusterProcesses } from '../helpers/redis-processes.js';
import { envelope, Recorder } from './broker.suite.js';
import { waitFor } from '../helpers/wait.js';
import { uniquePrefix } from './services.js';

const haveRedis = requireRedisServerBinary();
const prefix = uniquePrefix('herald-rcf-');
const HISTORY = { size: 100, ttlMs: 60_000 };

describe.skipIf(!haveRedis)('Redis Cluster master failover (3 masters, 3 replicas)', () => {
  let cluster: RedisClusterProcesses;
  let target: RedisTarget;

  beforeAll(async () => {
    cluster = await startRedisCluster(3, undefined, 1);
    target = { mode: 'cluster', nodes: cluster.nodes };
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('publish fails while the slot has no master, then continues on the promoted replica; the subscription follows', async () => {
    const rec = new Recorder();
    let gaps = 0;
    const reader = new RedisBroker({ target, prefix });
    const writer = new RedisBroker({ target, prefix, commandTimeoutMs: 1000 });
    await reader.start({ ...rec.handler, onGap: () => void gaps++ });
    await writer.start(new Recorder().handler);
    try {
      const ch = `cfail-${randomUUID()}`;
      await reader.subscribe({ kind: 'channel', channel: ch });
      const before = (await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('before') }, HISTORY)).position;
      await rec.waitFor({ kind: 'channel', channel: ch }, 1);
      // Replication is asynchronous: only what the replica has acknowledged survives the kill.
      await cluster.awaitReplicaCaughtUp(`{${ch}}`);

      const { killed: oldOwner, promoted } = await cluster.killOwner(`{${ch}}`);
      const { value: after, failures } = await retryUntilAccepted(
        async () => (await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('after') }, HISTORY)).position,
        40_000,
        'publish',
      );
      expect(failures).toBeGreaterThan(0);
      expect(await promoted).not.toBe(oldOwner);
      // A publish that timed out is ambiguous: Redis may have applied it (the reply was lost, or
      // ioredis sent it once the slot had a master again). Only the offset may move further; the
      // epoch must not change, because the promoted replica holds the same stream.
      if (!after) throw new Error('the accepted publish returned no position');
      expect(after.epoch).toBe(before!.epoch);
      expect(after.offset).toBeGreaterThanOrEqual(before!.offset + 1);

      let n = 0;
      await waitFor(
        async () => {
          if (rec.for({ kind: 'channel', channel: ch }).some((d) => d.envelope.payload === 'live')) return true;
          await writer.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('live', `live-${n++}`) }, HISTORY).catch(() => undefined);
          return false;
        },
        20_000,
        'a live probe through the promoted master',
        200,
      );
      expect(gaps).toBeGreaterThan(0);
      const h = await writer.history(ch, { since: { offset: 0, epoch: before!.epoch }, limit: 100 });
      expect(h.complete).toBe(true);
      const payloads = h.entries.map((e) => e.envelope.payload);
      expect(payloads[0]).toBe('before');
      // Everything up to the accepted offset is 'after' (timed-out attempts that did apply), with no gap.
      const upToAccepted = h.entries.filter((e) => e.offset <= after.offset);
      expect(upToAccepted.map((e) => e.offset)).toEqual(Array.from({ length: after.offset - before!.offset + 1 }, (_, i) => before!.offset + i));
      expect(upToAccepted.slice(1).every((e) => e.envelope.payload === 'after')).toBe(true);
    } finally {
      await reader.close();
      await writer.close();
    }
  }, 120_000);
});
