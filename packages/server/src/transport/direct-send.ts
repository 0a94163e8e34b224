/**
 * An optional native `send(2)` for the fan-out hot path (packages/server/native/herald-send). Node's
 * `socket.write` costs several µs of JavaScript per call (stream state, a write request object,
 * a callback scheduled on nextTick) on top of the system call; with thousands of writes per
 * publish that bookkeeping is most of the user-space CPU of a delivery. When the addon is built,
 * a frame for a socket with nothing else pending goes straight to the kernel; anything unusual
 * (data already queued, a partial write, EAGAIN, an error) takes the normal `socket.write` path,
 * so ordering and error handling stay Node's. Without the addon, or with `server.nativeSend`
 * false, everything uses `socket.write`.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { descriptorOf } from './internals.js';

interface NativeSend {
  /** Bytes written, or −errno. Never blocks, never raises SIGPIPE. */
  send(fd: number, data: Buffer): number;
  /** `send` of the same bytes to `fds[0…count)`; results[i] = bytes written or −errno. */
  sendMany(fds: Int32Array, count: number, data: Buffer, results: Int32Array): void;
}

function load(): NativeSend | undefined {
  // The same relative path from src/ and dist/: both sit two levels below the package root.
  try {
    return createRequire(import.meta.url)('../../native/herald-send/build/Release/herald_send.node') as NativeSend;
  } catch {
    return undefined; // not built
  }
}

const native = load();

/** True when the addon is built and loaded, so frames may bypass `socket.write` (`server.nativeSend`). */
export const directSendAvailable = native !== undefined;

/**
 * Sends one frame to many sockets in one native call; undefined without the addon. Callers pass
 * only sockets with nothing pending and finish partial or refused sends through `socket.write`.
 */
export type SendMany = NativeSend['sendMany'];
export const sendMany: SendMany | undefined = native?.sendMany;

/** `send` of one frame to one descriptor (for the start-up self-test, internals.ts); undefined without the addon. */
export const sendOne: NativeSend['send'] | undefined = native?.send;

/**
 * The file descriptor of a plain TCP socket (never TLS or a pipe) when the addon is loaded and
 * the start-up self-test found `_handle.fd` usable (internals.ts), or -1.
 */
export function plainTcpFd(socket: Socket): number {
  return native ? descriptorOf(socket) : -1;
}

/**
 * Writes `frame` to `socket`: straight to the kernel when nothing is pending on the socket,
 * otherwise (or for whatever the kernel did not take) through `socket.write`.
 */
export function sendFrame(socket: Socket, fd: number, frame: Buffer): void {
  if (fd >= 0 && socket.writableLength === 0) finishSend(socket, frame, native!.send(fd, frame));
  else socket.write(frame);
}

/**
 * After a native send took `written` bytes of `frame` (negative: −errno, e.g. EAGAIN), hands the
 * rest — or the whole frame — to `socket.write`, which queues it and reports errors as usual.
 */
export function finishSend(socket: Socket, frame: Buffer, written: number): void {
  if (written === frame.length || socket.destroyed) return;
  socket.write(written > 0 ? frame.subarray(written) : frame);
}
