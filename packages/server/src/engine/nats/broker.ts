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
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  DiscardPolicy,
  headers,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type KV,
  type NatsConnection,
  type StoredMsg,
  type Subscription,
} from 'nats';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../config.js';
import type { IdempotencyKey } from '../idempotency.js';
import type { Broker, BrokerHandler, Dispatch, DispatchTarget, HistoryEntry, HistoryQuery, HistoryResult, Published } from '../broker.js';
import { ChannelSequencer } from './channel-sequencer.js';
import { encodeDispatch, encodedEnvelope } from '../encoded-envelope.js';
import { duplicateWindow, natsIdempotencyId, openIdempotencyBucket } from './idempotency.js';

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

const WRONG_LAST_SEQUENCE = 10071;
/** How often a live-only publish tries to take a key that keeps expiring under it. */
const MAX_CLAIM_ATTEMPTS = 3;
const NO_MESSAGE_FOUND = 10037;
const MAX_CAS_ATTEMPTS = 20;

export class NatsBroker implements Broker {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
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
    if (!/^[A-Za-z0-9_-]+$/.test(opts.prefix)) throw new Error(`engine.nats.prefix must match [A-Za-z0-9_-]+, got ${JSON.stringify(opts.prefix)}`);
    this.prefix = opts.prefix;
    this.stream = `${opts.prefix}_history`;
    this.timeoutMs = opts.requestTimeoutMs ?? 3000;
    this.windowMs = Math.max(0, Math.floor(opts.idempotencyWindowMs ?? 120_000));
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: this.opts.servers, name: `herald:${this.prefix}`, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
    } catch (err) {
      throw new Error(`cannot connect to NATS at engine.nats.servers=${this.opts.servers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    this.nc = nc;
    this.online = true;
    void this.watchStatus(nc);
    try {
      this.jsm = await nc.jetstreamManager({ timeout: this.timeoutMs });
      this.js = nc.jetstream({ timeout: this.timeoutMs });
      await this.ensureStream();
      if (this.windowMs > 0) this.kv = await openIdempotencyBucket(this.js, this.jsm, this.prefix, this.windowMs, this.opts.replicas ?? 1, this.timeoutMs);
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
    const last = await this.lastMessage(subject);
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
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
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
      if (prev === undefined) prev = (await this.lastMessage(subject))?.seq ?? 0;
      const h = headers();
      h.set('Nats-Expected-Last-Subject-Sequence', String(prev));
      if (id !== undefined) h.set('Nats-Msg-Id', id);
      h.set('Herald-Prev', String(prev));
      h.set('Herald-Size', String(Math.max(0, Math.floor(history.size))));
      h.set('Herald-Ttl', String(Math.max(0, Math.floor(history.ttlMs))));
      try {
        const ack = await this.js!.publish(subject, envelopeJson, { headers: h, timeout: this.timeoutMs });
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
      const m = await this.jsm!.streams.getMessage(this.stream, { seq });
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

  private async lastMessage(subject: string): Promise<StoredMsg | undefined> {
    try {
      return await this.jsm!.streams.getMessage(this.stream, { last_by_subj: subject });
    } catch (err) {
      if (apiErrorCode(err) === NO_MESSAGE_FOUND) return undefined;
      throw err;
    }
  }

  /** The subject's messages from `startSeq` up to `maxSeq`, oldest first; undefined when there are more than `max`. */
  private async read(subject: string, startSeq: number, max: number, maxSeq: number): Promise<JsMsg[] | undefined> {
    const info = await this.jsm!.consumers.add(this.stream, {
      filter_subject: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      inactive_threshold: nanos(30_000),
    });
    try {
      if (info.num_pending > max) return undefined;
      const n = info.num_pending;
      const out: JsMsg[] = [];
      if (n === 0) return out;
      const consumer = await this.js!.consumers.get(this.stream, info.name);
      const iter = await consumer.fetch({ max_messages: n, expires: this.timeoutMs });
      for await (const m of iter) {
        if (m.seq <= maxSeq) out.push(m);
        if (out.length >= n || m.seq >= maxSeq) break;
      }
      return out;
    } finally {
      this.jsm!.consumers.delete(this.stream, info.name).catch(() => undefined);
    }
  }

  /**
   * Creates the history stream or adopts the existing one, and takes its identity as the epoch.
   * `adjust`: also raise its limits and set its duplicate window to this node's (not on every
   * lost CAS race, where nodes with different settings would take turns rewriting them).
   */
  private async ensureStream(adjust = true): Promise<void> {
    const jsm = this.jsm!;
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
    let info;
    try {
      info = await jsm.streams.info(this.stream);
      const maxAge = Math.max(info.config.max_age, config.max_age);
      const wantWindow = duplicateWindow(this.windowMs, maxAge);
      const stale = info.config.max_msgs_per_subject < config.max_msgs_per_subject || info.config.max_age < config.max_age || (wantWindow !== undefined && info.config.duplicate_window !== wantWindow);
      if (adjust && stale) {
        // The duplicate window is the stream's: the node that started last sets it (all nodes should share one publish.idempotencyWindowMs).
        info = await jsm.streams.update(this.stream, {
          max_msgs_per_subject: Math.max(info.config.max_msgs_per_subject, config.max_msgs_per_subject),
          max_age: maxAge,
          ...(wantWindow !== undefined ? { duplicate_window: wantWindow } : {}),
        });
      }
    } catch (err) {
      if (apiErrorCode(err) !== 10059 /* stream not found */) throw err;
      try {
        info = await jsm.streams.add(config);
      } catch (addErr) {
        // Another node created it first.
        info = await jsm.streams.info(this.stream).catch(() => {
          throw addErr;
        });
      }
    }
    const epoch = createHash('sha1').update(`${this.stream}@${info.created}`).digest('hex').slice(0, 12);
    if (epoch !== this.epoch) this.lastSeq.clear();
    this.epoch = epoch;
  }

  // ---- core NATS -----------------------------------------------------------------------------

  private addSub(subject: string): void {
    if (this.subs.has(subject)) return;
    const sub = this.nc!.subscribe(subject, {
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
        const { prev, ...rest } = dispatch;
        const t = rest.target;
        if (t.kind === 'channel' && rest.position && typeof prev === 'number') this.sequencer.push(t.channel, rest.position.epoch, rest.position.offset, prev, rest);
        else this.handler?.onDispatch(rest);
      },
    });
    this.subs.set(subject, sub);
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.online = false;
      else if (s.type === 'reconnect') {
        this.online = true;
        // Dispatches lost in the gap would leave the sequencer waiting: start every channel afresh.
        this.sequencer.reset();
        this.handler?.onGap?.();
        // A server that lost its JetStream state gets the stream back, with a new epoch.
        this.ensureStream().catch((err) => this.opts.onError?.(err as Error, 'nats ensure stream'));
      } else if (s.type === 'error') this.opts.onError?.(new Error(String(s.data)), 'nats');
    }
  }

  private connection(): NatsConnection {
    if (!this.nc || this.closed) throw new Error('NatsBroker is not started');
    if (!this.online) throw new Error('NATS is disconnected');
    return this.nc;
  }

  private liveSubject(target: DispatchTarget): string {
    if (target.kind === 'channel') return `${this.prefix}.ch.${token(target.channel)}`;
    if (target.kind === 'user') return `${this.prefix}.user.${token(target.user)}`;
    return `${this.prefix}.all`;
  }

  private histSubject(channel: string): string {
    return `${this.prefix}.hist.${token(channel)}`;
  }
}

/** A name as one subject token: base64url, and `_` for the empty name (never a base64url output). */
function token(name: string): string {
  return name === '' ? '_' : Buffer.from(name, 'utf8').toString('base64url');
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

function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
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
