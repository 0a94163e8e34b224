/** Builds the engines named by `engine.type`. The connection code never sees which it got. */
import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, type HeraldConfig } from '../config.js';
import type { Broker } from './broker.js';
import type { InboxStore } from './inbox.js';
import { MemoryBroker } from './memory-broker.js';
import { MemoryInbox } from './memory-inbox.js';
import { MemoryPresence } from './memory-presence.js';
import type { PresenceStore } from './presence.js';

export interface Engines {
  broker: Broker;
  presence: PresenceStore;
  inbox: InboxStore;
}

export async function createEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  void nodeName;
  void log;
  switch (config.engine.type) {
    case 'memory':
      return { broker: new MemoryBroker(), presence: new MemoryPresence(), inbox: new MemoryInbox() };
    default:
      throw new ConfigError(`engine.type: "${config.engine.type}" is not available in this build`);
  }
}
