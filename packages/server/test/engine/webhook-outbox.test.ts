/**
 * The WebhookOutbox conformance suite on every engine that has one: SQLite (one node, reopened
 * from its file), Redis standalone, Redis Cluster (three masters started here) and NATS
 * JetStream. The memory engine has no outbox: `webhooks` is refused on it (see webhooks/config.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDb } from '../../src/engine/sqlite/db.js';
import { SqliteWebhookOutbox } from '../../src/engine/sqlite/webhook-outbox.js';
import { RedisWebhookOutbox } from '../../src/engine/redis/webhook-outbox.js';
import { NatsWebhookOutbox } from '../../src/engine/nats/webhook-outbox.js';
import type { RedisTarget } from '../../src/engine/redis/connection.js';
import { requireRedisServerBinary, startRedisCluster, type RedisClusterProcesses } from '../helpers/redis-processes.js';
import { runWebhookOutboxSuite } from './webhook-outbox.suite.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './services.js';

runWebhookOutboxSuite(
  'sqlite',
  async (limits) => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-wh-outbox-'));
    let db = new SqliteDb(dir, 'off');
    const outbox = new SqliteWebhookOutbox(db, limits);
    return {
      outbox,
      restart: async () => {
        db.close();
        db = new SqliteDb(dir, 'off');
        return new SqliteWebhookOutbox(db, limits);
      },
      cleanup: async () => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { distributed: false },
);

describe('SQLite outbox specifics', () => {
  it('entries stored before heads were tracked (every entry due by time) are still delivered one at a time, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-wh-outbox-'));
    const db = new SqliteDb(dir, 'off');
    try {
      const outbox = new SqliteWebhookOutbox(db, { leaseMs: 60_000, maxEntries: 100, maxDeadLetters: 10 });
      const ids = ['a0', 'a1', 'a2'];
      await outbox.append(ids.map((id) => ({ id, endpoint: 'ep', key: 'A', body: '{}' })));
      // What an earlier version stored: every entry's due_at is its append time.
      db.db.prepare('UPDATE webhook_outbox SET due_at = 0').run();
      const order: string[] = [];
      for (let i = 0; i < 3; i++) {
        const got = await outbox.claim([{ endpoint: 'ep', limit: 10 }]);
        expect(got.length).toBe(1);
        order.push(got[0]!.id);
        await outbox.append([{ id: `late${i}`, endpoint: 'ep', key: 'A', body: '{}' }]);
        expect(await outbox.ack(got[0]!)).toBe(true);
      }
      expect(order).toEqual(ids);
      const rest: string[] = [];
      for (let i = 0; i < 3; i++) {
        const got = await outbox.claim([{ endpoint: 'ep', limit: 10 }]);
        expect(got.length).toBe(1);
        rest.push(got[0]!.id);
        await outbox.ack(got[0]!);
      }
      expect(rest).toEqual(['late0', 'late1', 'late2']);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const redisUp = await requireRedis();
describe.skipIf(!redisUp)('Redis', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropRedisKeys(p);
  });
  runWebhookOutboxSuite(
    'redis',
    async (limits, shared) => {
      const prefix = shared ?? uniquePrefix('herald-wh-');
      prefixes.push(prefix);
      const outbox = await RedisWebhookOutbox.connect({ url: REDIS_URL, prefix }, limits);
      return { outbox, shared: prefix, cleanup: () => outbox.close() };
    },
    { distributed: true },
  );
});

const haveRedisBinary = requireRedisServerBinary();
describe.skipIf(!haveRedisBinary)('Redis Cluster (3 masters)', () => {
  let cluster: RedisClusterProcesses;
  let target: RedisTarget;
  beforeAll(async () => {
    cluster = await startRedisCluster(3, 'wh-secret');
    target = { mode: 'cluster', nodes: cluster.nodes, password: 'wh-secret' };
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  runWebhookOutboxSuite(
    'redis cluster',
    async (limits, shared) => {
      const prefix = shared ?? uniquePrefix('herald-whc-');
      const outbox = await RedisWebhookOutbox.connect({ target, prefix }, limits);
      return { outbox, shared: prefix, cleanup: () => outbox.close() };
    },
    { distributed: true },
  );
});

const natsUp = await requireNats();
describe.skipIf(!natsUp)('NATS', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropNatsStreams(p);
  });
  runWebhookOutboxSuite(
    'nats',
    async (limits, shared) => {
      const prefix = shared ?? uniquePrefix('herald_wh_');
      prefixes.push(prefix);
      const outbox = await NatsWebhookOutbox.connect({ servers: [NATS_URL], prefix }, limits);
      return { outbox, shared: prefix, cleanup: () => outbox.close() };
    },
    { distributed: true },
  );
});
