/**
 * The engine conformance suites on the embedded SQLite store. Each fixture opens its own database,
 * so a SQLite broker is one node (not distributed), like the memory one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteBroker } from '../../src/engine/sqlite/broker.js';
import { SqliteDb } from '../../src/engine/sqlite/db.js';
import { SqliteIdempotency } from '../../src/engine/sqlite/idempotency.js';
import { SqliteInbox } from '../../src/engine/sqlite/inbox.js';
import { runBrokerSuite } from './broker.suite.js';
import { runIdempotencySuite } from './idempotency.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { runControlSuite } from './control.suite.js';
import { runChannelPresenceSuite } from './channel-presence.suite.js';
import { SqliteChannelPresenceStore } from '../../src/engine/sqlite/channel-presence.js';
import { resolveConfig } from '../../src/config.js';
import type { Engines } from '../../src/engine/engines.js';
import { createSqliteEngines } from '../../src/engine/sqlite/index.js';

const WINDOW_MS = 120_000;
const MAX_KEYS = 1_000_000;

/** The engines as `engine.type: sqlite` builds them, on a database of their own. */
function openEngines(idempotencyWindowMs = WINDOW_MS): { engines: Engines; cleanup: () => Promise<void> } {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-sqlite-suite-'));
  const engines = createSqliteEngines(resolveConfig({ engine: { type: 'sqlite', sqlite: { dataDir, synchronous: 'off' } }, publish: { idempotencyWindowMs } }));
  return {
    engines,
    cleanup: async () => {
      await engines.broker.close();
      await engines.inbox.close();
      await engines.presence.close();
      await engines.control.close();
      await engines.dispose?.();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function openStore(windowMs = WINDOW_MS): { db: SqliteDb; idempotency: SqliteIdempotency; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-suite-'));
  const db = new SqliteDb(dir, 'off');
  const idempotency = new SqliteIdempotency(db, windowMs, MAX_KEYS);
  return {
    db,
    idempotency,
    close: () => {
      idempotency.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

runBrokerSuite(
  'sqlite',
  async ({ idempotencyWindowMs }) => {
    const store = openStore(idempotencyWindowMs);
    const broker = new SqliteBroker(store.db, store.idempotency);
    const rows = (table: string, part: string) => store.db.db.prepare(`SELECT * FROM ${table} WHERE channel LIKE ? ORDER BY 1, 2`).all(`%${part}%`);
    const cached = (part: string) => [...(broker as unknown as { channels: Map<string, unknown> }).channels.keys()].filter((c) => c.includes(part)).sort();
    return {
      broker,
      cleanup: async () => {
        await broker.close();
        store.close();
      },
      footprint: async (part) => ({ channels: rows('channels', part), history: rows('history', part), cached: cached(part) }),
    };
  },
  { distributed: false },
);

runInboxSuite(
  'sqlite',
  async () => {
    const store = openStore();
    const inbox = new SqliteInbox(store.db, store.idempotency);
    return {
      inbox,
      cleanup: async () => {
        await inbox.close();
        store.close();
      },
    };
  },
  { distributed: false },
);

runPresenceSuite(
  'sqlite',
  async () => {
    const { engines, cleanup } = openEngines();
    return { presence: engines.presence, cleanup };
  },
  { distributed: false },
);

runIdempotencySuite(
  'sqlite',
  async ({ idempotencyWindowMs }) => {
    const { engines, cleanup } = openEngines(idempotencyWindowMs);
    return { broker: engines.broker, inbox: engines.inbox, cleanup };
  },
  { distributed: false },
);

it('a database from an earlier version loses the receipt_events table it never used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-old-'));
  try {
    const old = new Database(join(dir, 'herald.db'));
    old.exec('CREATE TABLE receipt_events (msg_id TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL); CREATE INDEX receipt_msg ON receipt_events (msg_id);');
    old.close();
    const db = new SqliteDb(dir, 'off');
    const names = db.db.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'receipt%'").all();
    db.close();
    expect(names).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The plane `engine.type: sqlite` builds (in-process: SQLite is one node).
runControlSuite(
  'sqlite',
  async () => {
    const { engines, cleanup } = openEngines();
    return { plane: engines.control, cleanup };
  },
  { distributed: false, heartbeatMs: 1000, nodeTtlMs: 5000 },
);

runChannelPresenceSuite(
  'sqlite',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-cp-'));
    const db = new Database(join(dir, 'presence.db'));
    db.pragma('journal_mode = WAL');
    const store = new SqliteChannelPresenceStore(db, { heartbeatMs: 250, nodeTtlMs: 1500 });
    return {
      store,
      cleanup: async () => {
        await store.close();
        db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { distributed: false, heartbeatMs: 250, nodeTtlMs: 1500 },
);
