/**
 * Transport over a `ws` WebSocket. Data frames are pre-framed by the hub and written straight to
 * the TCP socket, bypassing `ws`'s per-send framing; `ws` still owns the read side and control
 * frames. This is safe because with permessage-deflate off `ws` writes each frame synchronously
 * and whole, so our frames and its control frames never interleave mid-frame.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { finishSend, plainTcpFd, sendFrame } from './direct-send.js';
import type { Transport } from './transport.js';

const CLOSE_GRACE_MS = 2000;
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
  private readonly socket: Socket;
  /** For direct sends (direct-send.ts); -1 writes through `socket.write` only. */
  private readonly fd: number;
  readonly remoteAddress: string;

  constructor(private readonly ws: WebSocket, remoteAddress: string, nativeSend = true) {
    this.socket = (ws as unknown as { _socket: Socket })._socket;
    this.fd = nativeSend ? plainTcpFd(this.socket) : -1;
    this.remoteAddress = remoteAddress;
  }

  write(frames: readonly Buffer[]): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable || this.ws.readyState !== 1) return;
    sendFrame(socket, this.fd, frames.length === 1 ? frames[0]! : Buffer.concat(frames as Buffer[]));
  }

  directFd(): number {
    const socket = this.socket;
    return this.fd >= 0 && socket.writableLength === 0 && !socket.destroyed && socket.writable && this.ws.readyState === 1 ? this.fd : -1;
  }

  finishDirect(frame: Buffer, written: number): void {
    finishSend(this.socket, frame, written);
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
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
    const timer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    this.ws.once('close', () => clearTimeout(timer));
  }

  terminate(): void {
    this.ws.terminate();
  }
}
