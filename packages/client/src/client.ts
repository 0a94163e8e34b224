import { CloseCode, ErrorCode, shouldReconnect } from '@herald/protocol';
import type { ConnectFrame, ConnectedFrame, Envelope, ServerFrame, StreamPosition } from '@herald/protocol';
import { Connection } from './connection.js';
import type { CloseInfo, Link } from './connection.js';
import { isOffline, watchConnectivity } from './connectivity.js';
import { Delivery } from './delivery.js';
import type { MessageContext } from './delivery.js';
import { ClientErrorCode, HeraldError, toHeraldError } from './errors.js';
import { Emitter } from './events.js';
import type { Disposer } from './events.js';
import { resolveOptions } from './options.js';
import type { HeraldClientOptions, ResolvedOptions } from './options.js';
import { Outbox } from './outbox.js';
import { Publisher } from './publisher.js';
import type { PublishOptions, PublishResult } from './publisher.js';
import { Rpc } from './rpc.js';
import type { RequestHandler, RequestOptions } from './rpc.js';
import type { ClientState } from './state.js';
import type { Subscription } from './subscription.js';
import { Subscriptions } from './subscriptions.js';
import { TokenRefresher } from './token-refresher.js';
import type { SubscribedInfo } from './subscription.js';

export type ConnectedInfo = Omit<ConnectedFrame, 'type' | 'id'>;

export type ClientEvents = {
  /** Every state change, with the new state. */
  state: [state: ClientState];
  connecting: [info: { attempt: number }];
  connected: [info: ConnectedInfo];
  /** A connection ended (or the client stopped trying); `willReconnect` says what happens next. */
  disconnected: [info: { code: number; reason: string; willReconnect: boolean }];
  reconnecting: [info: { attempt: number; delay: number }];
  error: [error: HeraldError];
  subscribed: [info: SubscribedInfo];
  unsubscribed: [info: { channel: string }];
  /** Messages of this channel were lost while away: reload its state. */
  recoveryFailed: [info: SubscribedInfo];
  /** A user, broadcast or filter delivery. Channel messages go to their Subscription. */
  message: [message: Envelope, context: MessageContext];
  /** The server confirmed a publish (including ones restored from a persisted outbox). */
  published: [result: PublishResult];
};

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

/**
 * A Herald connection that survives network trouble. One loop (never two) dials, waits, and
 * dials again; after each `connected` it resubscribes every channel with recovery, then sends
 * pending requests and the outbox.
 */
export class HeraldClient {
  readonly options: ResolvedOptions;
  readonly #events: Emitter<ClientEvents>;
  readonly #subs: Subscriptions;
  readonly #delivery: Delivery;
  readonly #publisher: Publisher;
  readonly #rpc: Rpc;
  readonly #outbox: Outbox;
  readonly #refresher: TokenRefresher | undefined;
  readonly #disposers: Disposer[] = [];
  #state: ClientState = { status: 'idle' };
  #conn: Connection | undefined;
  #run = 0;
  #wanted = false;
  #ready: Deferred | undefined;
  #wake: (() => void) | undefined;
  #token: string | undefined;
  #tokenStale = false;
  #expiresAt: number | undefined;
  #nextId = 1;

  constructor(options: HeraldClientOptions) {
    this.options = resolveOptions(options);
    this.#token = this.options.token;
    const onError = (err: HeraldError): void => this.#emitError(err);
    const link = (): Link | undefined => this.#conn;
    this.#events = new Emitter((err, event) => {
      if (event !== 'error') this.#emitError(toHeraldError(err));
    });
    this.#delivery = new Delivery({ ackMode: this.options.ackMode, dedupSize: this.options.dedupSize, ackDelay: this.options.ackDelay, link, onError });
    this.#subs = new Subscriptions({
      delivery: this.#delivery,
      link,
      onError,
      onSubscribed: (info) => this.#events.emit('subscribed', info),
      onRecoveryFailed: (info) => this.#events.emit('recoveryFailed', info),
      onUnsubscribed: (info) => this.#events.emit('unsubscribed', info),
    });
    this.#outbox = new Outbox({ maxSize: this.options.outboxMaxSize, storage: this.options.storage, storageKey: this.options.storageKey, onError });
    this.#publisher = new Publisher({
      outbox: this.#outbox,
      resendInterval: this.options.resendInterval,
      link,
      onError,
      onPublished: (result) => this.#events.emit('published', result),
    });
    this.#rpc = new Rpc({ link, defaultTimeout: this.options.requestTimeout, onError });
    const { getToken } = this.options;
    this.#refresher = getToken
      ? new TokenRefresher({
          getToken,
          aheadMs: this.options.refreshAhead,
          onError,
          onRefreshed: (token, expiresAt) => {
            this.#token = token;
            this.#tokenStale = false;
            this.#expiresAt = expiresAt;
          },
        })
      : undefined;
    if (this.options.browserEvents) {
      this.#disposers.push(
        watchConnectivity({
          online: () => this.#wake?.(),
          visible: () => this.#wake?.(),
          offline: () => this.#conn?.abandon({ code: 1006, reason: 'browser went offline' }),
        }),
      );
    }
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The server's id for the current connection, while connected. */
  get connectionId(): string | undefined {
    return this.#state.status === 'connected' ? this.#state.connectionId : undefined;
  }

  /** Unconfirmed publishes waiting in the outbox. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => unknown): Disposer {
    return this.#events.on(event, listener);
  }

  once<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => unknown): Disposer {
    return this.#events.once(event, listener);
  }

  /**
   * Starts connecting (and reconnecting) if not already. Resolves at the next `connected`;
   * rejects if the client stops trying first. Safe to ignore: its rejection is never unhandled.
   */
  connect(): Promise<void> {
    this.#assertOpen();
    if (this.#state.status === 'connected') return Promise.resolve();
    if (!this.#ready) {
      let resolve!: () => void;
      let reject!: (err: HeraldError) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => {});
      this.#ready = { promise, resolve, reject };
    }
    if (!this.#wanted) {
      this.#wanted = true;
      void this.#loop(++this.#run);
    }
    return this.#ready.promise;
  }

  /** Closes the connection and stops reconnecting; subscriptions, handlers and the outbox are kept. */
  disconnect(): void {
    if (this.#state.status === 'closed') return;
    this.#stop({ code: CloseCode.NORMAL, reason: 'client disconnect' });
  }

  /** Disconnects for good: rejects everything pending and removes every listener and handler. */
  close(): void {
    if (this.#state.status === 'closed') return;
    this.disconnect();
    const err = new HeraldError(ClientErrorCode.CLIENT_CLOSED, 'client closed');
    this.#publisher.close(err);
    this.#rpc.close(err);
    this.#subs.close(err);
    this.#delivery.dispose();
    for (const dispose of this.#disposers.splice(0)) dispose();
    this.#setState({ status: 'closed' });
    this.#events.clear();
  }

  /**
   * Subscribes to a channel (at once if connected, else on connect) and keeps it subscribed across
   * reconnects. Subscribing twice to a channel returns the same Subscription. `recover` resumes
   * after a position saved earlier (e.g. `subscription.position` from a previous page).
   * `presence: true` asks for the channel's `join`/`leave` events (`subscription.on('join')`);
   * `false` declines them where the namespace sends them by default.
   */
  subscribe<T = unknown>(channel: string, options: { recover?: StreamPosition; presence?: boolean } = {}): Subscription<T> {
    this.#assertOpen();
    return this.#subs.subscribe<T>(channel, options.recover, options.presence);
  }

  getSubscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.#subs.get(channel) as Subscription<T> | undefined;
  }

  subscriptions(): Subscription[] {
    return this.#subs.all();
  }

  /**
   * Publishes to a channel through the outbox: kept until the server confirms, resent after a
   * reconnect with the same msgId. Rejects `outbox_full` when the outbox is at its bound.
   */
  publish(channel: string, eventType: string, payload: unknown, options?: PublishOptions): Promise<PublishResult> {
    if (this.#state.status === 'closed') return Promise.reject(closedError());
    return this.#publisher.publish(channel, eventType, payload, options);
  }

  /** Calls a server method; resolves with the response data or rejects with a HeraldError. */
  request<R = unknown>(method: string, data?: unknown, options?: RequestOptions): Promise<R> {
    if (this.#state.status === 'closed') return Promise.reject(closedError());
    return this.#rpc.request<R>(method, data, options);
  }

  /** Answers requests the server sends for `method`. */
  onRequest(method: string, handler: RequestHandler): Disposer {
    this.#assertOpen();
    return this.#rpc.onRequest(method, handler);
  }

  // -------------------------------------------------------------------------------------------
  // The connection loop
  // -------------------------------------------------------------------------------------------

  async #loop(run: number): Promise<void> {
    const live = (): boolean => this.#run === run;
    let failures = 0;
    let last: CloseInfo | undefined;
    let lostConnection = false;
    for (;;) {
      if (last) {
        // Not the first dial of this run: decide whether and when to try again.
        const policy = this.options.backoff;
        const expired = last.code === CloseCode.TOKEN_EXPIRED || last.error?.code === ErrorCode.TOKEN_EXPIRED;
        if (expired) this.#tokenStale = true;
        if (expired ? !this.options.getToken : !shouldReconnect(last.code)) {
          const why = `connection closed with code ${last.code}${last.reason ? ` (${last.reason})` : ''}`;
          const code = expired ? ErrorCode.TOKEN_EXPIRED : ClientErrorCode.CONNECTION_FAILED;
          this.#stop({ ...last, error: last.error ?? HeraldError.fromBody({ code, message: why, temporary: false }) });
          return;
        }
        failures += 1;
        const delay = policy ? policy.delay(failures) : null;
        if (delay === null) {
          const why = policy ? `gave up after ${policy.maxAttempts} reconnect attempts` : 'reconnect is disabled';
          this.#stop({ ...last, error: new HeraldError(ClientErrorCode.CONNECTION_FAILED, why) });
          return;
        }
        this.#setState({ status: 'reconnecting', attempt: failures, delay, code: last.code, reason: last.reason });
        if (lostConnection) this.#events.emit('disconnected', { code: last.code, reason: last.reason, willReconnect: true });
        lostConnection = false;
        this.#events.emit('reconnecting', { attempt: failures, delay });
        // An offline browser waits for the `online` event (or the longest delay) instead.
        await this.#sleep(isOffline() ? Math.max(delay, policy?.maxDelay ?? 0) : delay);
        if (!live()) return;
      }
      this.#setState({ status: 'connecting', attempt: failures });
      this.#events.emit('connecting', { attempt: failures });

      let token: string | undefined;
      try {
        token = await this.#currentToken();
      } catch (err) {
        if (!live()) return;
        const error = toHeraldError(err, ClientErrorCode.TOKEN_REFRESH_FAILED);
        this.#emitError(error);
        last = { code: 1006, reason: error.message, error };
        continue;
      }
      if (!live()) return;

      const conn = new Connection({
        WebSocket: this.options.WebSocket,
        url: this.options.url,
        nextId: () => this.#nextId++,
        onFrame: (frame, link) => this.#onFrame(frame, link),
        onError: (err) => {
          if (this.#conn === conn) this.#emitError(err);
        },
      });
      this.#conn = conn;
      const frame: ConnectFrame = { type: 'connect', id: this.#nextId++, client: this.options.clientName };
      if (token !== undefined) frame.token = token;
      const connected = await conn.handshake(frame, this.options.connectTimeout);
      if (!live()) return;
      if (!connected) {
        last = await conn.closed;
        if (this.#conn === conn) this.#conn = undefined;
        continue;
      }

      failures = 0;
      this.#expiresAt = connected.expiresAt;
      const { type: _t, id: _i, ...info } = connected;
      this.#setState({ status: 'connected', connectionId: connected.connectionId, user: connected.user, node: connected.node });
      this.#linkUp(conn);
      this.#refresher?.schedule(conn, connected.expiresAt);
      this.#events.emit('connected', info);
      const ready = this.#ready;
      this.#ready = undefined;
      ready?.resolve();

      last = await conn.closed;
      if (!live()) return;
      if (this.#conn === conn) this.#conn = undefined;
      this.#linkDown();
      lostConnection = true;
    }
  }

  /**
   * Ends the current run for good: closes any connection, moves to `disconnected`, announces it
   * and settles a pending `connect()` with an error.
   */
  #stop(info: CloseInfo): void {
    const before = this.#state.status;
    this.#run += 1;
    this.#wanted = false;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn) conn.abandon(info, true);
    if (before === 'connected' || conn) this.#linkDown();
    this.#wake?.();
    if (before === 'idle' || before === 'disconnected') return;
    const state: ClientState = { status: 'disconnected', code: info.code, reason: info.reason };
    if (info.error) state.error = info.error;
    this.#setState(state);
    this.#events.emit('disconnected', { code: info.code, reason: info.reason, willReconnect: false });
    const ready = this.#ready;
    this.#ready = undefined;
    ready?.reject(info.error ?? new HeraldError(ClientErrorCode.CLIENT_CLOSED, info.reason || 'client disconnected'));
  }

  async #currentToken(): Promise<string | undefined> {
    const { getToken } = this.options;
    const expired = this.#expiresAt !== undefined && this.#expiresAt * 1000 <= Date.now();
    if (getToken && (this.#token === undefined || this.#tokenStale || expired)) {
      let token: unknown;
      try {
        token = await getToken();
      } catch (err) {
        throw new HeraldError(ClientErrorCode.TOKEN_REFRESH_FAILED, `getToken() failed: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      if (typeof token !== 'string' || token === '') {
        throw new HeraldError(ClientErrorCode.TOKEN_REFRESH_FAILED, 'getToken() must return a non-empty string');
      }
      this.#token = token;
      this.#tokenStale = false;
      this.#expiresAt = undefined;
    }
    return this.#token;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Per-connection work
  // -------------------------------------------------------------------------------------------

  /** Resubscribe first, then requests waiting for a connection, then the outbox. */
  #linkUp(link: Link): void {
    this.#subs.linkUp(link);
    this.#rpc.linkUp(link);
    this.#publisher.linkUp(link);
  }

  #linkDown(): void {
    this.#refresher?.cancel();
    this.#subs.linkDown();
    this.#rpc.linkDown();
    this.#publisher.linkDown();
    this.#delivery.flush();
  }

  #onFrame(frame: ServerFrame, link: Link): void {
    if (this.#conn !== link) return;
    switch (frame.type) {
      case 'message':
        if (frame.target === 'channel') {
          this.#subs.route(frame);
        } else {
          this.#delivery.deliver(frame, (message, context) => this.#events.emit('message', message, context));
        }
        return;
      case 'join':
      case 'leave':
        this.#subs.routePresence(frame);
        return;
      case 'request':
        this.#rpc.handleRequest(frame, link);
        return;
      case 'response':
        this.#rpc.handleResponse(frame);
        return;
      case 'unsubscribed':
        // The server ended a subscription (e.g. subscription_revoked after a token refresh).
        this.#subs.ended(frame.channel, HeraldError.fromBody(frame.error ?? { code: ErrorCode.NOT_SUBSCRIBED, message: 'ended by the server', temporary: false }));
        return;
      case 'error': {
        const err = HeraldError.fromBody(frame.error);
        if (err.code === ErrorCode.TOKEN_EXPIRED) this.#tokenStale = true;
        this.#emitError(err);
        return;
      }
      default:
        this.#emitError(new HeraldError(ErrorCode.INVALID_FRAME, `unexpected "${frame.type}" frame`));
    }
  }

  #setState(state: ClientState): void {
    this.#state = state;
    this.#events.emit('state', state);
  }

  #emitError(err: HeraldError): void {
    this.#events.emit('error', err);
  }

  #assertOpen(): void {
    if (this.#state.status === 'closed') throw closedError();
  }
}

function closedError(): HeraldError {
  return new HeraldError(ClientErrorCode.CLIENT_CLOSED, 'client is closed');
}
