/** Per-user inboxes in the embedded SQLite store; writes join the node's group commit. */
import type { Envelope } from '@herald/protocol';
import { windowId, type IdempotencyKey } from '../idempotency.js';
import type { AppendResult, InboxEntry, InboxLimits, InboxStore } from '../inbox.js';
import type { SqliteDb } from './db.js';
import type { SqliteIdempotency } from './idempotency.js';

interface Row {
  seq: number;
  msg_id: string;
  channel: string | null;
  stored_at: number;
  envelope: string;
}

export class SqliteInbox implements InboxStore {
  private readonly stmt;

  /** `idempotency`: the window the broker uses too, so a key is taken in the append's transaction. */
  constructor(
    private readonly store: SqliteDb,
    private readonly idempotency?: SqliteIdempotency,
  ) {
    const db = store.db;
    this.stmt = {
      find: db.prepare<[string, string], { seq: number }>('SELECT seq FROM inbox WHERE user = ? AND msg_id = ?'),
      nextSeq: db.prepare<[string], { next: number }>('SELECT next FROM inbox_seq WHERE user = ?'),
      putSeq: db.prepare('INSERT INTO inbox_seq (user, next) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET next = excluded.next'),
      insert: db.prepare('INSERT INTO inbox (user, seq, msg_id, channel, stored_at, envelope) VALUES (?, ?, ?, ?, ?, ?)'),
      expire: db.prepare('DELETE FROM inbox WHERE user = ? AND stored_at < ?'),
      count: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM inbox WHERE user = ?'),
      trim: db.prepare('DELETE FROM inbox WHERE user = ? AND seq IN (SELECT seq FROM inbox WHERE user = ? ORDER BY seq LIMIT ?)'),
      list: db.prepare<[string, number, number], Row>('SELECT seq, msg_id, channel, stored_at, envelope FROM inbox WHERE user = ? AND seq > ? ORDER BY seq LIMIT ?'),
      remove: db.prepare('DELETE FROM inbox WHERE user = ? AND msg_id = ?'),
    };
  }

  async append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits, key?: IdempotencyKey): Promise<AppendResult> {
    const json = JSON.stringify(entry.envelope);
    const window = key && this.idempotency?.enabled ? this.idempotency : undefined;
    const id = window ? windowId({ kind: 'user', user }, key!) : undefined;
    let claimed = false;
    try {
      return await this.store.write((): AppendResult => {
        const earlier = id !== undefined ? window!.get(id) : undefined;
        if (earlier) return { seq: 0, duplicate: true, dropped: 0, earlier: { timestamp: earlier.timestamp } };
        const result = this.appendNow(user, entry, json, limits);
        if (id !== undefined) {
          window!.record(id, { timestamp: entry.envelope.timestamp });
          claimed = true;
        }
        return result;
      });
    } catch (err) {
      // The transaction did not commit: the key is free again.
      if (claimed) window!.delete(id!);
      throw err;
    }
  }

  private appendNow(user: string, entry: { envelope: Envelope; channel?: string }, json: string, limits: InboxLimits): AppendResult {
    const existing = this.stmt.find.get(user, entry.envelope.msgId);
    if (existing) return { seq: existing.seq, duplicate: true, dropped: 0 };
    const seq = this.stmt.nextSeq.get(user)?.next ?? 1;
    this.stmt.putSeq.run(user, seq + 1);
    this.stmt.insert.run(user, seq, entry.envelope.msgId, entry.channel ?? null, Date.now(), json);
    return { seq, duplicate: false, dropped: this.prune(user, limits) };
  }

  async list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }> {
    const dropped = await this.store.write(() => this.prune(user, limits));
    const entries = this.stmt.list.all(user, afterSeq, limit).map((r) => ({
      seq: r.seq,
      envelope: JSON.parse(r.envelope) as Envelope,
      ...(r.channel ? { channel: r.channel } : {}),
      storedAt: r.stored_at,
    }));
    return { entries, dropped };
  }

  remove(user: string, msgIds: string[]): Promise<string[]> {
    return this.store.write(() => [...new Set(msgIds)].filter((id) => this.stmt.remove.run(user, id).changes > 0));
  }

  async size(user: string): Promise<number> {
    return this.stmt.count.get(user)?.n ?? 0;
  }

  async close(): Promise<void> {}

  private prune(user: string, limits: InboxLimits): number {
    let dropped = this.stmt.expire.run(user, Date.now() - limits.maxAgeMs).changes;
    const n = this.stmt.count.get(user)?.n ?? 0;
    if (n > limits.maxMessages) dropped += this.stmt.trim.run(user, user, n - limits.maxMessages).changes;
    return dropped;
  }
}
