/**
 * Per-user inboxes in one JetStream stream, `<prefix>_inbox`, file storage. Each entry is one
 * message on its own subject `<prefix>.inbox.<user token>.<msgId token>`, body
 * `{"envelope":…,"channel"?:…}`; the stream keeps at most one message per subject.
 *
 * Why a stream with a subject per entry rather than a KV bucket or a subject per user:
 * - seq is the stream sequence: assigned by JetStream, strictly increasing per user, never reused
 *   (not even after the inbox empties), and the same on every node;
 * - de-duplication by msgId is one atomic publish: `Nats-Expected-Last-Subject-Sequence: 0` fails
 *   when the entry's subject already holds a message, whichever node wrote it;
 * - removal on ACK is a purge of the entry's subject, which says whether it removed anything, and
 *   leaves no delete marker behind (a KV delete would);
 * - a user's entries, oldest first, are one consumer filtered on `<user token>.>`.
 *
 * Limits: after an append and before a list, the user's oldest entry is checked (an append reads it
 * alongside its publish) and the entry count is bounded by the sequence gap, counted exactly (one
 * consumer) only when that bound passes maxMessages; only when a limit is passed is the user's
 * whole inbox read (headers only) and the oldest entries beyond the limits deleted by sequence. A delete that finds the message already
 * gone is not counted, so two nodes pruning at once never report a drop twice. `storedAt` is the
 * NATS server's timestamp; `maxAgeMs` is measured against this node's clock, so nodes' clocks should
 * be within a small fraction of it of the server's.
 *
 * The stream's max_age is the garbage collection for inboxes nobody reads: `retainMs`, meant to be
 * an hour past `inbox.maxAgeMs`, so a reader who comes within that hour still learns how many
 * entries expired.
 *
 * An at-least-once user message with an idempotency key carries it as `Nats-Msg-Id`; the stream's
 * duplicate window is `publish.idempotencyWindowMs`, so JetStream refuses a retry atomically — also
 * one that comes after the entry was acknowledged and purged (see nats/idempotency.ts).
 */
import { DiscardPolicy, headers, nanos, RetentionPolicy, StorageType, type JsMsg, type StoredMsg } from 'nats';
import type { Envelope } from '@herald/protocol';
import type { IdempotencyKey } from '../idempotency.js';
import type { AppendResult, InboxEntry, InboxLimits, InboxStore } from '../inbox.js';
import { duplicateWindow, natsIdempotencyId } from './idempotency.js';
import {
  checkNatsPrefix,
  checkNatsReplicas,
  closeLink,
  apiErrorCode,
  ensureStream,
  inParallel,
  deleteMessage,
  lastMessage,
  nextMessage,
  openJetStream,
  readFiltered,
  subjectToken,
  watchConnection,
  WRONG_LAST_SEQUENCE,
  type JetStreamLink,
  type NatsEngineOptions,
} from './jetstream.js';

export interface NatsInboxOptions extends NatsEngineOptions {
  /** How long the stream keeps an entry at most (ms): `inbox.maxAgeMs` plus an hour. */
  retainMs: number;
  /** publish.idempotencyWindowMs: the stream's duplicate window. Default 120 000; 0 turns keys off. */
  idempotencyWindowMs?: number;
}

/** Purges in flight at once for one `remove`. */
const REMOVE_WIDTH = 64;
const MAX_APPEND_ATTEMPTS = 5;

export class NatsInbox implements InboxStore {
  private readonly stream: string;
  private readonly windowMs: number;

  private constructor(
    private readonly link: JetStreamLink,
    private readonly opts: NatsInboxOptions,
  ) {
    this.stream = inboxStream(opts.prefix);
    this.windowMs = Math.max(0, Math.floor(opts.idempotencyWindowMs ?? 120_000));
  }

  static async connect(opts: NatsInboxOptions): Promise<NatsInbox> {
    checkNatsPrefix(opts.prefix);
    checkNatsReplicas(opts.replicas);
    if (!(opts.retainMs >= 1000)) throw new Error(`NatsInbox retainMs must be at least 1000 ms, got ${opts.retainMs}`);
    const link = await openJetStream(opts, `herald:${opts.prefix}:inbox`);
    const inbox = new NatsInbox(link, opts);
    try {
      await inbox.ensureStream();
    } catch (err) {
      await link.nc.close().catch(() => undefined);
      throw new Error(`engine.nats.servers=${opts.servers.join(',')}: cannot create the inbox stream ${inbox.stream}: ${(err as Error).message}`, { cause: err });
    }
    // A server that lost its JetStream state gets the stream back (empty) rather than refusing appends.
    watchConnection(link.nc, { reconnect: () => void inbox.ensureStream().catch((err) => opts.onError?.(err as Error, 'inbox stream')), error: opts.onError });
    return inbox;
  }

  async append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits, key?: IdempotencyKey): Promise<AppendResult> {
    const subject = this.entrySubject(user, entry.envelope.msgId);
    const id = key && this.windowMs > 0 ? natsIdempotencyId({ kind: 'user', user }, key) : undefined;
    const body = JSON.stringify(entry.channel ? { envelope: entry.envelope, channel: entry.channel } : { envelope: entry.envelope });
    for (let attempt = 1; ; attempt++) {
      // Read alongside the publish: the new entry cannot change which entry is oldest (unless it is
      // the only one), so the limit check usually needs no further round trip.
      const oldestRead = nextMessage(this.link, this.stream, this.userFilter(user));
      oldestRead.catch(() => undefined);
      const h = headers();
      h.set('Nats-Expected-Last-Subject-Sequence', '0');
      if (id !== undefined) h.set('Nats-Msg-Id', id);
      try {
        const ack = await this.link.js.publish(subject, body, { headers: h, timeout: this.link.timeoutMs });
        if (ack.duplicate) return { seq: 0, duplicate: true, dropped: 0, earlier: { timestamp: await this.storedTimestamp(ack.seq, entry.envelope.timestamp) } };
        const oldest = await oldestRead;
        return { seq: ack.seq, duplicate: false, dropped: await this.prune(user, limits, { newestSeq: ack.seq, oldest: oldest ?? null }) };
      } catch (err) {
        if (apiErrorCode(err) !== WRONG_LAST_SEQUENCE) throw err;
      }
      const existing = await lastMessage(this.link, this.stream, subject);
      if (existing) return { seq: existing.seq, duplicate: true, dropped: 0 };
      // Acknowledged between the publish and the read: the msgId is free again.
      if (attempt >= MAX_APPEND_ATTEMPTS) throw new Error(`inbox append of ${entry.envelope.msgId} kept racing with its removal`);
    }
  }

  /**
   * The acceptance time of the entry stored at `seq`, which a duplicate is answered with. Once it
   * was acknowledged (and purged), the duplicate's own time stands in.
   */
  private async storedTimestamp(seq: number, fallback: number): Promise<number> {
    try {
      const m = await this.link.jsm.streams.getMessage(this.stream, { seq });
      const t = (m.json() as { envelope?: { timestamp?: unknown } }).envelope?.timestamp;
      return typeof t === 'number' ? t : fallback;
    } catch {
      return fallback;
    }
  }

  async list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }> {
    const oldest = (await nextMessage(this.link, this.stream, this.userFilter(user))) ?? null;
    // Most connects find an empty inbox: that costs this one read, and no consumer.
    if (!oldest) return { entries: [], dropped: 0 };
    const dropped = await this.prune(user, limits, { oldest });
    const max = Math.max(0, Math.floor(limit));
    if (max === 0) return { entries: [], dropped };
    const msgs = await readFiltered(this.link, this.stream, { filter: this.userFilter(user), startSeq: Math.max(0, Math.floor(afterSeq)) + 1 }, (pending, fetch) =>
      fetch(Math.min(pending, max)),
    );
    return { entries: msgs.filter((m) => m.seq > afterSeq).map(toEntry), dropped };
  }

  async remove(user: string, msgIds: string[]): Promise<string[]> {
    const ids = [...new Set(msgIds)];
    const purged = await inParallel(ids, REMOVE_WIDTH, async (id) => (await this.link.jsm.streams.purge(this.stream, { filter: this.entrySubject(user, id) })).purged);
    return ids.filter((_, i) => purged[i]! > 0);
  }

  async size(user: string): Promise<number> {
    return readFiltered(this.link, this.stream, { filter: this.userFilter(user), headersOnly: true }, async (pending) => pending);
  }

  async close(): Promise<void> {
    await closeLink(this.link.nc);
  }

  /**
   * Deletes entries older than maxAgeMs, then the oldest beyond maxMessages. Returns how many this
   * call deleted. `known` is the user's oldest entry as the caller read it and, after an append,
   * the newest entry's seq: stream sequences are shared by all users, so `newestSeq - oldest.seq + 1`
   * bounds the user's entry count from above, and within maxMessages nothing needs counting.
   */
  private async prune(user: string, limits: InboxLimits, known: { newestSeq?: number; oldest: StoredMsg | null }): Promise<number> {
    const cutoff = Date.now() - limits.maxAgeMs;
    const maxMessages = Math.max(0, Math.floor(limits.maxMessages));
    const { oldest, newestSeq } = known;
    // Read before an append landed on an empty inbox, the oldest is the appended entry itself.
    const oldestSeq = oldest?.seq ?? newestSeq;
    if (oldestSeq === undefined) return 0;
    const oldestExpired = oldest !== null && oldest.time.getTime() < cutoff;
    if (!oldestExpired && newestSeq !== undefined && newestSeq - oldestSeq + 1 <= maxMessages) return 0;
    return this.pruneExact(this.userFilter(user), cutoff, maxMessages, oldestExpired);
  }

  /** Counts the user's entries and, past a limit, reads them all (headers only) and deletes the excess by sequence. */
  private pruneExact(filter: string, cutoff: number, maxMessages: number, oldestExpired: boolean): Promise<number> {
    return readFiltered(this.link, this.stream, { filter, headersOnly: true }, async (pending, fetch) => {
      if (pending <= maxMessages && !oldestExpired) return 0;
      const all = await fetch(pending);
      const fresh = all.filter((m) => storedAt(m) >= cutoff);
      const doomed = [...all.filter((m) => storedAt(m) < cutoff), ...fresh.slice(0, Math.max(0, fresh.length - maxMessages))];
      const deleted = await inParallel(doomed, REMOVE_WIDTH, (m) => deleteMessage(this.link, this.stream, m.seq));
      return deleted.filter(Boolean).length;
    });
  }

  private async ensureStream(): Promise<void> {
    const replicas = checkNatsReplicas(this.opts.replicas);
    const retain = nanos(this.opts.retainMs);
    const dupWindow = duplicateWindow(this.windowMs, retain);
    await ensureStream(
      this.link.jsm,
      {
        name: this.stream,
        subjects: [`${this.opts.prefix}.inbox.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_msgs_per_subject: 1,
        max_age: retain,
        num_replicas: replicas,
        allow_direct: true,
        ...(dupWindow !== undefined ? { duplicate_window: dupWindow } : {}),
      },
      (existing) => {
        const change: Record<string, unknown> = {};
        if (existing.max_age !== 0 && existing.max_age < retain) change.max_age = retain;
        if (!existing.allow_direct) change.allow_direct = true;
        // The node that started last sets the window (all nodes should share one publish.idempotencyWindowMs).
        const window = duplicateWindow(this.windowMs, (change.max_age as number | undefined) ?? existing.max_age);
        if (window !== undefined && existing.duplicate_window !== window) change.duplicate_window = window;
        return Object.keys(change).length > 0 ? { ...existing, ...change } : undefined;
      },
    );
  }

  private entrySubject(user: string, msgId: string): string {
    return `${this.opts.prefix}.inbox.${subjectToken(user)}.${subjectToken(msgId)}`;
  }

  private userFilter(user: string): string {
    return `${this.opts.prefix}.inbox.${subjectToken(user)}.>`;
  }
}

export function inboxStream(prefix: string): string {
  return `${prefix}_inbox`;
}

function storedAt(m: JsMsg): number {
  return Math.floor(m.info.timestampNanos / 1e6);
}

function toEntry(m: JsMsg): InboxEntry {
  const body = JSON.parse(m.string()) as { envelope: Envelope; channel?: string };
  return { seq: m.seq, envelope: body.envelope, ...(body.channel ? { channel: body.channel } : {}), storedAt: storedAt(m) };
}
