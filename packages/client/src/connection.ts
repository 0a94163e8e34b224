import { CloseCode, ErrorCode } from '@herald/protocol';
import type { ClientFrame, ConnectFrame, ConnectedFrame, ServerFrame } from '@herald/protocol';
import { decodeServerFrame, encodeClientFrame } from './codec.js';
import { ClientErrorCode, HeraldError } from './errors.js';
import { OPEN } from './transport.js';
import type { WebSocketConstructor, WebSocketLike } from './transport.js';

/** How a connection ended. `error` is the server's error frame (or the local cause), if any. */
export interface CloseInfo {
  code: number;
  reason: string;
  error?: HeraldError;
}

/** Outcome of a frame sent with `call()`: the reply frame, or the error that replaced it. */
export type Reply = ServerFrame | HeraldError;

/** What the rest of the client may do with the current connection. */
export interface Link {
  /** True from `connected` until the connection ends. */
  readonly isOpen: boolean;
  /** Sends a frame that expects no reply; false when the connection is no longer open. */
  send(frame: ClientFrame): boolean;
  /**
   * Sends a frame built around a fresh `id`. `onReply` runs exactly once: with the reply carrying
   * that id, with the HeraldError of an `error` frame carrying it, or with `connection_lost`.
   */
  call(build: (id: number) => ClientFrame, onReply: (reply: Reply) => void): void;
}

export interface ConnectionOptions {
  WebSocket: WebSocketConstructor;
  url: string;
  /** Gives every frame needing an id a number unique within the client. */
  nextId: () => number;
  /** Frames other than replies, pings and the handshake. */
  onFrame: (frame: ServerFrame, link: Link) => void;
  /** Malformed frames, transport errors: reported, never thrown. */
  onError: (err: HeraldError) => void;
}

/**
 * One WebSocket from dial to close: the `connect` handshake, reply matching by `id`, answering
 * `ping`, and a watchdog that declares the connection dead when nothing arrives for
 * `pingInterval + pongTimeout` (or, before `connected`, for the connect timeout). It never
 * reconnects; the client's loop does that.
 */
export class Connection implements Link {
  /** Resolves once, when the connection ends for whatever reason. */
  readonly closed: Promise<CloseInfo>;
  readonly #opts: ConnectionOptions;
  readonly #replies = new Map<number, (reply: Reply) => void>();
  #ws: WebSocketLike | undefined;
  #resolveClosed!: (info: CloseInfo) => void;
  #ended = false;
  #connected = false;
  #lastSeen = 0;
  #deadAfter = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #handshakeError: HeraldError | undefined;

  constructor(opts: ConnectionOptions) {
    this.#opts = opts;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  get isOpen(): boolean {
    return this.#connected && !this.#ended;
  }

  /**
   * Opens the socket, sends `connect` and waits for `connected`. Resolves with the `connected`
   * frame, or with `null` when the connection ended first (see `closed` for why).
   */
  handshake(frame: ConnectFrame, timeoutMs: number): Promise<ConnectedFrame | null> {
    return new Promise((resolve) => {
      void this.closed.then(() => resolve(null));
      this.#watch(timeoutMs, 'connect timeout');
      let ws: WebSocketLike;
      try {
        ws = new this.#opts.WebSocket(this.#opts.url);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#finish({ code: 1006, reason: message, error: new HeraldError(ClientErrorCode.TRANSPORT_ERROR, message) });
        return;
      }
      this.#ws = ws;
      ws.onopen = () => this.#sendRaw(frame);
      ws.onerror = (event: { message?: unknown }) => {
        const detail = typeof event?.message === 'string' ? `: ${event.message}` : '';
        this.#opts.onError(new HeraldError(ClientErrorCode.TRANSPORT_ERROR, `WebSocket error${detail}`));
      };
      ws.onclose = (event: { code?: unknown; reason?: unknown }) => {
        const code = typeof event?.code === 'number' ? event.code : 1006;
        const reason = typeof event?.reason === 'string' ? event.reason : '';
        this.#finish({ code, reason, ...(this.#handshakeError ? { error: this.#handshakeError } : {}) });
      };
      ws.onmessage = (event: { data?: unknown }) => {
        this.#lastSeen = Date.now();
        let parsed: ServerFrame;
        try {
          parsed = decodeServerFrame(event?.data);
        } catch (err) {
          this.#opts.onError(err as HeraldError);
          return;
        }
        if (this.#connected) {
          this.#dispatch(parsed);
        } else if (parsed.type === 'connected' && parsed.id === frame.id) {
          this.#connected = true;
          this.#watch(parsed.pingInterval > 0 ? parsed.pingInterval + parsed.pongTimeout : 0, 'no ping from server');
          resolve(parsed);
        } else if (parsed.type === 'error') {
          this.#handshakeError = HeraldError.fromBody(parsed.error);
          this.#opts.onError(this.#handshakeError);
        } else if (parsed.type === 'ping') {
          // Only `connect` may precede `connected`; a ping is answered after the handshake.
        } else {
          this.#opts.onError(new HeraldError(ErrorCode.INVALID_FRAME, `unexpected "${parsed.type}" frame before "connected"`));
        }
      };
    });
  }

  send(frame: ClientFrame): boolean {
    if (!this.isOpen) return false;
    return this.#sendRaw(frame);
  }

  call(build: (id: number) => ClientFrame, onReply: (reply: Reply) => void): void {
    const id = this.#opts.nextId();
    if (!this.isOpen) {
      onReply(lost());
      return;
    }
    this.#replies.set(id, onReply);
    if (!this.#sendRaw(build(id))) this.#settle(id, lost());
  }

  /**
   * Ends the connection from this side at once: `closed` resolves with `info` without waiting for
   * the closing handshake, which a dead peer would never complete.
   */
  abandon(info: CloseInfo, polite = false): void {
    const ws = this.#ws;
    this.#finish(info);
    if (!ws) return;
    try {
      if (!polite && ws.terminate) ws.terminate();
      else ws.close(CloseCode.NORMAL, polite ? info.reason.slice(0, 120) : undefined);
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone either way.
    }
  }

  #dispatch(frame: ServerFrame): void {
    switch (frame.type) {
      case 'ping':
        this.#sendRaw({ type: 'pong' });
        return;
      case 'pong':
        return;
      case 'unsubscribed':
        // Without an id: the server ended the subscription itself (e.g. subscription_revoked).
        if (frame.id === undefined) this.#opts.onFrame(frame, this);
        else this.#settle(frame.id, frame);
        return;
      case 'subscribed':
      case 'published':
      case 'refreshed':
      case 'presence':
      case 'presence_stats':
        this.#settle(frame.id, frame);
        return;
      case 'error':
        if (frame.id !== undefined && this.#replies.has(frame.id)) this.#settle(frame.id, HeraldError.fromBody(frame.error));
        else this.#opts.onFrame(frame, this);
        return;
      default:
        this.#opts.onFrame(frame, this);
    }
  }

  #settle(id: number, reply: Reply): void {
    const onReply = this.#replies.get(id);
    if (!onReply) {
      if (!(reply instanceof HeraldError)) this.#opts.onError(new HeraldError(ErrorCode.INVALID_FRAME, `reply "${reply.type}" to unknown id ${id}`));
      return;
    }
    this.#replies.delete(id);
    try {
      onReply(reply);
    } catch (err) {
      this.#opts.onError(err instanceof HeraldError ? err : new HeraldError(ClientErrorCode.HANDLER_FAILED, String(err)));
    }
  }

  #sendRaw(frame: ClientFrame): boolean {
    const ws = this.#ws;
    if (this.#ended || !ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(encodeClientFrame(frame));
      return true;
    } catch (err) {
      this.#opts.onError(new HeraldError(ClientErrorCode.TRANSPORT_ERROR, `send failed: ${String(err)}`));
      return false;
    }
  }

  /** Declares the connection dead when nothing arrives for `limitMs` (0 disables). */
  #watch(limitMs: number, reason: string): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadAfter = limitMs;
    this.#lastSeen = Date.now();
    if (limitMs <= 0) return;
    const check = (): void => {
      const idle = Date.now() - this.#lastSeen;
      if (idle >= this.#deadAfter) {
        this.abandon({ code: CloseCode.HEARTBEAT_TIMEOUT, reason, error: new HeraldError(ClientErrorCode.CONNECTION_LOST, reason) });
      } else {
        this.#timer = setTimeout(check, this.#deadAfter - idle);
      }
    };
    this.#timer = setTimeout(check, limitMs);
  }

  #finish(info: CloseInfo): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const ws = this.#ws;
    if (ws) {
      // Keep no-op handlers: `ws` throws on an 'error' event that has no listener.
      const noop = (): void => {};
      ws.onopen = noop;
      ws.onmessage = noop;
      ws.onclose = noop;
      ws.onerror = noop;
    }
    const replies = [...this.#replies.keys()];
    for (const id of replies) this.#settle(id, lost());
    this.#resolveClosed(info);
  }
}

function lost(): HeraldError {
  return new HeraldError(ClientErrorCode.CONNECTION_LOST, 'connection lost before the reply arrived');
}
