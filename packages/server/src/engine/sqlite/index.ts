/** The embedded engines: history, inbox and idempotency keys in one SQLite file; presence and control in memory. */
import { ConfigError, type HeraldConfig } from '../../config.js';
import type { Engines } from '../engines.js';
import { BusControlPlane, controlTimingOf } from '../control-bus.js';
import { MemoryControlBus } from '../memory/control.js';
import { MemoryPresence } from '../memory/presence.js';
import { SqliteBroker } from './broker.js';
import { SqliteDb } from './db.js';
import { SqliteIdempotency } from './idempotency.js';
import { SqliteInbox } from './inbox.js';
import { SqliteWebhookOutbox } from './webhook-outbox.js';

import { SqliteChannelPresenceStore } from './channel-presence.js';
import Database from 'better-sqlite3';

export function createSqliteEngines(config: Readonly<HeraldConfig>): Engines {
  const { dataDir, synchronous } = config.engine.sqlite;
  let db: SqliteDb;
  try {
    db = new SqliteDb(dataDir, synchronous);
  } catch (err) {
    throw new ConfigError(`engine.sqlite.dataDir: cannot open the store in ${dataDir}: ${(err as Error).message}`);
  }
  const presenceDb = new Database(':memory:');
  const idempotency = new SqliteIdempotency(db, config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
  return {
    broker: new SqliteBroker(db, idempotency),
    presence: new MemoryPresence(),
    channelPresence: new SqliteChannelPresenceStore(presenceDb, controlTimingOf(config)),
    inbox: new SqliteInbox(db, idempotency),
    // One node: its control plane is in-process (server.workers > 1 is refused for SQLite).
    control: new BusControlPlane(new MemoryControlBus(), controlTimingOf(config)),
    openWebhookOutbox: async (limits) => new SqliteWebhookOutbox(db, limits),
    dispose: async () => {
      idempotency.close();
      db.close();
      presenceDb.close();
    },
  };
}
