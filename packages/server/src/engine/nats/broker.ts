/**
 * Broker over NATS. Live delivery is core NATS: `${prefix}.ch.<token>` per channel,
 * `${prefix}.user.<token>` per user and `${prefix}.all`, where a token is the base64url of the
 * name (channels may contain `.`, which separates subject tokens). History is one JetStream
 * stream, `<prefix>_history`, one subject per channel (`${prefix}.hist.<token>`).
 *
 * Positions (documented choice):
 * - offset = the JetStream stream sequence of the channel's message. It is assigned by JetStream
 *   when it stores the message, so it is increasing per channel but not contiguous (other channels
 *   share the sequence); clients only ever compare offsets, never count them.
 * - epoch = the stream's identity (a hash of its creation time): a stream that was deleted or lost
 *   with a non-persistent server comes back with a new epoch, which tells clients recovery failed.
 * - Each message carries `Herald-Prev`, the offset of the channel's previous message. The publish is
 *   a compare-and-set on the subject's last sequence (`Nats-Expected-Last-Subject-Sequence`), so the
 *   chain is exact, and "complete" means: the first retained message after `since` links back to
 *   `since` (nothing between was pruned), no message after `since` is expired, and there are no more
 *   than `limit`. Publishes to one channel are serialized on each node (retrying on a lost CAS race
 *   with another node); the live dispatch is sent on core NATS after JetStream's ack, carrying the
 *   position and `prev`, so `publish` resolves only once the message is stored. Dispatches from
 *   different nodes can arrive out of offset order; ChannelSequencer restores it from `prev`.
 * - Per-channel limits: the stream keeps `maxHistorySize` per subject and `retainMs` overall; each
 *   message carries its channel's `Herald-Size` / `Herald-Ttl`, and reads apply them, so namespaces
 *   with smaller windows behave as configured. The channel's top offset is its newest stored
 *   message, so it survives the channel's TTL but not `retainMs` (default 24 h): a client holding
 *   offset 0 ("saw it empty") who returns after a whole channel aged out of the stream may be told
 *   "complete" wrongly — hence the long default.
 * - Cost: publishes to ONE channel are serialized per node (one JetStream round trip each, about
 *   1.2k/s on localhost); different channels proceed in parallel.
 * - A channel without messages reads as offset 0 of the stream's epoch; reading creates nothing.
 *
 * Idempotent publishes (see nats/idempotency.ts): a channel message carries its key as
 * `Nats-Msg-Id`, and the history stream's duplicate window is `publish.idempotencyWindowMs`, so
 * JetStream itself refuses the second store of a key, atomically and for every node; user and
 * broadcast dispatches take their key in the KV bucket `<prefix>_idem` first.
 */
import { createHash } from 'node:crypto';
import { DiscardPolicy, headers, nanos, RetentionPolicy, StorageType, type JsMsg, type KV, type NatsConnection, type StreamConfig, type Subscription } from 'nats';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../config.js';
import type { IdempotencyKey } from '../idempotency.js';
import type { Broker, BrokerHandler, Dispatch, DispatchTarget, HistoryEntry, HistoryQuery, HistoryResult, Published } from '../broker.js';
import { ChannelSequencer } from './channel-sequencer.js';
import { encodeDispatch, encodedEnvelope } from '../encoded-envelope.js';
import { duplicateWindow, natsIdempotencyId, openIdempotencyBucket } from './idempotency.js';
import { apiErrorCode, checkNatsPrefix, closeLink, ensureStream, lastMessage, openJetStream, readFiltered, subjectToken, watchConnection, WRONG_LAST_SEQUENCE, type JetStreamLink } from './jetstream.js';

export interface NatsBrokerOptions {
  /** engine.nats.servers */
  servers: string[];
  /** engine.nats.prefix: first token of every subject; also names the stream. */
  prefix: string;
  /** Largest history size of any channel (messages kept per channel subject). Default 1000. */
  maxHistorySize?: number;
  /** How long the stream keeps messages at most (ms); at least the largest channel TTL. Default 24 h. */
  retainMs?: number;
  /** engine.nats.replicas: replicas of the history stream when Herald creates it. Default 1. */
  replicas?: number;
  /** Publish and history requests fail after this long (ms). Default 3000. */
  requestTimeoutMs?: number;
  /** publish.idempotencyWindowMs: the history stream's duplicate window and the KV bucket's TTL. Default 120 000; 0 turns keys off. */
  idempotencyWindowMs?: number;
  onError?: (err: Error, where: string) => void;
}

/** How often a live-only publish tries to take a key that keeps expiring under it. */
const MAX_CLAIM_ATTEMPTS = 3;
const MAX_CAS_ATTEMPTS = 20;

export class NatsBroker implements Broker {
  private link: JetStreamLink | undefined;
  /** Keys of live-only publishes (user and broadcast targets); undefined when keys are off. */
  private kv: KV | undefined;
  private handler: BrokerHandler | undefined;
  private epoch = '';
  private online = false;
  private closed = false;
  private readonly subs = new Map<string, Subscription>();
  /** Last stored sequence per channel, as far as this node knows (the CAS guess). */
  private readonly lastSeq = new Map<string, number>();
  /** Per-channel publish queue, so a node's publishes to one channel do not race each other. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Channel dispatches in offset order, whichever node's connection brought them first. */
  private readonly sequencer = new ChannelSequencer<Dispatch>((d) => this.handler?.onDispatch(d));
  private readonly prefix: string;
  private readonly stream: string;
  private readonly timeoutMs: number;
  private readonly windowMs: number;

  constructor(private readonly opts: NatsBrokerOptions) {
    checkNatsPrefix(opts.prefix);
    this.prefix = opts.prefix;
    this.stream = `${opts.prefix}_history`;
    this.timeoutMs = opts.requestTimeoutMs ?? 3000;
    this.windowMs = Math.max(0, Math.floor(opts.idempotencyWindowMs ?? 120_000));
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    const link = await openJetStream({ servers: this.opts.servers, requestTimeoutMs: this.timeoutMs }, `herald:${this.prefix}:broker`);
    const nc = link.nc;
    this.link = link;
    this.online = true;
    this.watchStatus(nc);
    try {
      await this.ensureStream();
      if (this.windowMs > 0) this.kv = await openIdempotencyBucket(link, this.prefix, this.windowMs, this.opts.replicas ?? 1);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new Error(`NATS at engine.nats.servers=${this.opts.servers.join(',')} has no usable JetStream (start nats-server with -js): ${(err as Error).message}`, { cause: err });
    }
    this.addSub(`${this.prefix}.all`);
    await nc.flush();
  }

  async subscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void> {
    const nc = this.connection();
    this.addSub(this.liveSubject(target));
    // Once the server answers the flush it has the subscription: dispatches will arrive.
    await nc.flush();
  }

  async unsubscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void> {
    const subject = this.liveSubject(target);
    const sub = this.subs.get(subject);
    if (!sub) return;
    this.subs.delete(subject);
    sub.unsubscribe();
    if (target.kind === 'channel') this.sequencer.forget(target.channel);
  }

  async publish(dispatch: Dispatch, history: HistoryConfig, key?: IdempotencyKey): Promise<Published> {
    const nc = this.connection();
    const envelopeJson = encodedEnvelope(dispatch);
    const t = dispatch.target;
    const id = key && this.windowMs > 0 ? natsIdempotencyId(t, key) : undefined;
    if (t.kind !== 'channel') {
      if (id !== undefined) {
        const earlier = await this.claimLive(id, dispatch.envelope.timestamp);
        if (earlier !== undefined) return { duplicate: true, timestamp: earlier };
      }
      try {
        nc.publish(this.liveSubject(t), encodeDispatch(dispatch, envelopeJson));
        await withTimeout(nc.flush(), this.timeoutMs, 'NATS flush');
      } catch (err) {
        // The publisher is told it was not sent: free the key, so its retry is not a "duplicate".
        if (id !== undefined) this.kv!.delete(id).catch(() => undefined);
        throw err;
      }
      return { duplicate: false };
    }
    return this.serialized(t.channel, async (): Promise<Published> => {
      const stored = await this.store(t.channel, envelopeJson, history, id);
      const position = stored.position;
      if (stored.duplicate) return { duplicate: true, position, timestamp: await this.storedTimestamp(position.offset, dispatch.envelope.timestamp) };
      dispatch.position = position;
      // `prev`, the channel's previous offset, lets every node restore offset order (ChannelSequencer).
      this.connection().publish(this.liveSubject(t), encodeDispatch(dispatch, envelopeJson, { position, prev: stored.prev }));
      return { duplicate: false, position };
    });
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.connection();
    const subject = this.histSubject(channel);
    const epoch = this.epoch;
    const last = await lastMessage(this.link!, this.stream, subject);
    const top = last?.seq ?? 0;
    const position = { offset: top, epoch };
    const limit = Math.max(0, Math.floor(query.limit));
    const since = query.since;
    const incomplete = { entries: [], position, complete: false };
    if (!since) {
      if (limit === 0 || !last) return { entries: [], position, complete: true };
      const size = numHeader(last.header.get('Herald-Size'), Infinity);
      const msgs = ((await this.read(subject, 1, Infinity, top)) ?? []).filter((m) => !expired(m));
      const keep = msgs.slice(Math.max(0, msgs.length - Math.min(limit, size)));
      return { entries: keep.map(toEntry), position, complete: true };
    }
    if (since.epoch !== epoch || since.offset > top || since.offset < 0) return incomplete;
    if (since.offset === top) return { entries: [], position, complete: true };
    // More than min(limit, size) after `since`: cut by the limit or pruned by the size — incomplete
    // either way, known from the consumer's pending count without fetching anything. (A publish
    // racing this read can only make the answer "incomplete" when it was exactly at the bound.)
    const cap = Math.min(limit, numHeader(last!.header.get('Herald-Size'), Infinity));
    const msgs = await this.read(subject, since.offset + 1, cap, top);
    if (msgs === undefined || msgs.length === 0) return incomplete;
    if (numHeader(msgs[0]!.headers?.get('Herald-Prev'), -1) !== since.offset) return incomplete;
    if (msgs.some(expired) || msgs[msgs.length - 1]!.seq !== top) return incomplete;
    return { entries: msgs.map(toEntry), position, complete: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subs.clear();
    this.sequencer.reset();
    await closeLink(this.link?.nc);
  }

  // ---- publishing ----------------------------------------------------------------------------

  /**
   * Appends to the channel's subject with a CAS on its last sequence; retries when another node won.
   * With an idempotency id, JetStream answers a key it has seen within the window as a duplicate
   * (it checks that before the CAS), with the original's sequence; nothing is stored then.
   */
  private async store(channel: string, envelopeJson: string, history: HistoryConfig, id: string | undefined): Promise<{ position: StreamPosition; prev: number; duplicate: boolean }> {
    const subject = this.histSubject(channel);
    for (let attempt = 1; ; attempt++) {
      let prev = this.lastSeq.get(channel);
      if (prev === undefined) prev = (await lastMessage(this.link!, this.stream, subject))?.seq ?? 0;
      const h = headers();
      h.set('Nats-Expected-Last-Subject-Sequence', String(prev));
      if (id !== undefined) h.set('Nats-Msg-Id', id);
      h.set('Herald-Prev', String(prev));
      h.set('Herald-Size', String(Math.max(0, Math.floor(history.size))));
      h.set('Herald-Ttl', String(Math.max(0, Math.floor(history.ttlMs))));
      try {
        const ack = await this.link!.js.publish(subject, envelopeJson, { headers: h, timeout: this.timeoutMs });
        if (ack.duplicate) return { position: { offset: ack.seq, epoch: this.epoch }, prev, duplicate: true };
        this.remember(channel, ack.seq);
        return { position: { offset: ack.seq, epoch: this.epoch }, prev, duplicate: false };
      } catch (err) {
        this.lastSeq.delete(channel);
        if (apiErrorCode(err) !== WRONG_LAST_SEQUENCE || attempt >= MAX_CAS_ATTEMPTS) throw err;
        // Lost a race with another node — or the stream was recreated: re-read its identity too.
        if (attempt === 1 || attempt % 5 === 0) await this.ensureStream(false);
        if (attempt > 2) await sleep(Math.random() * 2 * attempt);
      }
    }
  }

  /**
   * Takes a live-only publish's key: an atomic create in the bucket. Returns undefined when taken
   * now, or the original's timestamp when the key was already taken within the window.
   */
  private async claimLive(id: string, timestamp: number): Promise<number | undefined> {
    const kv = this.kv!;
    for (let attempt = 1; attempt <= MAX_CLAIM_ATTEMPTS; attempt++) {
      try {
        await kv.create(id, JSON.stringify({ t: timestamp }));
        return undefined;
      } catch (err) {
        if (apiErrorCode(err) !== WRONG_LAST_SEQUENCE) throw err;
      }
      const entry = await kv.get(id);
      if (entry && entry.operation === 'PUT' && entry.length > 0) return Number((JSON.parse(entry.string()) as { t: number }).t);
      // Expired or freed between the create and the read: the key is free again.
    }
    throw new Error(`the idempotency key of a publish kept changing in ${this.prefix}_idem`);
  }

  /**
   * The acceptance time of the message stored at `seq`: a duplicate is answered with it. Once the
   * original has left the history (pruned by the channel's size limit), the duplicate's own time
   * stands in.
   */
  private async storedTimestamp(seq: number, fallback: number): Promise<number> {
    try {
      const m = await this.link!.jsm.streams.getMessage(this.stream, { seq });
      const t = (m.json() as { timestamp?: unknown }).timestamp;
      return typeof t === 'number' ? t : fallback;
    } catch {
      return fallback;
    }
  }

  private serialized<T>(channel: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(channel) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(channel, tail);
    void tail.then(() => {
      if (this.queues.get(channel) === tail) this.queues.delete(channel);
    });
    return run;
  }

  private remember(channel: string, seq: number): void {
    if (this.lastSeq.size >= 10_000 && !this.lastSeq.has(channel)) this.lastSeq.clear();
    this.lastSeq.set(channel, seq);
  }

  // ---- JetStream reads -----------------------------------------------------------------------

  /** The subject's messages from `startSeq` up to `maxSeq`, oldest first; undefined when there are more than `max`. */
  private async read(subject: string, startSeq: number, max: number, maxSeq: number): Promise<JsMsg[] | undefined> {
    return readFiltered(this.link!, this.stream, { filter: subject, startSeq }, async (pending, fetch) => {
      if (pending > max) return undefined;
      return (await fetch(pending)).filter((m) => m.seq <= maxSeq);
    });
  }

  /**
   * Creates the history stream or adopts the existing one, and takes its identity as the epoch.
   * `adjust`: also raise its limits and set its duplicate window to this node's (not on every
   * lost CAS race, where nodes with different settings would take turns rewriting them).
   */
  private async ensureStream(adjust = true): Promise<void> {
    const config = {
      name: this.stream,
      subjects: [`${this.prefix}.hist.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs_per_subject: Math.max(1, this.opts.maxHistorySize ?? 1000),
      max_age: nanos(Math.max(60_000, this.opts.retainMs ?? 86_400_000)),
      num_replicas: this.opts.replicas ?? 1,
    };
    const dupWindow = duplicateWindow(this.windowMs, config.max_age);
    if (dupWindow !== undefined) Object.assign(config, { duplicate_window: dupWindow });
    const raise = (existing: StreamConfig): Partial<StreamConfig> | undefined => {
      const maxAge = Math.max(existing.max_age, config.max_age);
      const wantWindow = duplicateWindow(this.windowMs, maxAge);
      const stale = existing.max_msgs_per_subject < config.max_msgs_per_subject || existing.max_age < config.max_age || (wantWindow !== undefined && existing.duplicate_window !== wantWindow);
      if (!adjust || !stale) return undefined;
      // The duplicate window is the stream's: the node that started last sets it (all nodes should share one publish.idempotencyWindowMs).
      return {
        max_msgs_per_subject: Math.max(existing.max_msgs_per_subject, config.max_msgs_per_subject),
        max_age: maxAge,
        ...(wantWindow !== undefined ? { duplicate_window: wantWindow } : {}),
      };
    };
    const info = await ensureStream(this.link!.jsm, config, raise);
    const epoch = createHash('sha1').update(`${this.stream}@${info.created}`).digest('hex').slice(0, 12);
    if (epoch !== this.epoch) this.lastSeq.clear();
    this.epoch = epoch;
  }

  // ---- core NATS -----------------------------------------------------------------------------

  private addSub(subject: string): void {
    if (this.subs.has(subject)) return;
    const sub = this.link!.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.opts.onError?.(err, 'nats subscription');
          return;
        }
        let dispatch: Dispatch & { prev?: number };
        try {
          dispatch = JSON.parse(msg.string()) as Dispatch & { prev?: number };
        } catch (e) {
          this.opts.onError?.(e as Error, 'nats decode');
          return;
        }
        // `prev` stays on the dispatch: the sequencer orders by it, and a recovering subscriber's
        // seam tells T's successor by it (offsets here are not contiguous).
        const { prev } = dispatch;
        const t = dispatch.target;
        if (t.kind === 'channel' && dispatch.position && typeof prev === 'number') this.sequencer.push(t.channel, dispatch.position.epoch, dispatch.position.offset, prev, dispatch);
        else this.handler?.onDispatch(dispatch);
      },
    });
    this.subs.set(subject, sub);
  }

  private watchStatus(nc: NatsConnection): void {
    watchConnection(nc, {
      disconnect: () => {
        this.online = false;
      },
      reconnect: () => {
        this.online = true;
        // Dispatches lost in the gap would leave the sequencer waiting: start every channel afresh.
        this.sequencer.reset();
        this.handler?.onGap?.();
        // A server that lost its JetStream state gets the stream back, with a new epoch.
        this.ensureStream().catch((err) => this.opts.onError?.(err as Error, 'nats ensure stream'));
      },
      error: this.opts.onError,
    });
  }

  private connection(): NatsConnection {
    if (!this.link || this.closed) throw new Error('NatsBroker is not started');
    if (!this.online) throw new Error('NATS is disconnected');
    return this.link.nc;
  }

  private liveSubject(target: DispatchTarget): string {
    if (target.kind === 'channel') return `${this.prefix}.ch.${subjectToken(target.channel)}`;
    if (target.kind === 'user') return `${this.prefix}.user.${subjectToken(target.user)}`;
    return `${this.prefix}.all`;
  }

  private histSubject(channel: string): string {
    return `${this.prefix}.hist.${subjectToken(channel)}`;
  }
}


function toEntry(m: JsMsg): HistoryEntry {
  return { offset: m.seq, envelope: JSON.parse(m.string()) as HistoryEntry['envelope'] };
}

/** Past its channel's TTL (as it was when published), by the server's timestamp. */
function expired(m: JsMsg): boolean {
  const ttl = numHeader(m.headers?.get('Herald-Ttl'), Infinity);
  const size = numHeader(m.headers?.get('Herald-Size'), 1);
  if (ttl <= 0 || size <= 0) return true;
  return m.info.timestampNanos / 1e6 < Date.now() - ttl;
}

function numHeader(v: string | undefined, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
