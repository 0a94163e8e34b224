/**
 * The embedded durable store: one SQLite database in WAL mode. Writes from anywhere in the node
 * are grouped into one transaction per tick (group commit), so a burst of publishes costs one
 * fsync, not one each; a write's promise resolves only after its transaction committed.
 *
 * Durability by `engine.sqlite.synchronous` (SQLite's PRAGMA synchronous in WAL mode):
 * - `full`: every commit is fsynced before the publish is acknowledged — survives power loss.
 * - `normal`: commits survive a process crash (`kill -9`) but the last ones may be lost on power loss.
 * - `off`: leaves flushing to the OS — survives a process crash, not an OS crash.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS channels (channel TEXT PRIMARY KEY, epoch TEXT NOT NULL, top INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  channel TEXT NOT NULL, offset INTEGER NOT NULL, at INTEGER NOT NULL, msg_id TEXT NOT NULL, envelope TEXT NOT NULL,
  PRIMARY KEY (channel, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
  user TEXT NOT NULL, seq INTEGER NOT NULL, msg_id TEXT NOT NULL, channel TEXT, stored_at INTEGER NOT NULL, envelope TEXT NOT NULL,
  PRIMARY KEY (user, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS inbox_msg ON inbox (user, msg_id);
CREATE TABLE IF NOT EXISTS inbox_seq (user TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accepted (msg_id TEXT PRIMARY KEY, at INTEGER NOT NULL, result TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_at ON accepted (at);
-- Earlier versions created this table (and its indexes with it) but never wrote or read it.
DROP TABLE IF EXISTS receipt_events;
`;

interface PendingWrite {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class SqliteDb {
  readonly db: Database.Database;
  private queue: PendingWrite[] = [];
  private finishers: Array<() => void> = [];
  private scheduled = false;
  private closed = false;

  constructor(dataDir: string, synchronous: 'off' | 'normal' | 'full') {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'herald.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
  }

  /**
   * Runs `fn` inside the next group transaction. `fn` must be synchronous and only touch the
   * database. If it throws, its promise rejects and the others in the group still commit; `fn`
   * must therefore leave nothing half-written that matters (every caller here checks before it
   * writes). Savepoints per write would isolate failures but cost two statements per publish.
   */
  write<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.commit());
      }
    });
  }

  /** Runs `fn` once at the end of the current group transaction (e.g. to store a counter once). */
  beforeCommit(fn: () => void): void {
    this.finishers.push(fn);
  }

  /** Commits whatever is queued now (also used at close). */
  commit(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    const results: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const w of batch) {
          try {
            results.push({ ok: true, value: w.fn() });
          } catch (err) {
            results.push({ ok: false, value: err });
          }
        }
        const finishers = this.finishers;
        this.finishers = [];
        for (const f of finishers) f();
      })();
    } catch (err) {
      this.finishers = [];
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => (results[i]!.ok ? w.resolve(results[i]!.value) : w.reject(results[i]!.value)));
  }

  close(): void {
    if (this.closed) return;
    this.commit();
    this.closed = true;
    this.db.close();
  }
}
