/** Builds the engines named by `engine.type`. The connection code never sees which it got. */
import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, type HeraldConfig } from '../config.js';
import type { Broker } from './broker.js';
import type { InboxStore } from './inbox.js';
import { MemoryBroker } from './memory-broker.js';
import { MemoryInbox } from './memory-inbox.js';
import { MemoryPresence } from './memory-presence.js';
import { SqliteBroker } from './sqlite-broker.js';
import { RedisIdempotency } from './redis-idempotency.js';
import { SqliteDb } from './sqlite-db.js';
import { SqliteIdempotency } from './sqlite-idempotency.js';
import { SqliteInbox } from './sqlite-inbox.js';
import type { IdempotencyStore } from '../idempotency.js';
import { NatsBroker } from './nats-broker.js';
import { NatsInbox } from './nats-inbox.js';
import { NatsPresence } from './nats-presence.js';
import type { PresenceStore } from './presence.js';
import { RedisBroker } from './redis-broker.js';
import type { RedisTarget } from './redis-connection.js';
import { RedisInbox } from './redis-inbox.js';
import { RedisPresence } from './redis-presence.js';

export interface Engines {
  broker: Broker;
  presence: PresenceStore;
  inbox: InboxStore;
  /** Remembers accepted msgIds; the node keeps an in-memory one when absent. */
  idempotency?: IdempotencyStore;
  /** Releases what the engines hold beyond their own close() (e.g. the SQLite file). */
  dispose?: () => Promise<void>;
}

export async function createEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  void nodeName;
  void log;
  switch (config.engine.type) {
    case 'memory':
      return { broker: new MemoryBroker(), presence: new MemoryPresence(), inbox: new MemoryInbox() };
    case 'sqlite': {
      const { dataDir, synchronous } = config.engine.sqlite;
      let db: SqliteDb;
      try {
        db = new SqliteDb(dataDir, synchronous);
      } catch (err) {
        throw new ConfigError(`engine.sqlite.dataDir: cannot open the store in ${dataDir}: ${(err as Error).message}`);
      }
      const idempotency = new SqliteIdempotency(db, config.publish.idempotencyWindowMs);
      return {
        broker: new SqliteBroker(db),
        presence: new MemoryPresence(),
        inbox: new SqliteInbox(db),
        idempotency,
        dispose: async () => {
          idempotency.close();
          db.close();
        },
      };
    }
    case 'redis':
      return createRedisEngines(config, nodeName, log);
    case 'nats':
      return createNatsEngines(config, log);
    default:
      throw new ConfigError(`engine.type: "${config.engine.type}" is not available in this build`);
  }
}

/**
 * Broker, presence and inbox all in Redis. Presence and inbox connect here, so an unreachable Redis
 * fails start-up naming the key that points at it before anything listens; the broker connects in
 * `start`.
 */
async function createRedisEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  const { prefix, presenceTtlMs } = config.engine.redis;
  const target = redisTargetOf(config.engine.redis);
  const onError = (err: Error, connection: string) => log.warn({ err: err.message, connection, node: nodeName }, 'redis connection problem (retrying)');
  const inbox = await RedisInbox.connect({ target, prefix, onError });
  let presence: RedisPresence;
  try {
    presence = await RedisPresence.connect({ target, prefix, onError, ttlMs: presenceTtlMs });
  } catch (err) {
    await inbox.close();
    throw err;
  }
  let idempotency: RedisIdempotency;
  try {
    idempotency = await RedisIdempotency.connect({ target, prefix, onError }, config.publish.idempotencyWindowMs);
  } catch (err) {
    await inbox.close();
    await presence.close();
    throw err;
  }
  return { broker: new RedisBroker({ target, prefix, onError }), presence, inbox, idempotency, dispose: () => idempotency.close() };
}

/** `engine.redis` (already validated by resolveConfig) as the connection target it names. */
function redisTargetOf(redis: HeraldConfig['engine']['redis']): RedisTarget {
  switch (redis.mode) {
    case 'sentinel': {
      const s = redis.sentinel;
      return { mode: 'sentinel', sentinels: s.sentinels, masterName: s.masterName, password: s.password, sentinelPassword: s.sentinelPassword, db: s.db };
    }
    case 'cluster':
      return { mode: 'cluster', nodes: redis.cluster.nodes, password: redis.cluster.password };
    default:
      return { mode: 'standalone', url: redis.url };
  }
}

/**
 * NATS carries dispatches; JetStream keeps channel history, inboxes (a stream) and presence (a KV
 * bucket), all shared by every node. Presence and inbox connect here, so an unreachable NATS fails
 * start-up naming engine.nats.servers before anything listens; the broker connects in `start`.
 */
async function createNatsEngines(config: Readonly<HeraldConfig>, log: FastifyBaseLogger): Promise<Engines> {
  const { servers, prefix, presenceTtlMs, replicas } = config.engine.nats;
  const onError = (err: Error, where: string) => log.warn({ err: err.message, where }, 'nats problem');
  const windows = [config.channels.history, ...Object.values(config.channels.namespaces).map((n) => ({ ...config.channels.history, ...n.history }))];
  const broker = new NatsBroker({
    servers,
    prefix,
    replicas,
    maxHistorySize: Math.max(...windows.map((w) => w.size)),
    retainMs: Math.max(86_400_000, ...windows.map((w) => 2 * w.ttlMs)),
    onError,
  });
  // An hour past the inbox age limit, as with Redis: a late reader still learns how many expired.
  const inbox = await NatsInbox.connect({ servers, prefix, replicas, onError, retainMs: config.inbox.maxAgeMs + 3_600_000 });
  let presence: NatsPresence;
  try {
    presence = await NatsPresence.connect({ servers, prefix, replicas, onError, ttlMs: presenceTtlMs });
  } catch (err) {
    await inbox.close();
    throw err;
  }
  return { broker, presence, inbox };
}
