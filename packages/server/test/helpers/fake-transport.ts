/** A transport that records what would be written and can pretend its socket buffer is full. */
import type { Transport } from '../../src/transport/transport.js';

export class FakeTransport implements Transport {
  readonly writes: Buffer[][] = [];
  closed: { code: number; reason: string } | undefined;
  bufferedAmount = 0;
  /** When true the peer reads nothing: every write stays buffered. */
  stuck = false;

  constructor(readonly remoteAddress = '127.0.0.1') {}

  write(frames: readonly Buffer[]): void {
    this.writes.push([...frames]);
    if (this.stuck) for (const f of frames) this.bufferedAmount += f.length;
  }

  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }

  terminate(): void {
    this.closed ??= { code: 1006, reason: 'terminated' };
  }

  /** Decoded text of every frame written (unmasked server frames). */
  texts(): string[] {
    return this.writes.flat().map(decodeServerFrame);
  }
}

export function decodeServerFrame(frame: Buffer): string {
  let len = frame[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    len = frame.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    len = Number(frame.readBigUInt64BE(2));
    offset = 10;
  }
  return frame.subarray(offset, offset + len).toString('utf8');
}
