/**
 * The idempotency window on the embedded store. The node is the only writer, so the window in
 * memory is authoritative; each accepted key is also written in the same transaction as the message
 * it guards (its history row, its inbox entry, or for a live-only publish nothing else), so a
 * retry across a restart is still recognised, and the memory copy is rebuilt from the table at
 * start. Bounded by age and by `publish.idempotencyMaxKeys`.
 */
import type { AcceptedPublish } from '../idempotency.js';
import { IdempotencyWindow } from '../memory/idempotency.js';
import type { SqliteDb } from './db.js';

export class SqliteIdempotency extends IdempotencyWindow {
  private readonly insert;
  private readonly prune;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: SqliteDb,
    windowMs: number,
    maxKeys: number,
  ) {
    super(windowMs, maxKeys);
    const db = store.db;
    this.insert = db.prepare('INSERT OR REPLACE INTO accepted (msg_id, at, result) VALUES (?, ?, ?)');
    this.prune = db.prepare('DELETE FROM accepted WHERE at < ?');
    if (this.enabled) {
      const rows = db
        .prepare<[number, number], { msg_id: string; at: number; result: string }>('SELECT msg_id, at, result FROM (SELECT msg_id, at, result FROM accepted WHERE at >= ? ORDER BY at DESC LIMIT ?) ORDER BY at')
        .all(Date.now() - windowMs, maxKeys);
      for (const r of rows) this.set(r.msg_id, JSON.parse(r.result) as AcceptedPublish, r.at);
    }
    this.timer = setInterval(() => void this.store.write(() => this.prune.run(Date.now() - this.windowMs)).catch(() => undefined), 30_000);
    this.timer.unref();
  }

  /**
   * Takes `id` for `accepted`, in memory and in the current write's transaction. Must run inside a
   * store write, after everything else that write stores (a write that throws midway still commits
   * what it wrote before, so the key must come last). If the transaction then fails, the caller
   * `delete`s the id again.
   */
  record(id: string, accepted: AcceptedPublish, at = Date.now()): void {
    this.insert.run(id, at, JSON.stringify(accepted));
    this.set(id, accepted, at);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
