/**
 * The webhook outbox in the embedded SQLite store (one node). Writes join the node's group commit,
 * so `append` resolves once the events are in a committed transaction. A leased entry's `due_at`
 * is its lease's end, so a claim that was never answered (the process died) is due again then.
 *
 * Only the head of each (endpoint, key) queue can be due: the entries behind it wait with `due_at`
 * BLOCKED, and the one after a head is made due when the head leaves (ack, bury). So a claim reads
 * due heads off the index and never walks the entries queued behind a head that is being retried —
 * the outbox of an endpoint that is down (up to `maxOutbox` entries) costs a claim nothing.
 */
import { randomUUID } from 'node:crypto';
import type { ClaimedWebhook, ClaimWant, DeadWebhook, WebhookOutbox, WebhookOutboxLimits, WebhookRecord } from '../webhook-outbox.js';
import type { SqliteDb } from './db.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS webhook_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
  created_at INTEGER NOT NULL, attempts INTEGER NOT NULL, due_at INTEGER NOT NULL, lease TEXT, last_error TEXT);
CREATE INDEX IF NOT EXISTS webhook_outbox_key ON webhook_outbox (endpoint, key, seq);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (endpoint, due_at);
CREATE TABLE IF NOT EXISTS webhook_dead (
  id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL, last_error TEXT NOT NULL, dead_at INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_dead_at ON webhook_dead (seq);
`;

/** `due_at` of an entry waiting behind the head of its key's queue (never due by time). */
const BLOCKED = Number.MAX_SAFE_INTEGER;

interface Row {
  seq: number;
  id: string;
  endpoint: string;
  key: string;
  body: string;
  created_at: number;
  attempts: number;
  last_error: string | null;
}

interface DeadRow extends Row {
  dead_at: number;
  last_error: string;
}

export class SqliteWebhookOutbox implements WebhookOutbox {
  readonly orderedByKey = true;
  private readonly stmt;

  constructor(
    private readonly store: SqliteDb,
    private readonly limits: WebhookOutboxLimits,
  ) {
    const db = store.db;
    db.exec(SCHEMA);
    this.stmt = {
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM webhook_outbox'),
      deadCount: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM webhook_dead'),
      insert: db.prepare('INSERT OR IGNORE INTO webhook_outbox (id, endpoint, key, body, created_at, attempts, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      queued: db.prepare<[string, string], { seq: number }>('SELECT seq FROM webhook_outbox WHERE endpoint = ? AND key = ? LIMIT 1'),
      // The next entry of a key's queue becomes due when the head has left. Entries stored before
      // heads were tracked keep their own due_at; the claim's NOT EXISTS keeps them in order.
      unblockNext: db.prepare(
        `UPDATE webhook_outbox SET due_at = ? WHERE due_at = ${BLOCKED}
           AND seq = (SELECT seq FROM webhook_outbox WHERE endpoint = ? AND key = ? ORDER BY seq LIMIT 1)`,
      ),
      // The head of each (endpoint, key) queue, if due.
      due: db.prepare<[string, number, number], Row>(
        `SELECT o.* FROM webhook_outbox o WHERE o.endpoint = ? AND o.due_at <= ?
           AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.endpoint = o.endpoint AND p.key = o.key AND p.seq < o.seq)
         ORDER BY o.due_at, o.seq LIMIT ?`,
      ),
      lease: db.prepare('UPDATE webhook_outbox SET lease = ?, due_at = ?, attempts = attempts + 1 WHERE seq = ?'),
      get: db.prepare<[string, string], Row>('SELECT * FROM webhook_outbox WHERE id = ? AND lease = ?'),
      remove: db.prepare('DELETE FROM webhook_outbox WHERE id = ? AND lease = ?'),
      reschedule: db.prepare('UPDATE webhook_outbox SET lease = NULL, due_at = ?, last_error = ? WHERE id = ? AND lease = ?'),
      bury: db.prepare('INSERT OR REPLACE INTO webhook_dead (id, endpoint, key, body, created_at, attempts, last_error, dead_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      trimDead: db.prepare('DELETE FROM webhook_dead WHERE seq IN (SELECT seq FROM webhook_dead ORDER BY seq LIMIT ?)'),
      listDead: db.prepare<[number], DeadRow>('SELECT * FROM webhook_dead ORDER BY seq LIMIT ?'),
      getDead: db.prepare<[string], DeadRow>('SELECT * FROM webhook_dead WHERE id = ?'),
      deleteDead: db.prepare('DELETE FROM webhook_dead WHERE id = ?'),
    };
  }

  append(records: readonly WebhookRecord[]): Promise<{ stored: number; refused: number }> {
    return this.store.write(() => {
      let room = this.limits.maxEntries - this.stmt.count.get()!.n;
      let stored = 0;
      const now = Date.now();
      for (const r of records) {
        if (room <= 0) break;
        // An id already waiting (an append retried) is not stored twice.
        if (this.enqueue(r.id, r.endpoint, r.key, r.body, now, now)) room--;
        stored++;
      }
      return { stored, refused: records.length - stored };
    });
  }

  claim(want: readonly ClaimWant[]): Promise<ClaimedWebhook[]> {
    return this.store.write(() => {
      const now = Date.now();
      return want.flatMap(({ endpoint, limit }) =>
        limit < 1 ? [] : this.stmt.due.all(endpoint, now, Math.floor(limit)).map((row) => {
          const lease = randomUUID();
          this.stmt.lease.run(lease, now + this.limits.leaseMs, row.seq);
          return { ...pending(row), attempts: row.attempts + 1, lease };
        }),
      );
    });
  }

  ack(entry: ClaimedWebhook): Promise<boolean> {
    return this.store.write(() => {
      if (this.stmt.remove.run(entry.id, entry.lease).changes === 0) return false;
      this.stmt.unblockNext.run(Date.now(), entry.endpoint, entry.key);
      return true;
    });
  }

  retry(entry: ClaimedWebhook, delayMs: number, error: string): Promise<boolean> {
    return this.store.write(() => this.stmt.reschedule.run(Date.now() + Math.max(0, delayMs), error, entry.id, entry.lease).changes > 0);
  }

  bury(entry: ClaimedWebhook, error: string): Promise<boolean> {
    return this.store.write(() => {
      const row = this.stmt.get.get(entry.id, entry.lease);
      if (!row) return false;
      this.stmt.remove.run(entry.id, entry.lease);
      this.stmt.unblockNext.run(Date.now(), row.endpoint, row.key);
      this.stmt.bury.run(row.id, row.endpoint, row.key, row.body, row.created_at, row.attempts, error, Date.now(), row.seq);
      const excess = this.stmt.deadCount.get()!.n - this.limits.maxDeadLetters;
      if (excess > 0) this.stmt.trimDead.run(excess);
      return true;
    });
  }

  async deadLetters(limit: number): Promise<DeadWebhook[]> {
    return this.stmt.listDead.all(Math.max(0, Math.floor(limit))).map((r) => ({ ...pending(r), deadAt: r.dead_at, lastError: r.last_error }));
  }

  requeue(id: string): Promise<boolean> {
    return this.store.write(() => {
      const row = this.stmt.getDead.get(id);
      if (!row) return false;
      this.stmt.deleteDead.run(id);
      const now = Date.now();
      // A requeued event goes to the back of its key's queue: it is retried after what came since.
      this.enqueue(row.id, row.endpoint, row.key, row.body, row.created_at, now);
      return true;
    });
  }

  discard(id: string): Promise<boolean> {
    return this.store.write(() => this.stmt.deleteDead.run(id).changes > 0);
  }

  async depth(): Promise<{ pending: number; dead: number }> {
    return { pending: this.stmt.count.get()!.n, dead: this.stmt.deadCount.get()!.n };
  }

  async close(): Promise<void> {}

  /** Inserts at the back of the key's queue: due now when it is the head, BLOCKED behind one. Inside a write. */
  private enqueue(id: string, endpoint: string, key: string, body: string, createdAt: number, now: number): boolean {
    const due = this.stmt.queued.get(endpoint, key) ? BLOCKED : now;
    return this.stmt.insert.run(id, endpoint, key, body, createdAt, 0, due).changes > 0;
  }
}

function pending(row: Row): Omit<ClaimedWebhook, 'lease'> {
  return {
    id: row.id,
    endpoint: row.endpoint,
    key: row.key,
    body: row.body,
    createdAt: row.created_at,
    attempts: row.attempts,
    ...(row.last_error !== null ? { lastError: row.last_error } : {}),
  };
}
