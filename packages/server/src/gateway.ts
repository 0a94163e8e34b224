/**
 * The WebSocket gateway: HTTP upgrade on `/ws` with origin checks and admission, then hands each
 * socket to the node. Admission counts two kinds of sockets apart, so idle unauthenticated sockets
 * cannot lock users out:
 *
 * - pending — upgraded, not yet `connected` — at most `limits.maxPendingConnections`, each on the
 *   handshake deadline (`limits.handshakeTimeoutMs` from the TCP accept, see handshake-deadline.ts);
 * - authenticated, at most `limits.maxConnections`: checked here, and again when `connect`
 *   succeeds (several pending sockets may race for the last slots).
 *
 * Per client IP (IPv6 by prefix, see http/client-ip.ts) both kinds count toward
 * `limits.maxConnectionsPerIp`. Overload fails fast with 503 by default; with
 * `limits.overload.mode = "queue"` upgrades wait (bounded in count and time) for a free slot,
 * which is then kept for them until they authenticate.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { HandshakeDeadline } from './handshake-deadline.js';
import { rawErrorResponse } from './http/http-limits.js';
import type { HeraldNode } from './node.js';
import { rateLimitedError, retryAfterHeader, type Refusal } from './rate-limit/rate-limits.js';
import { LoopTurns, PacedReader } from './read-pacer.js';
import { RefusalLog } from './refusal-log.js';
import { encodePongFrame } from './transport/ws-frame.js';
import type { Session } from './session.js';
import { WsTransport } from './transport/ws-transport.js';

/** What a connection's socket delivers, in order: data frames and control pings (answered by us). */
interface InputFrame {
  kind: 'text' | 'binary' | 'ping';
  data: Buffer;
}

interface Waiter {
  admit(): void;
  timer: NodeJS.Timeout;
}

/** Who a socket is and how long it has left to authenticate. */
interface Admission {
  ip: string;
  ipKey: string;
  connectWithinMs: number;
  /** Admitted from the overload queue: its slot is kept until it authenticates. */
  reserved: boolean;
}

export class Gateway {
  private readonly wss: WebSocketServer;
  private upgrading = 0;
  private readonly waiters: Waiter[] = [];
  private readonly allowAnyOrigin: boolean;
  private readonly allowedOrigins: Set<string>;
  private readonly turns = new LoopTurns();
  private readonly refusals: RefusalLog;
  closed = false;

  constructor(
    private readonly node: HeraldNode,
    private readonly deadline?: HandshakeDeadline,
  ) {
    const { limits, origins } = node.config;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: false,
      // Pongs to control pings go through the session (paced and within its byte budget), not past it.
      autoPong: false,
    });
    this.allowAnyOrigin = origins.allowed.includes('*');
    this.allowedOrigins = new Set(origins.allowed.map((o) => o.toLowerCase()));
    this.refusals = new RefusalLog(node.log);
  }

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // The request head is in: what is left of the handshake deadline is the time to `connected`.
    const connectWithinMs = this.deadline ? this.deadline.settle(req.socket) : this.node.config.limits.handshakeTimeoutMs;
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') return reject(socket, ErrorCode.NOT_FOUND, 'WebSocket endpoint is /ws');
    if (this.closed || this.node.draining) return reject(socket, ErrorCode.SHUTTING_DOWN);
    if (!this.originAllowed(req)) {
      this.node.metrics.rejectedConnections.inc({ reason: 'origin' });
      this.refusals.refused('origin', { ip: this.node.clientIps.address(req), origin: req.headers.origin });
      return reject(socket, ErrorCode.FORBIDDEN_ORIGIN, `origin ${req.headers.origin} is not allowed; add it to origins.allowed`);
    }
    const { hub, clientIps } = this.node;
    const ip = clientIps.address(req);
    const ipKey = clientIps.keyOf(ip);
    const limited = this.node.rateLimits.handshake(ipKey);
    if (limited) {
      this.refusals.refused('rate_limited', { ip, origin: req.headers.origin });
      return rejectRateLimited(socket, limited);
    }
    const { limits } = this.node.config;
    if (hub.countForIp(ipKey) >= limits.maxConnectionsPerIp) {
      this.node.metrics.rejectedConnections.inc({ reason: 'per_ip' });
      this.refusals.refused('per_ip', { ip, origin: req.headers.origin });
      return reject(socket, ErrorCode.TOO_MANY_CONNECTIONS, `too many connections from ${ip} (limits.maxConnectionsPerIp)`, 5);
    }
    if (hub.pendingCount + this.upgrading >= limits.maxPendingConnections) {
      this.node.metrics.rejectedConnections.inc({ reason: 'pending' });
      this.refusals.refused('pending', { ip, origin: req.headers.origin });
      return reject(socket, ErrorCode.OVERLOADED, `too many connections still authenticating (${limits.maxPendingConnections}, limits.maxPendingConnections)`, 2);
    }
    const admission: Admission = { ip, ipKey, connectWithinMs, reserved: false };
    if (this.atCapacity()) {
      if (limits.overload.mode === 'queue' && this.waiters.length < limits.overload.maxQueued) {
        this.enqueueWaiter(req, socket, head, admission);
        return;
      }
      this.node.metrics.rejectedConnections.inc({ reason: 'overload' });
      this.refusals.refused('overload', { ip, origin: req.headers.origin });
      return reject(socket, ErrorCode.OVERLOADED, `at capacity (${limits.maxConnections} connections, limits.maxConnections)`, 2);
    }
    this.accept(req, socket, head, admission);
  };

  /** Every authenticated slot is taken or kept for a queue-admitted socket. */
  private atCapacity(): boolean {
    const { hub } = this.node;
    return hub.connectedCount + hub.reservedCount >= this.node.config.limits.maxConnections;
  }

  private enqueueWaiter(req: IncomingMessage, socket: Duplex, head: Buffer, admission: Admission): void {
    const waiter: Waiter = {
      admit: () => {
        clearTimeout(waiter.timer);
        if (socket.destroyed) return;
        this.accept(req, socket, head, { ...admission, reserved: true });
      },
      timer: setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.node.metrics.rejectedConnections.inc({ reason: 'overload' });
        this.refusals.refused('overload', { ip: admission.ip, origin: req.headers.origin, detail: 'waited limits.overload.queueTimeoutMs' });
        reject(socket, ErrorCode.OVERLOADED, 'at capacity; waited limits.overload.queueTimeoutMs for a free slot', 2);
      }, this.node.config.limits.overload.queueTimeoutMs),
    };
    this.waiters.push(waiter);
  }

  private admitWaiters(): void {
    // Each admission reserves its slot synchronously (the upgrade completes at once), so this
    // admits as many waiters as there are free slots; one whose socket went away takes none.
    while (this.waiters.length > 0 && !this.atCapacity()) this.waiters.shift()!.admit();
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, admission: Admission): void {
    this.upgrading++;
    const token = tokenFromUrl(req.url);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.upgrading--;
      (socket as { __heraldBound?: boolean }).__heraldBound = true;
      const session = this.bind(ws, token, admission, req);
      if (admission.reserved) this.node.hub.reserve(session);
    });
    // handleUpgrade may abort (bad headers) without calling back; the socket then closes.
    socket.once('close', () => {
      if ((socket as { __heraldBound?: boolean }).__heraldBound) return;
      this.upgrading = Math.max(0, this.upgrading - 1);
    });
  }

  private bind(ws: WebSocket, token: string | undefined, admission: Admission, req: IncomingMessage): Session {
    const node = this.node;
    const session = node.attach(new WsTransport(ws, admission.ip, node.config.server.nativeSend), token, { ipKey: admission.ipKey, connectWithinMs: admission.connectWithinMs, headers: req.headers });
    const reader = new PacedReader<InputFrame>(this.turns, ws, (input) => {
      if (input.kind === 'text') node.onText(session, input.data.toString('utf8'));
      else if (input.kind === 'ping') session.enqueue(encodePongFrame(input.data));
      else {
        node.metrics.invalidFrames.inc({ code: 'binary' });
        session.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported; send JSON text');
      }
    }, () => !session.open);
    ws.on('message', (data: Buffer, isBinary: boolean) => reader.push({ kind: isBinary ? 'binary' : 'text', data }));
    ws.on('ping', (data: Buffer) => reader.push({ kind: 'ping', data }));
    ws.on('error', (err) => node.log.debug({ connId: session.id, err: err.message }, 'websocket error'));
    ws.once('close', (code: number) => {
      if (!session.identity && (code === CloseCode.UNAUTHORIZED || code === CloseCode.TOKEN_EXPIRED)) this.refusals.refused('auth', { ip: admission.ip });
      node.detach(session, code);
      this.admitWaiters();
    });
    return session;
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin || this.allowAnyOrigin) return true; // Non-browser clients send no Origin.
    if (this.allowedOrigins.size > 0) return this.allowedOrigins.has(origin.toLowerCase());
    // Same origin without a list: only for an IP literal or localhost. Under a name, "same origin"
    // proves nothing: an attacker's domain re-pointed at this server (DNS rebinding) sends its own
    // name as both Origin and Host. Named hosts must be listed in origins.allowed.
    try {
      const host = (req.headers.host ?? '').toLowerCase();
      if (new URL(origin).host.toLowerCase() !== host) return false;
      const name = new URL(`http://${host}`).hostname.replace(/^\[(.*)\]$/, '$1');
      return name === 'localhost' || isIP(name) !== 0;
    } catch {
      return false;
    }
  }

  close(): void {
    this.closed = true;
    this.refusals.close();
    for (const w of this.waiters.splice(0)) clearTimeout(w.timer);
    this.wss.close();
  }
}

function tokenFromUrl(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (!url || q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

/** Answers a refused upgrade (the socket is no longer Node's HTTP parser's) and closes it. */
function reject(socket: Duplex, code: ErrorCode, message?: string, retryAfter?: number, details?: unknown): void {
  socket.end(rawErrorResponse(code, message, retryAfter ? { 'Retry-After': retryAfter } : {}, details));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** 429 `rate_limited` with the standard body (`details.retryAfterMs`) and `Retry-After` in seconds. */
function rejectRateLimited(socket: Duplex, refusal: Refusal): void {
  const err = rateLimitedError(refusal);
  reject(socket, ErrorCode.RATE_LIMITED, err.message, Number(retryAfterHeader(err)), err.details);
}
