/**
 * An optional native `send(2)` for the fan-out hot path (native/herald-send). Node's
 * `socket.write` costs several µs of JavaScript per call (stream state, a write request object,
 * a callback scheduled on nextTick) on top of the system call; with thousands of writes per
 * publish that bookkeeping is most of the user-space CPU of a delivery. When the addon is built,
 * a frame for a socket with nothing else pending goes straight to the kernel; anything unusual
 * (data already queued, a partial write, EAGAIN, an error) takes the normal `socket.write` path,
 * so ordering and error handling stay Node's. Without the addon everything uses `socket.write`.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

interface NativeSend {
  /** Bytes written, or −errno. Never blocks, never raises SIGPIPE. */
  send(fd: number, data: Buffer): number;
}

function load(): NativeSend | undefined {
  if (process.env.HERALD_NATIVE_SEND === '0') return undefined;
  const require = createRequire(import.meta.url);
  for (const path of ['../../../../native/herald-send/build/Release/herald_send.node', '../../../native/herald-send/build/Release/herald_send.node']) {
    try {
      return require(path) as NativeSend;
    } catch {
      /* not built here */
    }
  }
  return undefined;
}

const native = load();

/** True when frames may bypass `socket.write` on this process. */
export const directSendAvailable = native !== undefined;

/** The file descriptor of a plain TCP socket (never TLS or a pipe), or -1. */
export function plainTcpFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number; constructor?: { name?: string } } })._handle;
  if (!native || !handle || handle.constructor?.name !== 'TCP' || 'encrypted' in socket) return -1;
  return typeof handle.fd === 'number' ? handle.fd : -1;
}

/**
 * Writes `frame` to `socket`: straight to the kernel when nothing is pending on the socket,
 * otherwise (or for whatever the kernel did not take) through `socket.write`.
 */
export function sendFrame(socket: Socket, fd: number, frame: Buffer): void {
  if (fd >= 0 && socket.writableLength === 0) {
    const n = native!.send(fd, frame);
    if (n === frame.length) return;
    if (n > 0) {
      socket.write(frame.subarray(n));
      return;
    }
  }
  socket.write(frame);
}
