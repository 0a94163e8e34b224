/**
 * A minimal WebSocket client for the loadgen's receive path: a plain TCP socket, the RFC 6455
 * opening handshake, and a frame parser that hands each text message to the listener as a view
 * into the received chunk (no copy, no stream machinery, no per-message allocation beyond the
 * view). It implements only what the loadgen needs: unfragmented or fragmented text/binary
 * messages, ping → pong, close. Outgoing frames are masked, as RFC 6455 requires of clients.
 *
 * Its events mirror the subset of `ws` the loadgen uses: 'open', 'message' (Buffer), 'close'
 * (code), 'error'.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HANDSHAKE_BYTES = 16 * 1024;

export interface RawWebSocketOptions {
  localAddress?: string | undefined;
}

export class RawWebSocket extends EventEmitter {
  private readonly socket: Socket;
  private upgraded = false;
  private closed = false;
  private pending: Buffer | undefined;
  private fragments: Buffer[] | undefined;

  constructor(url: string, options: RawWebSocketOptions = {}) {
    super();
    const u = new URL(url);
    const port = Number(u.port || 80);
    this.socket = connect({ host: u.hostname, port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    this.socket.setNoDelay(true);
    this.socket.once('connect', () => {
      const key = randomBytes(16).toString('base64');
      this.socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('data', (chunk: Buffer) => (this.upgraded ? this.onData(chunk) : this.onHandshake(chunk)));
    this.socket.on('error', (error) => this.emit('error', error));
    this.socket.once('close', () => this.finish(1006));
  }

  /** Sends one text message. */
  send(text: string): void {
    if (this.closed || !this.upgraded) return;
    this.socket.write(frame(OP_TEXT, Buffer.from(text, 'utf8')));
  }

  /**
   * Stops reading in JavaScript and returns the descriptor and any bytes read past the last
   * complete frame, for a native reader to continue from (native-recv.ts). Writes still go through
   * `send`; `terminate` still closes the socket. Undefined when the socket has no descriptor.
   */
  detach(): { fd: number; leftover: Buffer } | undefined {
    const handle = (this.socket as unknown as { _handle?: { fd?: number; reading?: boolean; readStop?: () => number } })._handle;
    if (!this.upgraded || this.closed || !handle || typeof handle.fd !== 'number' || handle.fd < 0 || !handle.readStop) return undefined;
    this.socket.pause();
    this.socket.removeAllListeners('data');
    // pause() alone leaves libuv reading into the stream's buffer until it is full.
    handle.reading = false;
    handle.readStop();
    const leftover = this.pending ?? Buffer.alloc(0);
    this.pending = undefined;
    return { fd: handle.fd, leftover };
  }

  /** Drops the connection without a closing handshake. */
  terminate(): void {
    this.socket.destroy();
  }

  private finish(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', code);
  }

  private onHandshake(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const end = buf.indexOf(HEADER_END);
    if (end < 0) {
      if (buf.length > MAX_HANDSHAKE_BYTES) this.fail(new Error('handshake response too large'));
      else this.pending = buf;
      return;
    }
    const head = buf.subarray(0, end).toString('latin1');
    const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (!status || status[1] !== '101') {
      this.fail(new Error(`unexpected server response: ${head.split('\r\n')[0]}`));
      return;
    }
    this.upgraded = true;
    this.emit('open');
    const rest = buf.subarray(end + HEADER_END.length);
    if (rest.length > 0) this.onData(rest);
  }

  private fail(error: Error): void {
    this.emit('error', error);
    this.socket.destroy();
  }

  /** Parses every complete frame in the bytes received so far; keeps a partial one for later. */
  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let off = 0;
    const size = buf.length;
    while (size - off >= 2) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let header = 2;
      if (len === 126) {
        if (size - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        header = 4;
      } else if (len === 127) {
        if (size - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
        header = 10;
      }
      if (b1 & 0x80) return this.fail(new Error('server sent a masked frame'));
      if (size - off < header + len) break;
      const payload = buf.subarray(off + header, off + header + len);
      off += header + len;
      this.onFrame(b0 & 0x0f, (b0 & 0x80) !== 0, payload);
      if (this.closed) return;
    }
    if (off < size) this.pending = buf.subarray(off);
  }

  private onFrame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (fin) this.emit('message', payload);
        else this.fragments = [Buffer.from(payload)];
        return;
      case OP_CONTINUATION:
        if (!this.fragments) return this.fail(new Error('continuation without a first fragment'));
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const message = Buffer.concat(this.fragments);
          this.fragments = undefined;
          this.emit('message', message);
        }
        return;
      case OP_PING:
        this.socket.write(frame(OP_PONG, payload));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.socket.end(frame(OP_CLOSE, payload.subarray(0, 2)));
        this.finish(code);
        return;
      }
      default:
        this.fail(new Error(`unknown opcode ${opcode}`));
    }
  }
}

/** A masked client frame. */
function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const header = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(header + 4 + len);
  out[0] = 0x80 | opcode;
  if (header === 2) out[1] = 0x80 | len;
  else if (header === 4) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  const mask = randomBytes(4);
  mask.copy(out, header);
  for (let i = 0; i < len; i++) out[header + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}
