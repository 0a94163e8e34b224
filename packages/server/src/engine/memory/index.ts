/** The in-process engines: one node, nothing survives a restart. */
import type { HeraldConfig } from '../../config.js';
import type { Engines } from '../engines.js';
import { IdempotencyWindow } from './idempotency.js';
import { MemoryBroker } from './broker.js';
import { MemoryInbox } from './inbox.js';
import { MemoryPresence } from './presence.js';
import { BusControlPlane, controlTimingOf } from '../control-bus.js';
import { MemoryControlBus } from './control.js';
import { MemoryChannelPresenceStore } from './channel-presence.js';

export { MemoryBroker, MemoryControlBus, MemoryInbox, MemoryPresence };

export function createMemoryEngines(config: Readonly<HeraldConfig>): Engines {
  const window = new IdempotencyWindow(config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
  return { broker: new MemoryBroker(window), presence: new MemoryPresence(), channelPresence: new MemoryChannelPresenceStore(controlTimingOf(config)), inbox: new MemoryInbox(window), control: new BusControlPlane(new MemoryControlBus(), controlTimingOf(config)) };
}
