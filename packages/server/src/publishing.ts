/**
 * Publishing: a request is accepted (one audience, a valid channel, a filter that compiles, a
 * size within `limits.maxMessageBytes`), checked against the idempotency window (the engine does
 * it in its own atomic publish, keyed by the publisher's scope and msgId), and handed to the
 * engine — at-least-once user messages to the inbox first. The reply waits for the engine's
 * acceptance, never for socket writes: fan-out comes back through the broker's dispatch.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import type { Envelope, StreamPosition, TagFilter } from '@herald/protocol';
import { isValidChannel, namespaceOf } from './channels.js';
import type { DeliveryMode, HeraldConfig, HistoryConfig } from './config.js';
import type { ReceiptBook } from './delivery/receipts.js';
import type { Broker, Dispatch, Published } from './engine/broker.js';
import { rememberEncodedEnvelope } from './engine/encoded-envelope.js';
import type { InboxStore } from './engine/inbox.js';
import { HeraldError } from './errors.js';
import { API_SCOPE, type IdempotencyKey } from './engine/idempotency.js';
import type { Metrics } from './metrics.js';
import type { Session } from './session.js';
import { compileFilter } from './tag-filter.js';

export interface PublishRequest {
  delivery?: DeliveryMode;
  receipts?: boolean;
  channel?: string;
  user?: string;
  broadcast?: boolean;
  filter?: TagFilter;
  eventType: string;
  payload: unknown;
  source?: string;
  version?: string;
  msgId?: string;
}

export interface PublishResult {
  msgId: string;
  timestamp: number;
  position?: StreamPosition;
  duplicate?: boolean;
}

/** What routes, ingestors and the read path may do to publish. */
export interface PublishOps {
  /** Publishes one message under `scope`'s idempotency keys (the API's by default). */
  publish(req: PublishRequest, scope?: string): Promise<PublishResult>;
  /** The idempotency scope of a client's publishes. */
  clientScope(session: Session): string;
}

export interface PublishingOptions {
  config: Readonly<HeraldConfig>;
  log: FastifyBaseLogger;
  metrics: Metrics;
  broker: Broker;
  inbox: InboxStore;
  receipts: ReceiptBook;
  historyConfig(channel: string): HistoryConfig;
  /** The inbox limits pushed out `dropped` of the user's messages (already counted and logged). */
  onInboxDrop?(user: string, dropped: number): void;
}

export class Publishing implements PublishOps {
  /** Set when the node drains: publishes are refused with `shutting_down`. */
  draining = false;
  /** Tells this process's anonymous connections apart from a previous run's with the same ids. */
  private readonly bootId = randomUUID().slice(0, 8);

  constructor(private readonly o: PublishingOptions) {}

  /**
   * Publishes one message. `scope` is the publisher's idempotency scope (see idempotency.ts): the
   * API's by default, `clientScope(session)` for a client's publish.
   */
  async publish(req: PublishRequest, scope: string = API_SCOPE): Promise<PublishResult> {
    if (this.draining) throw new HeraldError(ErrorCode.SHUTTING_DOWN);
    const targets = Number(req.channel !== undefined) + Number(req.user !== undefined) + Number(req.broadcast === true);
    if (targets !== 1) throw new HeraldError(ErrorCode.BAD_REQUEST, 'name exactly one audience: "channel", "user" or "broadcast": true');
    if (req.channel !== undefined && !isValidChannel(req.channel)) throw new HeraldError(ErrorCode.INVALID_CHANNEL, `invalid channel name ${JSON.stringify(req.channel)}`);
    if (req.filter !== undefined) compileFilter(req.filter);
    // A generated msgId is new by construction, and a publisher that retries after a lost reply
    // never learnt it: only a msgId the publisher chose is a key, so a publish without one costs
    // no lookup and no memory in the window. The engine checks the key in its own atomic publish.
    if (req.msgId === undefined || this.o.config.publish.idempotencyWindowMs <= 0) return this.publishNew(req, req.msgId ?? randomUUID(), scope, undefined);
    return this.publishNew(req, req.msgId, scope, { scope, msgId: req.msgId });
  }

  /** The idempotency scope of a client's publishes: its user's, or an anonymous client's own connection's. */
  clientScope(session: Session): string {
    return session.user ? `user:${session.user}` : `conn:${this.bootId}:${session.id}`;
  }

  private async publishNew(req: PublishRequest, msgId: string, scope: string, key: IdempotencyKey | undefined): Promise<PublishResult> {
    const envelope: Envelope = {
      msgId,
      timestamp: Date.now(),
      source: req.source ?? this.o.config.publish.defaultSource,
      eventType: req.eventType,
      version: req.version ?? this.o.config.publish.defaultVersion,
      payload: req.payload,
    };
    const envelopeJson = JSON.stringify(envelope);
    if (Buffer.byteLength(envelopeJson) > this.o.config.limits.maxMessageBytes) {
      throw new HeraldError(ErrorCode.MESSAGE_TOO_LARGE, `the message is larger than limits.maxMessageBytes (${this.o.config.limits.maxMessageBytes} bytes)`);
    }
    const target: Dispatch['target'] =
      req.channel !== undefined ? { kind: 'channel', channel: req.channel } : req.user !== undefined ? { kind: 'user', user: req.user } : { kind: 'broadcast' };
    const reliable = this.deliveryMode(req) === 'at-least-once';
    const dispatch: Dispatch = { target, envelope, ...(req.filter ? { filter: req.filter } : {}), ...(reliable ? { reliable: true } : {}) };
    rememberEncodedEnvelope(dispatch, envelopeJson);
    const history = target.kind === 'channel' ? this.o.historyConfig(target.channel) : this.o.config.channels.history;
    // Receipts are the API's view (GET /api/v1/messages/{msgId}), keyed by msgId: only API
    // publishes open them, so a client reusing an API msgId cannot replace the API's receipt, and a
    // receipt counts only deliveries of its own message (receipts.ts), so nor can it add to one.
    const receipt = reliable && scope === API_SCOPE;
    let outcome: Published;
    try {
      if (reliable && target.kind === 'user') {
        // Stored before anyone sees it: it leaves the inbox only when some device acknowledges it.
        // The append is also the idempotency check, so a retry is never put in the inbox twice.
        const stored = await this.o.inbox.append(target.user, { envelope }, this.o.config.inbox, key);
        if (stored.earlier) return { msgId, timestamp: stored.earlier.timestamp, duplicate: true };
        dispatch.seq = stored.seq;
        if (receipt) {
          this.openReceipt(req, envelope, target, key);
          // Not when the inbox already held this msgId (another message's entry, e.g. a client's
          // whose retries ran out): an ACK removing that entry must not count for this message.
          if (!stored.duplicate) this.o.receipts.inboxed({ msgId, envelope, channel: undefined }, target.user);
        }
        if (stored.dropped > 0) {
          this.o.metrics.inboxDropped.inc(stored.dropped);
          this.o.log.warn({ user: target.user, dropped: stored.dropped }, 'inbox limits dropped messages');
          this.o.onInboxDrop?.(target.user, stored.dropped);
        }
        // The key was taken by the append.
        outcome = await this.o.broker.publish(dispatch, history);
      } else {
        // Opened before the publish: this node's own subscribers may be served before it resolves.
        if (receipt) this.openReceipt(req, envelope, target, key);
        outcome = await this.o.broker.publish(dispatch, history, key);
      }
    } catch (err) {
      if (err instanceof HeraldError) {
        if (err.code === ErrorCode.BROKER_UNAVAILABLE) this.o.metrics.enginePublishFailures.inc();
        throw err;
      }
      this.o.metrics.enginePublishFailures.inc();
      this.o.log.error({ err }, 'publish failed in the engine');
      throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
    }
    const position = outcome.position;
    if (outcome.duplicate) return { msgId, timestamp: outcome.timestamp, ...(position ? { position } : {}), duplicate: true };
    this.o.metrics.publishes.inc({ target: req.filter ? `${target.kind}+filter` : target.kind });
    return { msgId, timestamp: envelope.timestamp, ...(position ? { position } : {}) };
  }

  /**
   * Opens the receipt of an API publish — unless this node holds one for the same audience within
   * the idempotency window, which is the original of a retry (replacing it would reset its counts).
   */
  private openReceipt(req: PublishRequest, envelope: Envelope, target: Dispatch['target'], key: IdempotencyKey | undefined): void {
    const { msgId, timestamp: acceptedAt, source } = envelope;
    const receipts = this.o.receipts;
    const prior = key ? receipts.get(msgId) : undefined;
    const user = target.kind === 'user' ? target.user : undefined;
    const channel = target.kind === 'channel' ? target.channel : undefined;
    if (prior && prior.target === target.kind && prior.user === user && prior.channel === channel && acceptedAt - prior.acceptedAt <= this.o.config.publish.idempotencyWindowMs) return;
    receipts.open({ msgId, target: target.kind, ...(user !== undefined ? { user } : {}), ...(channel !== undefined ? { channel } : {}), detailed: req.receipts === true, acceptedAt, source });
  }

  deliveryMode(req: PublishRequest): DeliveryMode {
    if (req.delivery) return req.delivery;
    if (req.channel !== undefined) {
      const ns = this.o.config.channels.namespaces[namespaceOf(req.channel)]?.delivery;
      if (ns) return ns;
    }
    return this.o.config.delivery.defaultMode;
  }
}
