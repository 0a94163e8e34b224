/**
 * The engine conformance suites on the embedded SQLite store. Each fixture opens its own database,
 * so a SQLite broker is one node (not distributed), like the memory one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteBroker } from '../../src/engine/sqlite/broker.js';
import { SqliteDb } from '../../src/engine/sqlite/db.js';
import { SqliteIdempotency } from '../../src/engine/sqlite/idempotency.js';
import { SqliteInbox } from '../../src/engine/sqlite/inbox.js';
import { runBrokerSuite } from './broker.suite.js';
import { runInboxSuite } from './inbox.suite.js';

const WINDOW_MS = 120_000;
const MAX_KEYS = 1_000_000;

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
