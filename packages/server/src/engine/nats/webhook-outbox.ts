/**
 * The webhook outbox on JetStream, shared by every node:
 *   `<prefix>_webhooks`: a work-queue stream (file storage), one message per pending event on
 *   `<prefix>.wh.<endpoint token>`, read through one durable pull consumer per endpoint
 *   (`<prefix>_wh_<endpoint>`, created on the first claim) that every node shares — so one
 *   endpoint's backlog never stands in front of another's. JetStream is the lease: a fetched
 *   message is held for `ack_wait` (= leaseMs) and redelivered to any node if not acknowledged;
 *   a retry is a NAK with a delay; an append is refused when the stream holds `maxEntries`
 *   (discard: new), so committed events are never pushed out;
 *   `<prefix>_webhooks_dead`: dead letters, one subject per event id (at most one message each),
 *   at most `maxDeadLetters` messages (discard: old).
 *
 * A claim with nothing due waits up to a second for a message (a JetStream fetch), so callers
 * claim per endpoint. Not ordered by key: the shared consumer hands out messages to whichever node fetches, and a
 * NAKed message is redelivered after later ones. Keeping order would take one consumer per key.
 * `lastError` of a pending entry is known only to the node that saw the failure (a NAK carries no
 * data); a dead letter keeps its final error.
 */
import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, DiscardPolicy, nanos, RetentionPolicy, StorageType, type Consumer, type JsMsg } from 'nats';
import type { ClaimedWebhook, ClaimWant, DeadWebhook, WebhookOutbox, WebhookOutboxLimits, WebhookRecord } from '../webhook-outbox.js';
import {
  apiErrorCode,
  checkNatsPrefix,
  checkNatsReplicas,
  closeLink,
  ensureStream,
  lastMessage,
  openJetStream,
  readFiltered,
  subjectToken,
  type JetStreamLink,
  type NatsEngineOptions,
} from './jetstream.js';

/** JetStream's "maximum messages exceeded" (a discard-new stream is full). */
const STREAM_FULL = 10077;
const APPEND_DEDUP_WINDOW_MS = 120_000;

interface Stored {
  id: string;
  endpoint: string;
  key: string;
  body: string;
  createdAt: number;
  lastError?: string;
  deadAt?: number;
}

/** Last errors remembered for retried entries (see `errors`). */
const MAX_REMEMBERED_ERRORS = 10_000;

export class NatsWebhookOutbox implements WebhookOutbox {
  readonly orderedByKey = false;
  private readonly stream: string;
  private readonly deadStream: string;
  private readonly consumers = new Map<string, Promise<Consumer>>();
  private readonly held = new Map<string, JsMsg>();
  /**
   * The last error of entries this node retried, for their next claim here. A peer usually settles
   * them, so entries are never deleted by their owner: the map keeps the newest, bounded.
   */
  private readonly errors = new Map<string, string>();

  private constructor(
    private readonly link: JetStreamLink,
    private readonly prefix: string,
    private readonly limits: WebhookOutboxLimits,
  ) {
    this.stream = `${prefix}_webhooks`;
    this.deadStream = `${prefix}_webhooks_dead`;
  }

  static async connect(opts: NatsEngineOptions, limits: WebhookOutboxLimits): Promise<NatsWebhookOutbox> {
    checkNatsPrefix(opts.prefix);
    const replicas = checkNatsReplicas(opts.replicas);
    const link = await openJetStream({ servers: opts.servers, ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}) }, `herald:${opts.prefix}:webhooks`);
    const outbox = new NatsWebhookOutbox(link, opts.prefix, limits);
    try {
      await outbox.prepare(replicas);
    } catch (err) {
      await closeLink(link.nc);
      throw err;
    }
    return outbox;
  }

  private async prepare(replicas: number): Promise<void> {
    const { jsm } = this.link;
    await ensureStream(
      jsm,
      {
        name: this.stream,
        subjects: [`${this.prefix}.wh.>`],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        discard: DiscardPolicy.New,
        max_msgs: this.limits.maxEntries,
        num_replicas: replicas,
        duplicate_window: nanos(APPEND_DEDUP_WINDOW_MS),
      },
      (existing) => (existing.max_msgs !== this.limits.maxEntries ? { ...existing, max_msgs: this.limits.maxEntries } : undefined),
    );
    await ensureStream(
      jsm,
      {
        name: this.deadStream,
        subjects: [`${this.prefix}.whdead.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_msgs: this.limits.maxDeadLetters,
        max_msgs_per_subject: 1,
        num_replicas: replicas,
      },
      (existing) => (existing.max_msgs !== this.limits.maxDeadLetters ? { ...existing, max_msgs: this.limits.maxDeadLetters } : undefined),
    );
  }

  private consumerName(endpoint: string): string {
    return `${this.prefix}_wh_${endpoint}`;
  }

  /** The endpoint's durable consumer, created (or its lease length brought in line) once per process. */
  private consumerOf(endpoint: string): Promise<Consumer> {
    let c = this.consumers.get(endpoint);
    if (!c) {
      c = (async () => {
        const name = this.consumerName(endpoint);
        const config = {
          durable_name: name,
          filter_subject: this.subject(endpoint),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(this.limits.leaseMs),
          max_deliver: -1,
          max_ack_pending: -1,
        };
        try {
          await this.link.jsm.consumers.add(this.stream, config);
        } catch {
          // Adding a durable that exists with other settings fails; the lease length is ours to change.
          await this.link.jsm.consumers.update(this.stream, name, { ack_wait: config.ack_wait });
        }
        return this.link.js.consumers.get(this.stream, name);
      })();
      this.consumers.set(endpoint, c);
      c.catch(() => this.consumers.delete(endpoint));
    }
    return c;
  }

  async append(records: readonly WebhookRecord[]): Promise<{ stored: number; refused: number }> {
    let stored = 0;
    const now = Date.now();
    for (const r of records) {
      const data: Stored = { id: r.id, endpoint: r.endpoint, key: r.key, body: r.body, createdAt: now };
      try {
        // The id as Nats-Msg-Id: an append retried after an unknown outcome is stored once.
        await this.link.js.publish(this.subject(r.endpoint), JSON.stringify(data), { msgID: r.id });
        stored++;
      } catch (err) {
        if (apiErrorCode(err) === STREAM_FULL || /maximum messages/i.test((err as Error).message)) break;
        throw err;
      }
    }
    return { stored, refused: records.length - stored };
  }

  async claim(want: readonly ClaimWant[]): Promise<ClaimedWebhook[]> {
    const parts = await Promise.all(want.filter((w) => w.limit >= 1).map((w) => this.claimOf(w.endpoint, Math.floor(w.limit))));
    return parts.flat();
  }

  private async claimOf(endpoint: string, max: number): Promise<ClaimedWebhook[]> {
    const consumer = await this.consumerOf(endpoint);
    const out: ClaimedWebhook[] = [];
    // A pull request must end on the server before the client stops reading it: one left open
    // (a batch fetch abandoned once it looked drained) still takes the messages appended next,
    // which nobody reads, and they wait out the whole lease. So: what is due now, without waiting
    // (the request ends when the server has handed it out), and when nothing is, a wait for one
    // message, which also ends the request the moment it is delivered.
    const due = this.link.js.fetch(this.stream, this.consumerName(endpoint), { batch: max, no_wait: true });
    for await (const m of due) out.push(this.hold(m));
    if (out.length === 0) {
      const m = await consumer.next({ expires: 1000 });
      if (m) out.push(this.hold(m));
    }
    return out;
  }

  private hold(m: JsMsg): ClaimedWebhook {
    const e = m.json<Stored>();
    const lease = randomUUID();
    this.held.set(lease, m);
    const lastError = this.errors.get(e.id);
    return { id: e.id, endpoint: e.endpoint, key: e.key, body: e.body, createdAt: e.createdAt, attempts: m.info.deliveryCount, lease, ...(lastError ? { lastError } : {}) };
  }

  async ack(entry: ClaimedWebhook): Promise<boolean> {
    const m = this.take(entry);
    if (!m) return false;
    this.errors.delete(entry.id);
    return m.ackAck();
  }

  async retry(entry: ClaimedWebhook, delayMs: number, error: string): Promise<boolean> {
    const m = this.take(entry);
    if (!m) return false;
    this.errors.delete(entry.id);
    this.errors.set(entry.id, error);
    if (this.errors.size > MAX_REMEMBERED_ERRORS) this.errors.delete(this.errors.keys().next().value!);
    m.nak(Math.max(0, Math.floor(delayMs)));
    return true;
  }

  async bury(entry: ClaimedWebhook, error: string): Promise<boolean> {
    const m = this.take(entry);
    if (!m) return false;
    this.errors.delete(entry.id);
    const e = m.json<Stored>();
    // The dead letter is stored before the entry leaves: a crash in between leaves a duplicate
    // (the same subject, so one dead letter), never a loss.
    await this.link.js.publish(this.deadSubject(e.id), JSON.stringify({ ...e, attempts: m.info.deliveryCount, lastError: error, deadAt: Date.now() }));
    return m.ackAck();
  }

  async deadLetters(limit: number): Promise<DeadWebhook[]> {
    const max = Math.max(0, Math.floor(limit));
    if (max === 0) return [];
    return readFiltered(this.link, this.deadStream, { filter: `${this.prefix}.whdead.>` }, async (pending, fetch) => {
      const msgs = await fetch(Math.min(max, pending));
      return msgs.map((m) => {
        const e = m.json<Stored & { attempts: number }>();
        return { id: e.id, endpoint: e.endpoint, key: e.key, body: e.body, createdAt: e.createdAt, attempts: e.attempts, lastError: e.lastError ?? '', deadAt: e.deadAt ?? 0 };
      });
    });
  }

  async requeue(id: string): Promise<boolean> {
    const stored = await lastMessage(this.link, this.deadStream, this.deadSubject(id));
    if (!stored) return false;
    const e = stored.json<Stored>();
    const data: Stored = { id: e.id, endpoint: e.endpoint, key: e.key, body: e.body, createdAt: e.createdAt };
    // Published before the dead letter goes, so a crash in between duplicates rather than loses;
    // no Nats-Msg-Id, which the first append's duplicate window might still hold.
    await this.link.js.publish(this.subject(e.endpoint), JSON.stringify(data));
    await this.link.jsm.streams.purge(this.deadStream, { filter: this.deadSubject(id) });
    return true;
  }

  async discard(id: string): Promise<boolean> {
    const r = await this.link.jsm.streams.purge(this.deadStream, { filter: this.deadSubject(id) });
    return r.purged > 0;
  }

  async depth(): Promise<{ pending: number; dead: number }> {
    const [a, b] = await Promise.all([this.link.jsm.streams.info(this.stream), this.link.jsm.streams.info(this.deadStream)]);
    return { pending: a.state.messages, dead: b.state.messages };
  }

  async close(): Promise<void> {
    // Held messages are not NAKed: their leases run out and a peer (or this node, restarted) sends them.
    this.held.clear();
    await closeLink(this.link.nc);
  }

  private take(entry: ClaimedWebhook): JsMsg | undefined {
    const m = this.held.get(entry.lease);
    this.held.delete(entry.lease);
    return m;
  }

  private subject(endpoint: string): string {
    return `${this.prefix}.wh.${subjectToken(endpoint)}`;
  }

  private deadSubject(id: string): string {
    return `${this.prefix}.whdead.${subjectToken(id)}`;
  }
}
