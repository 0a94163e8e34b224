/**
 * The node wires this process's parts together and owns none of their rules:
 *
 * - publishing.ts     accept → idempotency → engine (`publish`)
 * - dispatch.ts       a broker dispatch, encoded once, fanned out through the hub
 * - subscriptions.ts  hub membership, the broker ref-count, history replay, presence
 * - rpc.ts            requests in both directions and the handler map
 * - admin.ts          the server API's operations on connections, cluster-wide over the control plane
 * - presence-tracker.ts  channel presence: members and join/leave following subscriptions
 * - frame-handler.ts  the read path, given the narrow interfaces above
 * - heartbeat.ts      pings, pong and connect deadlines
 * - token-refresh.ts  token expiry and refresh (in band and through the refresh hook)
 * - proxy/            the hooks that ask the application's backend (connect, subscribe, publish, rpc, refresh)
 *
 * What the node itself does is the life of a connection: `attach` on upgrade, `onText` per
 * frame, `detach` when the transport closed, and the node's own start, drain and close.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { CloseCode } from '@herald/protocol';
import { Admin } from './admin.js';
import { anonymousIdentity, TokenVerifier } from './auth.js';
import { ChannelAccess } from './channel-access.js';
import { historyConfigOf } from './channels.js';
import type { HeraldConfig, HistoryConfig } from './config.js';
import { ReliableDelivery } from './delivery/reliable-delivery.js';
import { Dispatcher } from './dispatch.js';
import type { Broker } from './engine/broker.js';
import { MemoryBroker } from './engine/memory/broker.js';
import { MemoryPresence } from './engine/memory/presence.js';
import { MemoryInbox } from './engine/memory/inbox.js';
import type { Engines } from './engine/engines.js';
import type { ControlNode, ControlPlane } from './engine/control.js';
import { BusControlPlane, controlTimingOf } from './engine/control-bus.js';
import { MemoryControlBus } from './engine/memory/control.js';
import type { InboxStore } from './engine/inbox.js';
import type { PresenceStore } from './engine/presence.js';
import { FrameHandler } from './frame-handler.js';
import { Heartbeat } from './heartbeat.js';
import { Hub } from './hub.js';
import { LifecycleBus } from './lifecycle-events.js';
import { ClientIps } from './http/client-ip.js';
import { IdempotencyWindow } from './engine/memory/idempotency.js';
import { Metrics } from './metrics.js';
import { Publishing, type PublishRequest, type PublishResult } from './publishing.js';
import { RateLimits } from './rate-limit/rate-limits.js';
import { Rpc } from './rpc.js';
import { Schemas } from './schemas.js';
import { Session } from './session.js';
import { Subscriptions } from './subscriptions.js';
import { PresenceTracker } from './presence-tracker.js';
import { MemoryChannelPresenceStore } from './engine/memory/channel-presence.js';
import type { PresenceEvent } from './engine/channel-presence.js';
import type { Transport } from './transport/transport.js';
import { encodeTextFrame } from './transport/ws-frame.js';
import { HERALD_VERSION } from './version.js';
import { ProxyHooks } from './proxy/hooks.js';
import { identify } from './proxy/identify.js';
import { publishGate } from './proxy/publish-gate.js';
import { ChannelInfoBook } from './proxy/channel-info.js';
import { SubscribeGate } from './proxy/subscribe-gate.js';
import { TokenRefresh } from './token-refresh.js';

export type { PublishRequest, PublishResult } from './publishing.js';

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
  readonly control: ControlPlane;
  readonly access: ChannelAccess;
  readonly delivery: ReliableDelivery;
  /** Client addresses and per-IP keys (`server.trustProxy`, `limits.ipv6PrefixLength`). */
  readonly clientIps: ClientIps;
  readonly rateLimits: RateLimits;
  readonly publishing: Publishing;
  readonly dispatcher: Dispatcher;
  readonly subscriptions: Subscriptions;
  readonly rpc: Rpc;
  readonly admin: Admin;
  /** Connection, subscription and message events of this node, for webhooks (lifecycle-events.ts). */
  readonly lifecycle: LifecycleBus;
  readonly proxy: ProxyHooks;
  readonly tokens: TokenRefresh;
  /** Channel presence: members, join/leave, and `onPresenceEvent` for whoever must hear each event once. */
  readonly channelPresence: PresenceTracker;
  private readonly heartbeat: Heartbeat;
  private readonly frames: FrameHandler;
  private readonly disposeEngines: (() => Promise<void>) | undefined;
  private readonly pingFrame = encodeTextFrame('{"type":"ping"}');
  private connectionSeq = 0;
  /** Sessions whose connection.opened went out: only they get a connection.closed. */
  private readonly opened = new WeakSet<Session>();
  private controlNode: ControlNode | undefined;
  private readonly startedAt = Date.now();

  constructor(
    readonly config: Readonly<HeraldConfig>,
    readonly log: FastifyBaseLogger,
    engines: NodeEngines = {},
    name?: string,
  ) {
    this.name = name ?? defaultNodeName(config);
    this.schemas = new Schemas(config.limits.maxJsonDepth);
    this.verifier = new TokenVerifier(config.auth.jwt, {
      onError: (err, keySet) => this.log.error({ err: err.message, keySet }, 'cannot fetch a JWT key set from its jwksUrl; the last one fetched stays in use, or tokens are refused if none was'),
      onRecovered: (keySet) => this.log.info({ keySet }, 'JWT key set fetched again from its jwksUrl'),
      onFetch: (keySet, ok, keys) => this.metrics.observeJwksFetch(keySet, ok, keys),
    });
    this.clientIps = new ClientIps({ trustProxy: config.server.trustProxy, ipv6PrefixLength: config.limits.ipv6PrefixLength });
    const window = engines.broker && engines.inbox ? undefined : new IdempotencyWindow(config.publish.idempotencyWindowMs, config.publish.idempotencyMaxKeys);
    this.broker = engines.broker ?? new MemoryBroker(window);
    this.presence = engines.presence ?? new MemoryPresence();
    this.inbox = engines.inbox ?? new MemoryInbox(window);
    this.control = engines.control ?? new BusControlPlane(new MemoryControlBus(), controlTimingOf(config));
    this.access = new ChannelAccess(config.channels);
    this.disposeEngines = engines.dispose;
    this.lifecycle = new LifecycleBus((err, event) => this.log.error({ err, event }, 'a lifecycle event listener failed'));
    this.hub = new Hub({
      onSlowConsumer: (s) => {
        this.metrics.slowConsumerCloses.inc();
        this.log.warn({ connId: s.id, user: s.user, backlog: s.backlogBytes }, 'closing slow consumer');
      },
      onFlushed: () => this.dispatcher.observeLatency(),
    });
    this.metrics = new Metrics({
      connections: () => this.hub.sessions.size,
      subscriptions: () => this.hub.subscriptionCount,
      queuedBytes: () => this.hub.queuedBytes(),
      proxyInFlight: () => this.proxy.pending,
    });
    this.rateLimits = new RateLimits(config, this.metrics.rateLimited);
    this.heartbeat = new Heartbeat(config.heartbeat, {
      ping: (s) => {
        s.enqueue(this.pingFrame);
      },
      timeout: (s, reason) => {
        if (reason === 'pong') this.metrics.heartbeatTimeouts.inc();
        if (reason === 'pong') s.close(CloseCode.HEARTBEAT_TIMEOUT, 'no pong in time');
        else s.close(CloseCode.CONNECT_TIMEOUT, 'no connect frame in time');
      },
    });
    this.delivery = new ReliableDelivery(config, {
      inbox: this.inbox,
      userSessions: (user) => this.hub.userSessions(user),
      onExhausted: (item) => {
        this.metrics.retriesExhausted.inc();
        this.log.warn({ connId: item.session.id, user: item.session.user, msgId: item.msgId, attempts: item.attempts }, 'retries exhausted; message kept in the inbox');
        this.lifecycle.emit('message.retries_exhausted', { msgId: item.msgId, user: item.session.user || undefined, connectionId: item.session.id, channel: item.channel, attempts: item.attempts });
      },
      onInboxDrop: (user, dropped) => {
        this.metrics.inboxDropped.inc(dropped);
        this.log.warn({ user, dropped }, 'inbox limits dropped messages');
        this.lifecycle.emit('inbox.expired', { user, dropped });
      },
      log: this.log,
      onAcknowledged: (ack) => this.lifecycle.emit('message.acknowledged', ack),
      write: (s, frame) => this.hub.offer(s, frame),
    });
    const historyConfig = (channel: string) => this.historyConfig(channel);
    this.publishing = new Publishing({
      config,
      log,
      metrics: this.metrics,
      broker: this.broker,
      inbox: this.inbox,
      receipts: this.delivery.receipts,
      historyConfig,
      onInboxDrop: (user, dropped) => this.lifecycle.emit('inbox.expired', { user, dropped }),
    });
    this.dispatcher = new Dispatcher({ hub: this.hub, metrics: this.metrics, log, delivery: this.delivery });
    // What a subscribe hook attached to a subscription: the gate below writes it, presence shows it.
    const channelInfo = new ChannelInfoBook();
    this.channelPresence = new PresenceTracker({
      channels: config.channels,
      store: engines.channelPresence ?? new MemoryChannelPresenceStore(controlTimingOf(config)),
      access: this.access,
      channelInfo: (session, channel) => channelInfo.get(session, channel),
      log,
    });
    // Each join and leave is heard once in the cluster (by the node that wrote it), so each becomes one webhook event.
    this.channelPresence.onPresenceEvent(({ type, channel, member }) =>
      this.lifecycle.emit(type === 'join' ? 'presence.join' : 'presence.leave', { channel, connectionId: member.client, user: member.user || undefined, node: member.node }),
    );
    this.subscriptions = new Subscriptions({
      nodeName: this.name,
      hub: this.hub,
      broker: this.broker,
      presence: this.presence,
      members: this.channelPresence,
      access: this.access,
      log,
      limits: { maxSubscriptionsPerConnection: config.limits.maxSubscriptionsPerConnection, maxRecover: config.channels.maxRecover },
      historyConfig,
      lifecycle: this.lifecycle,
    });
    this.rpc = new Rpc({ log, maxPendingPerConnection: config.rpc.maxPendingPerConnection, session: (id) => this.hub.sessions.get(id) });
    this.admin = new Admin({ nodeName: this.name, hub: this.hub, rpc: this.rpc, subscriptions: this.subscriptions, presence: this.presence, rpcTimeoutMs: config.rpc.timeoutMs, controlTimeoutMs: config.cluster.controlTimeoutMs });
    this.proxy = new ProxyHooks(
      config.proxy,
      config.channels.namespaces,
      this.name,
      (hook, outcome, seconds) => {
        this.metrics.proxyRequests.inc({ hook, outcome });
        this.metrics.proxyDuration.observe({ hook }, seconds);
      },
      { maxInfoBytes: config.auth.jwt.maxInfoBytes, maxJsonDepth: config.limits.maxJsonDepth },
    );
    if (this.proxy.rpcEnabled) this.rpc.handleOthers((s, method, data) => this.proxy.rpc(s, method, data));
    const subscriptions = new SubscribeGate({ inner: this.subscriptions, access: this.access, hooks: this.proxy, verifier: this.verifier, channelInfo });
    this.tokens = new TokenRefresh({
      verifier: this.verifier,
      access: this.access,
      hub: this.hub,
      unsubscribe: (s, channel) => subscriptions.unsubscribe(s, channel),
      hook: this.proxy.refreshEnabled ? { aheadMs: this.proxy.refreshAheadMs, refresh: (s) => this.proxy.refresh(s) } : undefined,
      send: (s, frame) => this.frames.send(s, frame),
      log,
      toleranceMs: config.auth.jwt.clockToleranceSec * 1000,
    });
    this.frames = new FrameHandler({
      nodeName: this.name,
      config,
      log,
      metrics: this.metrics,
      schemas: this.schemas,
      rateLimits: this.rateLimits,
      admission: this.hub,
      subscriptions,
      publishing: this.publishing,
      rpc: this.rpc,
      acks: this.delivery,
      identify: identify({ verifier: this.verifier, hooks: this.proxy, anonymous: config.auth.anonymous, anonymousIdentity: () => this.anonymousIdentity() }),
      publishGate: publishGate(this.access, this.proxy),
      refresh: this.tokens,
      presence: this.channelPresence,
      lifecycle: { activate: (s) => this.activate(s), afterConnected: (s) => this.afterConnected(s) },
    });
    // Off by default: a method any client may call is attack surface a deployment opts into.
    if (config.rpc.echo) this.rpc.handle('echo', async (_s, data) => data);
  }

  async start(): Promise<void> {
    await this.verifier.start();
    await this.broker.start({ onDispatch: (d) => this.dispatcher.deliver(d), onGap: () => this.onBrokerGap() });
    await this.channelPresence.start(this.name);
    this.controlNode = await this.control.join({
      node: this.name,
      handle: (cmd) => this.admin.handle(cmd),
      describe: () => ({ version: HERALD_VERSION, startedAt: this.startedAt, connections: this.hub.sessions.size }),
    });
    this.admin.attachControl(this.controlNode);
    this.heartbeat.start();
    this.delivery.start();
  }

  get draining(): boolean {
    return this.publishing.draining;
  }

  // ---- connections ---------------------------------------------------------------------------

  /**
   * Registers a freshly upgraded connection as pending; it must be `connected` within what is
   * left of its handshake deadline (`connectWithinMs`, default the whole `limits.handshakeTimeoutMs`)
   * or it is closed with 4007. `ipKey` is the per-IP key it counts under.
   */
  attach(transport: Transport, upgradeToken?: string, admission: { ipKey?: string; connectWithinMs?: number; headers?: IncomingHttpHeaders } = {}): Session {
    const id = `${this.name}-${(++this.connectionSeq).toString(36)}`;
    const session = new Session(id, transport, this.hub, this.config.limits.maxQueueBytes);
    if (upgradeToken) this.frames.setUpgradeToken(session, upgradeToken);
    if (admission.headers) this.proxy.rememberUpgrade(session, admission.headers);
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
    session.transportClosed();
    this.heartbeat.forget(session);
    this.tokens.forget(session);
    this.delivery.forget(session);
    this.rpc.connectionClosed(session);
    this.subscriptions.disconnected(session);
    if (session.identity) {
      this.log.debug({ connId: session.id, user: session.user, code }, 'disconnected');
      if (this.opened.delete(session)) this.lifecycle.emit('connection.closed', { connectionId: session.id, user: session.user || undefined, node: this.name, code });
    }
  }

  /** `connect` succeeded, before `connected` is sent. Resolves false when the session closed meanwhile. */
  async activate(session: Session): Promise<boolean> {
    this.heartbeat.connected(session);
    if (!(await this.subscriptions.connected(session))) return false;
    this.tokens.track(session);
    this.log.debug({ connId: session.id, user: session.user }, 'connected');
    this.opened.add(session);
    this.lifecycle.emit('connection.opened', { connectionId: session.id, user: session.user || undefined, node: this.name, tags: session.tags, remoteAddress: session.transport.remoteAddress });
    return true;
  }

  /** After `connected` went out: hand over what waited in the user's inbox. */
  private afterConnected(session: Session): void {
    if (!session.user) return;
    // Part of handling this connection's `connect`: a fault in it ends this connection only (4004).
    this.delivery.deliverInbox(session).catch((err: unknown) => {
      this.log.error({ err, connId: session.id, user: session.user }, 'inbox delivery failed; closing the connection with 4004');
      session.close(CloseCode.SERVER_ERROR, 'internal error');
    });
  }

  /** The broker reports that dispatches may have been lost: subscribers reconnect and recover. */
  onBrokerGap(): void {
    this.metrics.brokerGaps.inc();
    const closed = this.subscriptions.askSubscribersToRecover();
    this.log.warn({ closed }, 'broker gap: asked channel subscribers to reconnect and recover');
  }

  historyConfig(channel: string): HistoryConfig {
    return historyConfigOf(this.config.channels, channel);
  }

  /**
   * Hears every channel-presence join and leave this node wrote: its own members', and the leaves
   * of a dead node's members its sweeps claimed — so each event of the cluster is heard on exactly
   * one node. Returns the disposer.
   */
  onPresenceEvent(listener: (event: PresenceEvent) => void): () => void {
    return this.channelPresence.onPresenceEvent(listener);
  }

  /** Publishes one message (see publishing.ts); for embedders and ingestors. */
  publish(req: PublishRequest, scope?: string): Promise<PublishResult> {
    return this.publishing.publish(req, scope);
  }

  /** Stop taking work, flush queues and close every client with a "reconnect" code. */
  async drain(deadlineMs: number): Promise<void> {
    this.publishing.draining = true;
    this.dispatcher.wakeAll();
    this.hub.writes.flushAll();
    for (const s of this.hub.sessions.values()) s.close(CloseCode.SHUTDOWN, 'server shutting down, reconnect');
    const until = Date.now() + deadlineMs;
    while (this.hub.sessions.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.hub.sessions.values()) s.transport.terminate();
  }

  async close(): Promise<void> {
    this.verifier.stop();
    this.heartbeat.stop();
    this.delivery.stop();
    // Leaving first: peers stop waiting for this node at once instead of after cluster.nodeTtlMs.
    this.admin.attachControl(undefined);
    await this.controlNode?.leave();
    await this.control.close();
    await this.channelPresence.close();
    await this.broker.close();
    await this.presence.close();
    await this.inbox.close();
    await this.disposeEngines?.();
  }

  anonymousIdentity() {
    return anonymousIdentity(this.access.publicChannels, this.access.clientPublishChannels);
  }
}

export function defaultNodeName(config: Readonly<HeraldConfig>): string {
  return config.server.nodeName || `herald-${randomUUID().slice(0, 8)}`;
}

