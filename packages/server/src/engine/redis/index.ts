/** The Redis engines, loaded by the engine factory (engine/index.ts) only when `engine.type` is `redis`. */
import type { FastifyBaseLogger } from 'fastify';
import type { HeraldConfig } from '../../config.js';
import { presenceConfigured } from '../channel-presence.js';
import type { Engines } from '../engines.js';
import { RedisBroker } from './broker.js';
import type { RedisTarget } from './connection.js';
import { RedisInbox } from './inbox.js';
import { RedisPresence } from './presence.js';
import { BusControlPlane, controlTimingOf } from '../control-bus.js';
import { RedisControlBus } from './control.js';
import { RedisWebhookOutbox } from './webhook-outbox.js';

import { RedisChannelPresenceStore } from './channel-presence.js';

/**
 * Broker, presence, inbox and the control plane all in Redis. Presence, inbox and control connect here, so an unreachable Redis
 * fails start-up naming the key that points at it before anything listens; the broker connects in
 * `start`.
 */
export async function createRedisEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  const { prefix, presenceTtlMs } = config.engine.redis;
  const target = redisTargetOf(config.engine.redis);
  const onError = (err: Error, connection: string) => log.warn({ err: err.message, connection, node: nodeName }, 'redis connection problem (retrying)');
  const idempotencyWindowMs = config.publish.idempotencyWindowMs;
  const inbox = await RedisInbox.connect({ target, prefix, onError, idempotencyWindowMs });
  let presence: RedisPresence;
  try {
    presence = await RedisPresence.connect({ target, prefix, onError, ttlMs: presenceTtlMs });
  } catch (err) {
    await inbox.close();
    throw err;
  }
  let bus: RedisControlBus;
  try {
    bus = await RedisControlBus.connect({ target, prefix, onError });
  } catch (err) {
    await presence.close();
    await inbox.close();
    throw err;
  }
  let channelPresence: RedisChannelPresenceStore | undefined;
  try {
    if (presenceConfigured(config.channels.namespaces)) channelPresence = await RedisChannelPresenceStore.connect({ target, prefix, onError, timing: controlTimingOf(config) });
  } catch (err) {
    await bus.close();
    await presence.close();
    await inbox.close();
    throw err;
  }
  const control = new BusControlPlane(bus, controlTimingOf(config), (err) => onError(err, 'control'));
  return {
    broker: new RedisBroker({ target, prefix, onError, idempotencyWindowMs }),
    presence,
    ...(channelPresence ? { channelPresence } : {}),
    inbox,
    control,
    openWebhookOutbox: (limits) => RedisWebhookOutbox.connect({ target, prefix, onError }, limits),
  };
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
