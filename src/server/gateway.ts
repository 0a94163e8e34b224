/**
 * The WebSocket gateway: HTTP upgrade on `/ws` with origin checks and connection limits, then
 * hands each socket to the node. Overload fails fast with 503 by default; with
 * `limits.overload.mode = "queue"` upgrades wait (bounded in count and time) for a free slot.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, ErrorCode } from '../protocol/codes.js';
import { ERRORS } from './errors.js';
import type { HeraldNode } from './node.js';
import { LoopTurns, PacedReader } from './read-pacer.js';
import { WsTransport } from './transport/ws-transport.js';

interface Waiter {
  admit(): void;
  timer: NodeJS.Timeout;
}

export class Gateway {
  private readonly wss: WebSocketServer;
  private upgrading = 0;
  private readonly waiters: Waiter[] = [];
  private readonly allowAnyOrigin: boolean;
  private readonly allowedOrigins: Set<string>;
  private readonly turns = new LoopTurns();
  closed = false;

  constructor(private readonly node: HeraldNode) {
    const { limits, origins } = node.config;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: false,
    });
    this.allowAnyOrigin = origins.allowed.includes('*');
    this.allowedOrigins = new Set(origins.allowed.map((o) => o.toLowerCase()));
  }

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') return reject(socket, 404, ErrorCode.NOT_FOUND, 'WebSocket endpoint is /ws');
    if (this.closed || this.node.draining) return reject(socket, 503, ErrorCode.SHUTTING_DOWN);
    if (!this.originAllowed(req)) {
      this.node.metrics.rejectedConnections.inc({ reason: 'origin' });
      return reject(socket, 403, ErrorCode.FORBIDDEN_ORIGIN, `origin ${req.headers.origin} is not allowed; add it to origins.allowed`);
    }
    const ip = this.remoteAddress(req, socket);
    const { limits } = this.node.config;
    if (this.node.hub.countForIp(ip) >= limits.maxConnectionsPerIp) {
      this.node.metrics.rejectedConnections.inc({ reason: 'per_ip' });
      return reject(socket, 429, ErrorCode.TOO_MANY_CONNECTIONS, `too many connections from ${ip} (limits.maxConnectionsPerIp)`, 5);
    }
    if (this.atCapacity()) {
      if (limits.overload.mode === 'queue' && this.waiters.length < limits.overload.maxQueued) {
        this.enqueueWaiter(req, socket, head, ip);
        return;
      }
      this.node.metrics.rejectedConnections.inc({ reason: 'overload' });
      return reject(socket, 503, ErrorCode.OVERLOADED, `at capacity (${limits.maxConnections} connections, limits.maxConnections)`, 2);
    }
    this.accept(req, socket, head, ip);
  };

  private atCapacity(): boolean {
    return this.node.hub.sessions.size + this.upgrading >= this.node.config.limits.maxConnections;
  }

  private enqueueWaiter(req: IncomingMessage, socket: Duplex, head: Buffer, ip: string): void {
    const waiter: Waiter = {
      admit: () => {
        clearTimeout(waiter.timer);
        if (socket.destroyed) return;
        this.accept(req, socket, head, ip);
      },
      timer: setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.node.metrics.rejectedConnections.inc({ reason: 'overload' });
        reject(socket, 503, ErrorCode.OVERLOADED, 'at capacity; waited limits.overload.queueTimeoutMs for a free slot', 2);
      }, this.node.config.limits.overload.queueTimeoutMs),
    };
    this.waiters.push(waiter);
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0 && !this.atCapacity()) this.waiters.shift()!.admit();
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, ip: string): void {
    this.upgrading++;
    const token = tokenFromUrl(req.url);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.upgrading--;
      this.bind(ws, ip, token);
    });
    // handleUpgrade may abort (bad headers) without calling back; the socket then closes.
    socket.once('close', () => {
      if ((socket as { __heraldBound?: boolean }).__heraldBound) return;
      this.upgrading = Math.max(0, this.upgrading - 1);
    });
  }

  private bind(ws: WebSocket, ip: string, token: string | undefined): void {
    const raw = (ws as unknown as { _socket: Duplex & { __heraldBound?: boolean } })._socket;
    raw.__heraldBound = true;
    const node = this.node;
    const session = node.attach(new WsTransport(ws, ip, node.config.server.nativeSend), token);
    const reader = new PacedReader<Buffer>(this.turns, ws, (data) => node.onText(session, data.toString('utf8')), () => !session.open);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        node.metrics.invalidFrames.inc({ code: 'binary' });
        session.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported; send JSON text');
        return;
      }
      reader.push(data);
    });
    ws.on('error', (err) => node.log.debug({ connId: session.id, err: err.message }, 'websocket error'));
    ws.once('close', (code: number) => {
      node.detach(session, code);
      this.admitWaiters();
    });
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin || this.allowAnyOrigin) return true; // Non-browser clients send no Origin.
    if (this.allowedOrigins.size > 0) return this.allowedOrigins.has(origin.toLowerCase());
    try {
      return new URL(origin).host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
    } catch {
      return false;
    }
  }

  private remoteAddress(req: IncomingMessage, socket: Duplex): string {
    if (this.node.config.server.trustProxy) {
      const fwd = req.headers['x-forwarded-for'];
      const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
      if (first) return first;
    }
    return (socket as { remoteAddress?: string }).remoteAddress ?? 'unknown';
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) clearTimeout(w.timer);
    this.wss.close();
  }
}

function tokenFromUrl(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (!url || q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

function reject(socket: Duplex, status: number, code: ErrorCode, message?: string, retryAfter?: number): void {
  const spec = ERRORS[code];
  const body = JSON.stringify({ error: { code, message: message ?? spec.message, temporary: spec.temporary } });
  const reason = status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : status === 429 ? 'Too Many Requests' : 'Service Unavailable';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      (retryAfter ? `Retry-After: ${retryAfter}\r\n` : '') +
      `\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}
