/**
 * The node wires the engines to this process's connections: publish goes to the broker, the
 * broker's dispatches come back to `deliver`, which encodes once and hands the bytes to the hub.
 * Client frames are handled by `FrameHandler`; heartbeats by `Heartbeat`.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { Envelope, StreamPosition, TagFilter } from '@herald/protocol';
import { anonymousIdentity, TokenVerifier } from './auth.js';
import { ChannelPatterns, isValidChannel, namespaceOf } from './channels.js';
import type { DeliveryMode, HeraldConfig, HistoryConfig } from './config.js';
import { ReliableDelivery } from './delivery/reliable-delivery.js';
import type { Session as SessionType } from './session.js';
import type { Broker, Dispatch, Published } from './engine/broker.js';
import { MemoryBroker } from './engine/memory/broker.js';
import { encodedEnvelope, rememberEncodedEnvelope } from './engine/encoded-envelope.js';
import { livePoint } from './engine/recovery-seam.js';
import { MemoryPresence } from './engine/memory/presence.js';
import { MemoryInbox } from './engine/memory/inbox.js';
import type { Engines } from './engine/engines.js';
import type { InboxStore } from './engine/inbox.js';
import type { ConnectionInfo, PresenceStore } from './engine/presence.js';
import { HeraldError } from './errors.js';
import { FrameHandler, type RequestHandler } from './frame-handler.js';
import { Heartbeat } from './heartbeat.js';
import { Hub } from './hub.js';
import { ClientIps } from './http/client-ip.js';
import { API_SCOPE, type IdempotencyKey } from './engine/idempotency.js';
import { IdempotencyWindow } from './engine/memory/idempotency.js';
import { messageFrameBytes } from './message-frame.js';
import { Metrics } from './metrics.js';
import { RateLimits } from './rate-limit/rate-limits.js';
import { Schemas } from './schemas.js';
import { Session } from './session.js';
import { compileFilter, type CompiledFilter } from './tag-filter.js';
import type { Transport } from './transport/transport.js';
import { encodeTextFrame } from './transport/ws-frame.js';

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

export type NodeEngines = Partial<Engines>;

export class HeraldNode {
  readonly name: string;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly schemas: Schemas;
  readonly verifier: TokenVerifier;
  readonly broker: Broker;
  readonly presence: PresenceStore;
  readonly inbox: InboxStore;
  readonly publicChannels: ChannelPatterns;
  readonly clientPublishChannels: ChannelPatterns;
  readonly requestHandlers = new Map<string, RequestHandler>();
  readonly delivery: ReliableDelivery;
  /** Client addresses and per-IP keys (`server.trustProxy`, `limits.ipv6PrefixLength`). */
  readonly clientIps: ClientIps;
  readonly rateLimits: RateLimits;
  private readonly heartbeat: Heartbeat;
  private readonly frames: FrameHandler;
  private readonly disposeEngines: (() => Promise<void>) | undefined;
  private readonly pingFrame = encodeTextFrame('{"type":"ping"}');
  private connectionSeq = 0;
  /** Dispatches fanned out this tick, for the latency histogram at flush time. */
  private acceptedThisTick: number[] = [];
  draining = false;
  /** Tells this process's anonymous connections apart from a previous run's with the same ids. */
  private readonly bootId = randomUUID().slice(0, 8);
  private readonly channelWaiters = new Map<string, Set<() => void>>();

  constructor(
    readonly config: Readonly<HeraldConfig>,
    readonly log: FastifyBaseLogger,
    engines: NodeEngines = {},
    name?: string,
  ) {
    this.name = name ?? defaultNodeName(config);
    this.schemas = new Schemas(config.limits.maxJsonDepth);
    this.verifier = new TokenVerifier(config.auth.jwt);
    this.clientIps = new ClientIps({ trustProxy: config.server.trustProxy, ipv6PrefixLength: config.limits.ipv6PrefixLength });
    const window = engines.broker && engines.inbox ? undefined : new IdempotencyWindow(config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
    this.broker = engines.broker ?? new MemoryBroker(window);
    this.presence = engines.presence ?? new MemoryPresence();
    this.inbox = engines.inbox ?? new MemoryInbox(window);
    this.publicChannels = new ChannelPatterns(config.channels.public);
    this.clientPublishChannels = new ChannelPatterns(config.channels.clientPublish);
    this.disposeEngines = engines.dispose;
    this.hub = new Hub({
      onSlowConsumer: (s) => {
        this.metrics.slowConsumerCloses.inc();
        this.log.warn({ connId: s.id, user: s.user, backlog: s.backlogBytes }, 'closing slow consumer');
      },
      onFlushed: () => this.observeLatency(),
    });
    this.metrics = new Metrics({
      connections: () => this.hub.sessions.size,
      subscriptions: () => this.hub.subscriptionCount,
      queuedBytes: () => this.hub.queuedBytes(),
    });
    this.rateLimits = new RateLimits(config, this.metrics.rateLimited);
    this.heartbeat = new Heartbeat(config.heartbeat, {
      ping: (s) => {
        s.enqueue(this.pingFrame);
      },
      timeout: (s, reason) => {
        if (reason === 'pong') this.metrics.heartbeatTimeouts.inc();
        const code = reason === 'pong' ? CloseCode.HEARTBEAT_TIMEOUT : reason === 'connect' ? CloseCode.CONNECT_TIMEOUT : CloseCode.TOKEN_EXPIRED;
        const text = reason === 'pong' ? 'no pong in time' : reason === 'connect' ? 'no connect frame in time' : 'token expired';
        s.close(code, text);
      },
    });
    this.frames = new FrameHandler(this);
    this.delivery = new ReliableDelivery(config, {
      inbox: this.inbox,
      userSessions: (user) => this.hub.userSessions(user),
      onExhausted: (item) => {
        this.metrics.retriesExhausted.inc();
        this.log.warn({ connId: item.session.id, user: item.session.user, msgId: item.msgId, attempts: item.attempts }, 'retries exhausted; message kept in the inbox');
      },
      onInboxDrop: (user, dropped) => {
        this.metrics.inboxDropped.inc(dropped);
        this.log.warn({ user, dropped }, 'inbox limits dropped messages');
      },
      log: this.log,
      write: (s, frame) => this.hub.offer(s, frame),
    });
    // Off by default: a method any client may call is attack surface a deployment opts into.
    if (config.rpc.echo) this.requestHandlers.set('echo', async (_s, data) => data);
  }

  async start(): Promise<void> {
    await this.broker.start({ onDispatch: (d) => this.deliver(d), onGap: () => this.onBrokerGap() });
    this.heartbeat.start();
    this.delivery.start();
  }

  // ---- connections ---------------------------------------------------------------------------

  /**
   * Registers a freshly upgraded connection as pending; it must be `connected` within what is
   * left of its handshake deadline (`connectWithinMs`, default the whole `limits.handshakeTimeoutMs`)
   * or it is closed with 4007. `ipKey` is the per-IP key it counts under.
   */
  attach(transport: Transport, upgradeToken?: string, admission: { ipKey?: string; connectWithinMs?: number } = {}): Session {
    const id = `${this.name}-${(++this.connectionSeq).toString(36)}`;
    const session = new Session(id, transport, this.hub, this.config.limits.maxQueueBytes);
    if (upgradeToken) this.frames.setUpgradeToken(session, upgradeToken);
    this.hub.addPending(session, admission.ipKey);
    this.heartbeat.expectConnect(session, Math.max(0, admission.connectWithinMs ?? this.config.limits.handshakeTimeoutMs));
    return session;
  }

  /** One text frame from the client. A condemned (closing) connection's input is dropped unread. */
  onText(session: Session, text: string): void {
    if (session.state === 'closed') return;
    this.heartbeat.alive(session);
    this.frames.handle(session, text);
  }

  /** Called once the transport has closed, whoever closed it. */
  detach(session: Session, code: number): void {
    session.state = 'closed';
    this.heartbeat.forget(session);
    this.delivery.forget(session);
    this.frames.failPending(session);
    const { emptiedChannels, userGone } = this.hub.remove(session);
    for (const channel of emptiedChannels) this.unsubscribeBroker({ kind: 'channel', channel });
    if (session.identity) {
      if (userGone && session.user) this.unsubscribeBroker({ kind: 'user', user: session.user });
      this.presence.remove(session.id, session.user).catch((err) => this.log.warn({ err }, 'presence remove failed'));
      this.log.debug({ connId: session.id, user: session.user, code }, 'disconnected');
    }
  }

  /**
   * Called by the frame handler when `connect` succeeds, before `connected` is sent: the node
   * subscribes the broker to the user's topic first, so a user message published on another node
   * right after `connected` cannot slip past. Resolves false when the session closed meanwhile.
   */
  async activate(session: Session): Promise<boolean> {
    this.hub.activate(session);
    this.heartbeat.connected(session, session.identity?.expiresAt);
    if (session.user && this.hub.userSessions(session.user)?.size === 1) {
      try {
        await this.broker.subscribe({ kind: 'user', user: session.user });
      } catch (err) {
        this.log.error({ err }, 'broker user subscribe failed');
      }
    }
    if (!session.open) return false;
    this.presence.add(this.connectionInfo(session)).catch((err) => this.log.warn({ err }, 'presence add failed'));
    this.log.debug({ connId: session.id, user: session.user }, 'connected');
    return true;
  }

  /** After `connected` went out: hand over what waited in the user's inbox. */
  afterConnected(session: Session): void {
    if (!session.user) return;
    // Part of handling this connection's `connect`: a fault in it ends this connection only (4004).
    this.delivery.deliverInbox(session).catch((err: unknown) => {
      this.log.error({ err, connId: session.id, user: session.user }, 'inbox delivery failed; closing the connection with 4004');
      session.close(CloseCode.SERVER_ERROR, 'internal error');
    });
  }

  /**
   * The broker reports that dispatches may have been lost (its subscription link dropped).
   * Channel subscribers are asked to reconnect, which makes them recover from history.
   */
  onBrokerGap(): void {
    let n = 0;
    for (const s of this.hub.sessions.values()) {
      if (s.subs.size === 0 || s.state !== 'connected') continue;
      s.close(CloseCode.FORCE_RECONNECT, 'messages may have been missed: reconnect and recover');
      n++;
    }
    this.log.warn({ closed: n }, 'broker gap: asked channel subscribers to reconnect and recover');
  }

  unsubscribeBroker(target: { kind: 'channel'; channel: string } | { kind: 'user'; user: string }): void {
    this.broker.unsubscribe(target).catch((err) => this.log.warn({ err }, 'broker unsubscribe failed'));
  }

  connectionInfo(s: Session): ConnectionInfo {
    return {
      connectionId: s.id,
      user: s.user,
      node: this.name,
      connectedAt: s.connectedAt,
      remoteAddress: s.transport.remoteAddress,
      tags: s.tags,
      channels: [...s.subs.keys()],
    };
  }

  historyConfig(channel: string): HistoryConfig {
    const ns = this.config.channels.namespaces[namespaceOf(channel)]?.history;
    return { ...this.config.channels.history, ...ns };
  }

  // ---- publishing ----------------------------------------------------------------------------

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
    if (req.msgId === undefined || this.config.publish.idempotencyWindowMs <= 0) return this.publishNew(req, req.msgId ?? randomUUID(), scope, undefined);
    return this.publishNew(req, req.msgId, scope, { scope, msgId: req.msgId });
  }

  /** The idempotency scope of a client's publishes: its user's, or an anonymous client's own connection's. */
  clientScope(session: SessionType): string {
    return session.user ? `user:${session.user}` : `conn:${this.bootId}:${session.id}`;
  }

  private async publishNew(req: PublishRequest, msgId: string, scope: string, key: IdempotencyKey | undefined): Promise<PublishResult> {
    const envelope: Envelope = {
      msgId,
      timestamp: Date.now(),
      source: req.source ?? this.config.publish.defaultSource,
      eventType: req.eventType,
      version: req.version ?? this.config.publish.defaultVersion,
      payload: req.payload,
    };
    const envelopeJson = JSON.stringify(envelope);
    if (Buffer.byteLength(envelopeJson) > this.config.limits.maxMessageBytes) {
      throw new HeraldError(ErrorCode.MESSAGE_TOO_LARGE, `the message is larger than limits.maxMessageBytes (${this.config.limits.maxMessageBytes} bytes)`);
    }
    const target: Dispatch['target'] =
      req.channel !== undefined ? { kind: 'channel', channel: req.channel } : req.user !== undefined ? { kind: 'user', user: req.user } : { kind: 'broadcast' };
    const reliable = this.deliveryMode(req) === 'at-least-once';
    const dispatch: Dispatch = { target, envelope, ...(req.filter ? { filter: req.filter } : {}), ...(reliable ? { reliable: true } : {}) };
    rememberEncodedEnvelope(dispatch, envelopeJson);
    const history = target.kind === 'channel' ? this.historyConfig(target.channel) : this.config.channels.history;
    // Receipts are the API's view (GET /api/v1/messages/{msgId}), keyed by msgId: only API
    // publishes open them, so a client reusing an API msgId cannot replace the API's receipt, and a
    // receipt counts only deliveries of its own message (receipts.ts), so nor can it add to one.
    const receipt = reliable && scope === API_SCOPE;
    let outcome: Published;
    try {
      if (reliable && target.kind === 'user') {
        // Stored before anyone sees it: it leaves the inbox only when some device acknowledges it.
        // The append is also the idempotency check, so a retry is never put in the inbox twice.
        const stored = await this.inbox.append(target.user, { envelope }, this.config.inbox, key);
        if (stored.earlier) return { msgId, timestamp: stored.earlier.timestamp, duplicate: true };
        dispatch.seq = stored.seq;
        if (receipt) {
          this.openReceipt(req, envelope, target, key);
          // Not when the inbox already held this msgId (another message's entry, e.g. a client's
          // whose retries ran out): an ACK removing that entry must not count for this message.
          if (!stored.duplicate) this.delivery.receipts.inboxed({ msgId, envelope, channel: undefined }, target.user);
        }
        if (stored.dropped > 0) {
          this.metrics.inboxDropped.inc(stored.dropped);
          this.log.warn({ user: target.user, dropped: stored.dropped }, 'inbox limits dropped messages');
        }
        // The key was taken by the append.
        outcome = await this.broker.publish(dispatch, history);
      } else {
        // Opened before the publish: this node's own subscribers may be served before it resolves.
        if (receipt) this.openReceipt(req, envelope, target, key);
        outcome = await this.broker.publish(dispatch, history, key);
      }
    } catch (err) {
      if (err instanceof HeraldError) throw err;
      this.log.error({ err }, 'publish failed in the engine');
      throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
    }
    const position = outcome.position;
    if (outcome.duplicate) return { msgId, timestamp: outcome.timestamp, ...(position ? { position } : {}), duplicate: true };
    this.metrics.publishes.inc({ target: req.filter ? `${target.kind}+filter` : target.kind });
    return { msgId, timestamp: envelope.timestamp, ...(position ? { position } : {}) };
  }

  /**
   * Opens the receipt of an API publish — unless this node holds one for the same audience within
   * the idempotency window, which is the original of a retry (replacing it would reset its counts).
   */
  private openReceipt(req: PublishRequest, envelope: Envelope, target: Dispatch['target'], key: IdempotencyKey | undefined): void {
    const { msgId, timestamp: acceptedAt, source } = envelope;
    const receipts = this.delivery.receipts;
    const prior = key ? receipts.get(msgId) : undefined;
    const user = target.kind === 'user' ? target.user : undefined;
    const channel = target.kind === 'channel' ? target.channel : undefined;
    if (prior && prior.target === target.kind && prior.user === user && prior.channel === channel && acceptedAt - prior.acceptedAt <= this.config.publish.idempotencyWindowMs) return;
    receipts.open({ msgId, target: target.kind, ...(user !== undefined ? { user } : {}), ...(channel !== undefined ? { channel } : {}), detailed: req.receipts === true, acceptedAt, source });
  }

  /** Resolves when a message is delivered on the channel here, or after `timeoutMs` (long polling). */
  waitForChannel(channel: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.channelWaiters.get(channel);
      if (!set) this.channelWaiters.set(channel, (set = new Set()));
      const waiter = () => {
        clearTimeout(timer);
        set!.delete(waiter);
        if (set!.size === 0 && this.channelWaiters.get(channel) === set) this.channelWaiters.delete(channel);
        resolve();
      };
      const timer = setTimeout(waiter, timeoutMs);
      set.add(waiter);
    });
  }

  /** A dispatch from the broker: encode once, fan out to this node's matching sessions. */
  deliver(dispatch: Dispatch): void {
    if (dispatch.target.kind === 'channel' && this.channelWaiters.size > 0) {
      const waiters = this.channelWaiters.get(dispatch.target.channel);
      if (waiters) for (const w of [...waiters]) w();
    }
    try {
      const envelopeJson = encodedEnvelope(dispatch);
      const filter: CompiledFilter | undefined = dispatch.filter ? compileFilter(dispatch.filter) : undefined;
      const t = dispatch.target;
      let n = 0;
      if (t.kind === 'channel') {
        if (this.hub.channelSubscribers(t.channel) === 0) return;
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = this.hub.fanoutChannel(t.channel, frame, livePoint(dispatch), filter, this.reliableSender(dispatch, frame));
      } else if (t.kind === 'user') {
        if (!this.hub.hasUser(t.user)) return;
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = this.hub.fanoutUser(t.user, frame, filter, this.reliableSender(dispatch, frame));
      } else {
        const frame = messageFrameBytes(dispatch, envelopeJson);
        n = this.hub.fanoutAll(frame, filter, this.reliableSender(dispatch, frame));
      }
      if (n > 0) {
        this.metrics.deliveries.inc(n);
        this.acceptedThisTick.push(dispatch.envelope.timestamp);
      }
    } catch (err) {
      this.log.error({ err, msgId: dispatch.envelope.msgId }, 'delivery failed');
    }
  }

  /** For at-least-once dispatches, how each recipient is served: tracked, retried, bounded. */
  private reliableSender(dispatch: Dispatch, frame: Buffer): ((s: SessionType) => void) | undefined {
    if (!dispatch.reliable) return undefined;
    const { msgId } = dispatch.envelope;
    const channel = dispatch.target.kind === 'channel' ? dispatch.target.channel : undefined;
    const fromInbox = dispatch.target.kind === 'user';
    const seq = dispatch.seq;
    return (s) => this.delivery.send(s, msgId, frame, dispatch.envelope, channel, fromInbox, seq);
  }

  deliveryMode(req: PublishRequest): DeliveryMode {
    if (req.delivery) return req.delivery;
    if (req.channel !== undefined) {
      const ns = this.config.channels.namespaces[namespaceOf(req.channel)]?.delivery;
      if (ns) return ns;
    }
    return this.config.delivery.defaultMode;
  }

  private observeLatency(): void {
    const accepted = this.acceptedThisTick;
    if (accepted.length === 0) return;
    this.acceptedThisTick = [];
    const now = Date.now();
    for (const t of accepted) this.metrics.deliveryLatency.observe((now - t) / 1000);
  }

  // ---- operations ----------------------------------------------------------------------------

  /** Sends a request to one connection and resolves with its response frame. */
  requestClient(connectionId: string, method: string, data: unknown, timeoutMs = this.config.rpc.timeoutMs): Promise<{ data?: unknown; error?: unknown }> {
    const s = this.hub.sessions.get(connectionId);
    if (!s || s.state !== 'connected') return Promise.reject(new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `no connection ${connectionId} on this node`));
    return this.frames.requestClient(s, method, data, timeoutMs);
  }

  disconnectConnection(connectionId: string, reconnect: boolean, reason?: string): boolean {
    const s = this.hub.sessions.get(connectionId);
    if (!s) return false;
    s.close(reconnect ? CloseCode.FORCE_RECONNECT : CloseCode.FORCE_DISCONNECT, reason ?? (reconnect ? 'reconnect requested' : 'disconnected by server'));
    return true;
  }

  disconnectUser(user: string, reconnect: boolean, reason?: string): number {
    const sessions = [...(this.hub.userSessions(user) ?? [])];
    for (const s of sessions) this.disconnectConnection(s.id, reconnect, reason);
    return sessions.length;
  }

  stats(): Record<string, number | string> {
    const mem = process.memoryUsage();
    return {
      node: this.name,
      connections: this.hub.sessions.size,
      users: this.hub.sessions.size === 0 ? 0 : new Set([...this.hub.sessions.values()].map((s) => s.user)).size,
      subscriptions: this.hub.subscriptionCount,
      channels: this.hub.channelCounts().length,
      queuedBytes: this.hub.queuedBytes(),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      uptimeSeconds: Math.round(process.uptime()),
    };
  }

  /** Stop taking work, flush queues and close every client with a "reconnect" code. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    for (const set of [...this.channelWaiters.values()]) for (const w of [...set]) w();
    this.hub.flushAll();
    for (const s of this.hub.sessions.values()) s.close(CloseCode.SHUTDOWN, 'server shutting down, reconnect');
    const until = Date.now() + deadlineMs;
    while (this.hub.sessions.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.hub.sessions.values()) s.transport.terminate();
  }

  async close(): Promise<void> {
    this.heartbeat.stop();
    this.delivery.stop();
    await this.broker.close();
    await this.presence.close();
    await this.inbox.close();
    await this.disposeEngines?.();
  }

  anonymousIdentity() {
    return anonymousIdentity(this.publicChannels, this.clientPublishChannels);
  }
}

export function defaultNodeName(config: Readonly<HeraldConfig>): string {
  return config.server.nodeName || `herald-${randomUUID().slice(0, 8)}`;
}

