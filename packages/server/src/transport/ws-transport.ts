/**
 * Transport over a `ws` WebSocket. Data frames are pre-framed by the hub and written straight to
 * the TCP socket, bypassing `ws`'s per-send framing; `ws` still owns the read side and control
 * frames. This is safe because with permessage-deflate off `ws` writes each frame synchronously
 * and whole, so our frames and its control frames never interleave mid-frame. Reaching the socket
 * reads `ws`'s private `_socket`; when the start-up self-test (internals.ts) found it unusable,
 * frames are taken apart again and go through `ws.send`/`ws.pong`, the public path.
 *
 * Closing (docs/protocol.md, "Close codes"): the close frame is written behind the bytes the
 * socket already holds — frames the session had not handed over yet are dropped for a slow
 * consumer (session.ts) — so a client that is not reading cannot see it until it reads those.
 * The connection is kept while that backlog waits, up to `CLOSE_STALL_MS`; once the close frame
 * has left our buffers the client has `CLOSE_GRACE_MS` to answer it. Then the socket is
 * destroyed: a client still stalled with the close frame in our buffers sees 1006; one that
 * resumed in time reads the backlog and then the close frame, whatever its size.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { finishSend, plainTcpFd, sendFrame } from './direct-send.js';
import { rawSocketOf } from './internals.js';
import type { Transport } from './transport.js';
import { splitFrames } from './ws-frame.js';

const PONG = 0x0a;

/** After the close frame left our buffers: how long the client has to answer it. */
export const CLOSE_GRACE_MS = 2000;
/** How long a closing connection is kept while the close frame still waits behind unread bytes. */
export const CLOSE_STALL_MS = 10_000;
/** How often a closing connection's unsent bytes are looked at. */
const CLOSE_CHECK_MS = 100;
/** RFC 6455 §5.5: a control frame carries at most 125 bytes, two of them the close code. */
const MAX_CLOSE_REASON_BYTES = 123;

/** `reason` cut to at most 123 UTF-8 bytes, on a character boundary. */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    bytes += Buffer.byteLength(ch);
    if (bytes > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
  }
  return out;
}

export class WsTransport implements Transport {
  /** The TCP socket under `ws`, or undefined when frames must go through `ws.send`. */
  private readonly socket: Socket | undefined;
  /** For direct sends (direct-send.ts); -1 writes through `socket.write` only. */
  private readonly fd: number;
  readonly remoteAddress: string;

  constructor(private readonly ws: WebSocket, remoteAddress: string, nativeSend = true) {
    this.socket = rawSocketOf(ws);
    this.fd = nativeSend && this.socket ? plainTcpFd(this.socket) : -1;
    this.remoteAddress = remoteAddress;
  }

  write(frames: readonly Buffer[]): void {
    const socket = this.socket;
    if (this.ws.readyState !== 1) return;
    if (!socket) return this.writePublic(frames);
    if (socket.destroyed || !socket.writable) return;
    sendFrame(socket, this.fd, frames.length === 1 ? frames[0]! : Buffer.concat(frames as Buffer[]));
  }

  directFd(): number {
    const socket = this.socket;
    return this.fd >= 0 && socket && socket.writableLength === 0 && !socket.destroyed && socket.writable && this.ws.readyState === 1 ? this.fd : -1;
  }

  finishDirect(frame: Buffer, written: number): void {
    if (this.socket) finishSend(this.socket, frame, written); // directFd is -1 without one, so no direct send happened
  }

  get bufferedAmount(): number {
    if (this.socket) return this.socket.writableLength;
    const buffered = this.ws.bufferedAmount as number | undefined; // public, but computed from ws's own fields
    return typeof buffered === 'number' && Number.isFinite(buffered) ? buffered : 0;
  }

  /** The public path: each pre-framed frame handed to `ws` as the payload it carries. */
  private writePublic(frames: readonly Buffer[]): void {
    for (const bytes of frames) {
      for (const { opcode, payload } of splitFrames(bytes)) {
        if (opcode === PONG) this.ws.pong(payload);
        else this.ws.send(payload, { binary: false });
      }
    }
  }

  /** Every close ends the connection: one `ws` refuses to start is terminated instead. */
  close(code: number, reason: string): void {
    if (this.ws.readyState >= 2) return;
    try {
      this.ws.close(code, closeReason(reason));
    } catch {
      this.ws.terminate();
      return;
    }
    const stallUntil = Date.now() + CLOSE_STALL_MS;
    let timer: NodeJS.Timeout;
    const wait = (): void => {
      if (this.ws.readyState === 3 || this.socket?.destroyed) return;
      if (this.bufferedAmount === 0) {
        // The close frame is in the kernel: the client gets it (then the FIN) when it reads.
        timer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
      } else if (Date.now() >= stallUntil) {
        this.ws.terminate();
        return;
      } else {
        timer = setTimeout(wait, CLOSE_CHECK_MS);
      }
      timer.unref();
    };
    wait();
    this.ws.once('close', () => clearTimeout(timer));
  }

  terminate(): void {
    this.ws.terminate();
  }
}
