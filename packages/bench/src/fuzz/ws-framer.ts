/**
 * A deliberately permissive WebSocket framer (RFC 6455 §5) for the fuzzer's raw sockets: it
 * writes any opcode, FIN and RSV bits, masked or not, with any length encoding (including
 * non-minimal and impossible ones), and reads the server's frames. A real client library refuses
 * to produce most of what this file exists to send.
 */
import { randomBytes } from 'node:crypto';

export const Opcode = { CONTINUATION: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

export interface FrameSpec {
  opcode: number;
  payload: Buffer;
  /** Default true. */
  fin?: boolean;
  /** RSV1..3 as a 3-bit number (RSV1 = 4). */
  rsv?: number;
  /** Default true: clients must mask. */
  mask?: boolean;
  maskKey?: Buffer;
  /** How the length is written: the shortest form (default), or forced to the 16- or 64-bit form. */
  lengthForm?: 'minimal' | '16' | '64';
  /** Write this length instead of the payload's (a lie: the frame is then truncated or overlong). */
  declaredLength?: bigint;
}

export function encodeFrame(spec: FrameSpec): Buffer {
  const { opcode, payload, fin = true, rsv = 0, mask = true } = spec;
  const length = spec.declaredLength ?? BigInt(payload.length);
  const form = spec.lengthForm ?? 'minimal';
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  let header: Buffer;
  if (form === 'minimal' && length < 126n) {
    header = Buffer.from([b0, (mask ? 0x80 : 0) | Number(length)]);
  } else if (form !== '64' && length < 65536n) {
    header = Buffer.alloc(4);
    header[0] = b0;
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt.asUintN(64, length), 2);
  }
  if (!mask) return Buffer.concat([header, payload]);
  const key = spec.maskKey ?? randomBytes(4);
  const masked = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, key, masked]);
}

/** A masked, unfragmented text frame. */
export function textFrame(text: string | Buffer): Buffer {
  return encodeFrame({ opcode: Opcode.TEXT, payload: typeof text === 'string' ? Buffer.from(text, 'utf8') : text });
}

/** The payload of a close frame: a 16-bit code followed by the reason. */
export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code & 0xffff, 0);
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason]);
}

export interface ReadFrame {
  opcode: number;
  fin: boolean;
  payload: Buffer;
}

/** Incremental reader of the server's frames (unmasked, as servers send them). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Set when the server broke the framing rules (masked frame, RSV bits); reading stops. */
  violation: string | undefined;

  push(chunk: Buffer): ReadFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: ReadFrame[] = [];
    while (!this.violation) {
      if (this.buf.length < 2) break;
      const b0 = this.buf[0]!;
      const b1 = this.buf[1]!;
      if (b1 & 0x80) this.violation = 'server frame is masked';
      else if (b0 & 0x70) this.violation = 'server frame has RSV bits set';
      if (this.violation) break;
      let len = b1 & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        len = Number(this.buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buf.length < offset + len) break;
      out.push({ opcode: b0 & 0x0f, fin: (b0 & 0x80) !== 0, payload: this.buf.subarray(offset, offset + len) });
      this.buf = this.buf.subarray(offset + len);
    }
    return out;
  }
}

/** The HTTP upgrade request, with overridable parts for the upgrade-level inputs. */
export function upgradeRequest(host: string, opts: { path?: string; key?: string | null; version?: string | null; extraHeaders?: string[]; upgrade?: string | null } = {}): string {
  const lines = [`GET ${opts.path ?? '/ws'} HTTP/1.1`, `Host: ${host}`];
  if (opts.upgrade !== null) lines.push(`Upgrade: ${opts.upgrade ?? 'websocket'}`, 'Connection: Upgrade');
  if (opts.key !== null) lines.push(`Sec-WebSocket-Key: ${opts.key ?? randomBytes(16).toString('base64')}`);
  if (opts.version !== null) lines.push(`Sec-WebSocket-Version: ${opts.version ?? '13'}`);
  lines.push(...(opts.extraHeaders ?? []));
  return `${lines.join('\r\n')}\r\n\r\n`;
}
