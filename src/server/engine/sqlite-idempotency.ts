/**
 * The idempotency window on the embedded store: kept in memory for the hot path and rebuilt at
 * start, so a publish retried across a restart is still recognised. A channel message is already
 * in the history table with its msgId, so only publishes without a stream position (user and
 * broadcast targets) cost an extra row here.
 */
import type { StreamPosition } from '../../protocol/frames.js';
import { IdempotencyCache } from '../idempotency.js';
import type { SqliteDb } from './sqlite-db.js';

export class SqliteIdempotency extends IdempotencyCache {
  private readonly insert;
  private readonly prune;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly store: SqliteDb, windowMs: number) {
    super(windowMs);
    const db = store.db;
    this.insert = db.prepare('INSERT OR REPLACE INTO accepted (msg_id, at, result) VALUES (?, ?, ?)');
    this.prune = db.prepare('DELETE FROM accepted WHERE at < ?');
    const since = Date.now() - windowMs;
    const fromHistory = db
      .prepare<[number], { msg_id: string; at: number; offset: number; epoch: string }>(
        'SELECT h.msg_id, h.at, h.offset, c.epoch FROM history h JOIN channels c ON c.channel = h.channel WHERE h.at >= ? ORDER BY h.at',
      )
      .all(since);
    for (const r of fromHistory) super.set(r.msg_id, r.at, { offset: r.offset, epoch: r.epoch }, r.at);
    const rows = db.prepare<[number], { msg_id: string; at: number; result: string }>('SELECT msg_id, at, result FROM accepted WHERE at >= ? ORDER BY at').all(since);
    for (const r of rows) {
      const { timestamp, position } = JSON.parse(r.result) as { timestamp: number; position?: StreamPosition };
      super.set(r.msg_id, timestamp, position, r.at);
    }
    this.timer = setInterval(() => void this.store.write(() => this.prune.run(Date.now() - this.windowMs)).catch(() => undefined), 30_000);
    this.timer.unref();
  }

  override set(key: string, timestamp: number, position: StreamPosition | undefined, now = Date.now()): void {
    super.set(key, timestamp, position, now);
    if (this.windowMs <= 0 || position !== undefined) return; // a positioned message is in history
    void this.store.write(() => this.insert.run(key, now, JSON.stringify({ timestamp, position }))).catch(() => undefined);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
