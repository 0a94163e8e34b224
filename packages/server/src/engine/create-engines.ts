/** Builds the engines named by `engine.type`. The connection code never sees which it got. */
import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, type HeraldConfig } from '../config.js';
import type { Broker } from './broker.js';
import type { InboxStore } from './inbox.js';
import { IdempotencyWindow } from '../idempotency.js';
import { MemoryBroker } from './memory-broker.js';
import { MemoryInbox } from './memory-inbox.js';
import { MemoryPresence } from './memory-presence.js';
import { SqliteBroker } from './sqlite-broker.js';
import { SqliteDb } from './sqlite-db.js';
import { SqliteIdempotency } from './sqlite-idempotency.js';
import { SqliteInbox } from './sqlite-inbox.js';
import type { PresenceStore } from './presence.js';

export interface Engines {
  broker: Broker;
  presence: PresenceStore;
  /** Its `append` takes the idempotency key of at-least-once user messages, in the broker's window. */
  inbox: InboxStore;
  /** Releases what the engines hold beyond their own close() (e.g. the SQLite file). */
  dispose?: () => Promise<void>;
}

export async function createEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  void nodeName;
  void log;
  switch (config.engine.type) {
    case 'memory': {
      const window = new IdempotencyWindow(config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
      return { broker: new MemoryBroker(window), presence: new MemoryPresence(), inbox: new MemoryInbox(window) };
    }
    case 'sqlite': {
      const { dataDir, synchronous } = config.engine.sqlite;
      let db: SqliteDb;
      try {
        db = new SqliteDb(dataDir, synchronous);
      } catch (err) {
        throw new ConfigError(`engine.sqlite.dataDir: cannot open the store in ${dataDir}: ${(err as Error).message}`);
      }
      const idempotency = new SqliteIdempotency(db, config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
      return {
        broker: new SqliteBroker(db, idempotency),
        presence: new MemoryPresence(),
        inbox: new SqliteInbox(db, idempotency),
        dispose: async () => {
          idempotency.close();
          db.close();
        },
      };
    }
    // The cluster engines load their clients (ioredis, nats: ≈ 29 MB of RSS together) only when
    // chosen, so the embedded default does not carry them.
    case 'redis':
      return (await import('./redis-engines.js')).createRedisEngines(config, nodeName, log);
    case 'nats':
      return (await import('./nats-engines.js')).createNatsEngines(config, log);
    default:
      throw new ConfigError(`engine.type: "${config.engine.type}" is not available in this build`);
  }
}
