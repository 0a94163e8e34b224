/**
 * The two private fields Herald's write fast paths read, checked once at start. `ws`'s
 * `WebSocket#_socket` is the TCP socket under a connection: pre-framed bytes are written to it
 * directly instead of re-framing each send. Node's `socket._handle.fd` is that socket's
 * descriptor, which the native send (direct-send.ts) writes to. Neither is public API: a new `ws`
 * or Node may rename, remove or repurpose them.
 *
 * `checkInternals()` opens one WebSocket over loopback with the `ws` in use and proves each fast
 * path end to end: `_socket` is the socket the upgrade arrived on, and a frame written to it (and
 * one sent natively to the descriptor) reaches the client as a message. A path that fails is
 * switched off for the whole process with one warning, and connections use the public path
 * instead (`ws.send`, `socket.write`), which is slower but needs nothing private. Until a check
 * has run, each connection's fields are still checked for shape before they are used.
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { encodeTextFrame } from './ws-frame.js';

/** Which fast paths this process may use. */
export interface InternalsReport {
  /** `ws._socket` may be written to with pre-framed bytes. */
  rawSocket: boolean;
  /** `socket._handle.fd` may be handed to the native send (false without the addon). */
  descriptor: boolean;
  /** Why a path is off, one sentence each; empty when both work. */
  problems: string[];
}

interface Log {
  warn(obj: object, msg: string): void;
}

let allowed = { rawSocket: true, descriptor: true };
const warned = new Set<string>();

/**
 * The TCP socket under `ws` when the raw-socket path is allowed and `_socket` looks like one,
 * else undefined: the caller then writes through `ws.send`.
 */
export function rawSocketOf(ws: WebSocket): Socket | undefined {
  if (!allowed.rawSocket) return undefined;
  const socket = (ws as unknown as { _socket?: unknown })._socket;
  return socket instanceof Socket && typeof socket.writableLength === 'number' ? socket : undefined;
}

/** The descriptor of a plain TCP socket (never TLS or a pipe) when the native path is allowed, else -1. */
export function descriptorOf(socket: Socket): number {
  return allowed.descriptor ? tcpDescriptor(socket) : -1;
}

/** `_handle.fd` of a plain TCP socket when it looks like a descriptor, else -1. */
function tcpDescriptor(socket: Socket): number {
  if ('encrypted' in socket) return -1;
  const handle = (socket as unknown as { _handle?: { fd?: unknown; constructor?: { name?: string } } | null })._handle;
  if (!handle || handle.constructor?.name !== 'TCP') return -1;
  return typeof handle.fd === 'number' && Number.isInteger(handle.fd) && handle.fd >= 0 ? handle.fd : -1;
}

/**
 * Records what a check found: the paths it failed stay off for the rest of the process, and each
 * problem is logged once, however often this is called.
 */
export function applyInternals(report: InternalsReport, log: Log): void {
  allowed = { rawSocket: allowed.rawSocket && report.rawSocket, descriptor: allowed.descriptor && report.descriptor };
  for (const problem of report.problems) {
    if (warned.has(problem)) continue;
    warned.add(problem);
    log.warn({ problem }, 'a private Node or ws field is not as expected: using the public write path');
  }
}

/** What `applyInternals` has allowed so far. */
export function internalsAllowed(): { rawSocket: boolean; descriptor: boolean } {
  return { ...allowed };
}

/** A server-side WebSocket and the upgrade request it came from, over loopback. */
export interface ProbePair {
  server: WebSocket;
  request: IncomingMessage;
  /** Messages the client side has received, as text. */
  received: string[];
  /** Resolves once the client has received `n` messages; rejects after `ms`. */
  receivedCount(n: number, ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens the loopback connection the check runs on. */
export async function loopbackPair(): Promise<ProbePair> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false });
  const received: string[] = [];
  const waiters: (() => void)[] = [];
  client.on('message', (data: Buffer) => {
    received.push(data.toString('utf8'));
    for (const w of waiters.splice(0)) w();
  });
  client.on('error', () => undefined); // a failed probe shows as frames that do not arrive
  const [[server, request]] = await Promise.all([accepted, once(client, 'open')]);
  return {
    server,
    request,
    received,
    receivedCount: (n, ms) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${received.length} of ${n} frames arrived`)), ms);
        const check = (): void => {
          if (received.length >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      }),
    close: async () => {
      client.terminate();
      server.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

// Generous: on a loaded machine a loopback frame can take a while, and a false refusal costs speed for the whole process.
const PROBE_WAIT_MS = 5000;

/** Writes `data` to a descriptor without blocking: bytes written, or −errno (direct-send.ts). */
export type SendToFd = (fd: number, data: Buffer) => number;

/**
 * Proves the fast paths on one loopback connection (see the header); the descriptor only when
 * there is a native `send` to use it. `open` is replaceable so a test can present fields that do
 * not match.
 */
export async function checkInternals(send: SendToFd | undefined, open: () => Promise<ProbePair> = loopbackPair): Promise<InternalsReport> {
  const report: InternalsReport = { rawSocket: false, descriptor: false, problems: [] };
  let pair: ProbePair;
  try {
    pair = await open();
  } catch (err) {
    report.problems.push(`the loopback self-test could not connect (${(err as Error).message})`);
    return report;
  }
  try {
    const raw = (pair.server as unknown as { _socket?: unknown })._socket;
    if (!(raw instanceof Socket) || raw !== pair.request.socket) {
      report.problems.push('ws WebSocket#_socket is not the connection\'s net.Socket: frames go through ws.send');
      return report;
    }
    raw.write(encodeTextFrame('raw'));
    try {
      await pair.receivedCount(1, PROBE_WAIT_MS);
    } catch {
      report.problems.push('a frame written to ws WebSocket#_socket did not arrive: frames go through ws.send');
      return report;
    }
    report.rawSocket = pair.received[0] === 'raw';
    if (!report.rawSocket) {
      report.problems.push('a frame written to ws WebSocket#_socket arrived altered: frames go through ws.send');
      return report;
    }
    if (!send) return report; // nothing reads the descriptor without the addon
    const fd = tcpDescriptor(raw);
    if (fd < 0) {
      report.problems.push('net.Socket#_handle.fd is not a TCP descriptor: the native send is off, frames go through socket.write');
      return report;
    }
    const frame = encodeTextFrame('fd');
    if (send(fd, frame) !== frame.length) {
      report.problems.push('the native send to net.Socket#_handle.fd failed: the native send is off, frames go through socket.write');
      return report;
    }
    try {
      await pair.receivedCount(2, PROBE_WAIT_MS);
      report.descriptor = pair.received[1] === 'fd';
    } catch {
      report.descriptor = false;
    }
    if (!report.descriptor) report.problems.push('a frame sent natively to net.Socket#_handle.fd did not arrive: the native send is off, frames go through socket.write');
    return report;
  } finally {
    await pair.close();
  }
}

let checked: Promise<InternalsReport> | undefined;

/** Runs `checkInternals()` once per process and applies it; later calls share the first result. */
export function checkInternalsOnce(send: SendToFd | undefined, log: Log): Promise<InternalsReport> {
  checked ??= checkInternals(send);
  return checked.then((report) => {
    applyInternals(report, log);
    return report;
  });
}
