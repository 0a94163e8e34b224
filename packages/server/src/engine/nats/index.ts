/** The NATS engines, loaded by the engine factory (engine/index.ts) only when `engine.type` is `nats`. */
import type { FastifyBaseLogger } from 'fastify';
import type { HeraldConfig } from '../../config.js';
import { presenceConfigured } from '../channel-presence.js';
import type { Engines } from '../engines.js';
import { NatsBroker } from './broker.js';
import { NatsInbox } from './inbox.js';
import { NatsPresence } from './presence.js';
import { BusControlPlane, controlTimingOf } from '../control-bus.js';
import { NatsControlBus } from './control.js';
import { NatsWebhookOutbox } from './webhook-outbox.js';

import { NatsChannelPresenceStore } from './channel-presence.js';

/**
 * NATS carries dispatches; JetStream keeps channel history, inboxes (a stream) and presence (a KV
 * bucket), all shared by every node. Presence and inbox connect here, so an unreachable NATS fails
 * start-up naming engine.nats.servers before anything listens; the broker connects in `start`.
 */
export async function createNatsEngines(config: Readonly<HeraldConfig>, log: FastifyBaseLogger): Promise<Engines> {
  const { servers, prefix, presenceTtlMs, replicas } = config.engine.nats;
  const onError = (err: Error, where: string) => log.warn({ err: err.message, where }, 'nats problem');
  const windows = [config.channels.history, ...Object.values(config.channels.namespaces).map((n) => ({ ...config.channels.history, ...n.history }))];
  const idempotencyWindowMs = config.publish.idempotencyWindowMs;
  const broker = new NatsBroker({
    servers,
    prefix,
    replicas,
    idempotencyWindowMs,
    maxHistorySize: Math.max(...windows.map((w) => w.size)),
    retainMs: Math.max(86_400_000, ...windows.map((w) => 2 * w.ttlMs)),
    onError,
  });
  // An hour past the inbox age limit, as with Redis: a late reader still learns how many expired.
  const inbox = await NatsInbox.connect({ servers, prefix, replicas, onError, retainMs: config.inbox.maxAgeMs + 3_600_000, idempotencyWindowMs });
  let presence: NatsPresence;
  try {
    presence = await NatsPresence.connect({ servers, prefix, replicas, onError, ttlMs: presenceTtlMs });
  } catch (err) {
    await inbox.close();
    throw err;
  }
  let bus: NatsControlBus;
  try {
    bus = await NatsControlBus.connect({ servers, prefix });
  } catch (err) {
    await presence.close();
    await inbox.close();
    throw err;
  }
  let channelPresence: NatsChannelPresenceStore | undefined;
  try {
    if (presenceConfigured(config.channels.namespaces)) channelPresence = await NatsChannelPresenceStore.connect({ servers, prefix, replicas, onError, timing: controlTimingOf(config) });
  } catch (err) {
    await bus.close();
    await presence.close();
    await inbox.close();
    throw err;
  }
  const control = new BusControlPlane(bus, controlTimingOf(config), (err) => onError(err, 'control'));
  return { broker, presence, ...(channelPresence ? { channelPresence } : {}), inbox, control, openWebhookOutbox: (limits) => NatsWebhookOutbox.connect({ servers, prefix, replicas, onError }, limits) };
}
