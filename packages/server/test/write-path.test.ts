/**
 * The write path's invariant, tested on the module itself with fake transports and a fake
 * native batch send: frames offered to one connection reach its socket in the order offered,
 * across the direct, batched and queued paths — including a socket that turns slow in the middle
 * of a batch (a partial send, then a refused one) — and the byte budget closes a connection that
 * stops reading.
 */
import { describe, expect, it } from 'vitest';
import type { SendMany } from '../src/transport/direct-send.js';
import { encodeTextFrame } from '../src/transport/ws-frame.js';
import { ConnectionWriter, WriteScheduler } from '../src/write-path.js';
import { FakeTransport } from './helpers/fake-transport.js';

const EAGAIN = -11;

/**
 * A fake socket that also takes direct sends. `kernelRoom` is how many more bytes its kernel
 * buffer takes; whatever does not fit stays buffered (as in Node's socket) and refuses direct
 * sends until `drain`. `stream` is every byte in the order the socket received it.
 */
class DirectTransport extends FakeTransport {
  readonly stream: Buffer[] = [];
  kernelRoom = Number.POSITIVE_INFINITY;
  private readonly pending: Buffer[] = [];

  constructor(readonly fd: number) {
    super();
  }

  override write(frames: readonly Buffer[]): void {
    super.write(frames);
    for (const f of frames) this.take(f);
  }

  directFd(): number {
    return this.bufferedAmount === 0 ? this.fd : -1;
  }

  /** What the native send does: as much as the kernel takes, or −EAGAIN. */
  sendDirect(frame: Buffer): number {
    const n = Math.min(frame.length, this.kernelRoom);
    if (n === 0) return EAGAIN;
    this.kernelRoom -= n;
    this.stream.push(frame.subarray(0, n));
    return n;
  }

  finishDirect(frame: Buffer, written: number): void {
    this.take(written > 0 ? frame.subarray(written) : frame);
  }

  /** The peer reads again: everything buffered goes out, in order. */
  drain(): void {
    this.kernelRoom = Number.POSITIVE_INFINITY;
    for (const b of this.pending.splice(0)) this.stream.push(b);
    this.bufferedAmount = 0;
  }

  private take(bytes: Buffer): void {
    if (this.pending.length > 0 || this.kernelRoom < bytes.length) {
      const n = this.pending.length > 0 ? 0 : Math.max(0, this.kernelRoom);
      if (n > 0) this.stream.push(bytes.subarray(0, n));
      this.kernelRoom -= n;
      this.pending.push(bytes.subarray(n));
      this.bufferedAmount += bytes.length - n;
      return;
    }
    this.kernelRoom -= bytes.length;
    this.stream.push(bytes);
  }

  /** The text frames the peer has received, parsed from the byte stream. */
  received(): string[] {
    const all = Buffer.concat(this.stream);
    const out: string[] = [];
    for (let at = 0; at < all.length; ) {
      let len = all[at + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        len = all.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        len = Number(all.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (at + head + len > all.length) throw new Error('a frame was cut');
      out.push(all.subarray(at + head, at + head + len).toString());
      at += head + len;
    }
    return out;
  }
}

function setup(n: number, opts: { budget?: number; batch?: boolean } = {}) {
  const transports = Array.from({ length: n }, (_, i) => new DirectTransport(100 + i));
  const byFd = new Map(transports.map((t) => [t.fd, t]));
  let batchCalls = 0;
  const sendMany: SendMany = (fds, count, data, results) => {
    batchCalls++;
    for (let i = 0; i < count; i++) results[i] = byFd.get(fds[i]!)!.sendDirect(data);
  };
  let flushed = 0;
  const scheduler = new WriteScheduler({ onFlushed: (f) => (flushed += f) }, opts.batch === false ? undefined : sendMany);
  const overflows: number[] = [];
  const writers = transports.map((t, i) => new ConnectionWriter(t, scheduler, opts.budget ?? 1 << 20, () => overflows.push(i)));
  /** A fan-out of one frame to every writer, as the hub runs it. */
  const fanout = (frame: Buffer): void => {
    const run = scheduler.beginFanout(writers.length);
    try {
      for (const w of writers) if (!run.batch?.add(w, frame)) w.enqueue(frame);
    } finally {
      scheduler.endFanout(run);
    }
  };
  return { transports, writers, scheduler, fanout, overflows, batchCalls: () => batchCalls, flushed: () => flushed };
}

const frame = (text: string): Buffer => encodeTextFrame(text);
const endOfTick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('write path: frames to one socket stay in order', () => {
  it('across batched, direct and queued writes in one tick and the next', async () => {
    const { transports, writers, fanout, batchCalls } = setup(40);
    fanout(frame('m1')); // batched (two chunks)
    writers[3]!.enqueue(frame('reply-3')); // this tick's direct write is taken: queued
    fanout(frame('m2')); // queued behind for everyone
    await endOfTick();
    writers[3]!.enqueue(frame('reply-3b')); // a new tick: direct
    fanout(frame('m3')); // 3 queues behind its direct write, the others batch
    await endOfTick();
    expect(batchCalls()).toBeGreaterThanOrEqual(4);
    for (const [i, t] of transports.entries()) {
      expect(t.received()).toEqual(i === 3 ? ['m1', 'reply-3', 'm2', 'reply-3b', 'm3'] : ['m1', 'm2', 'm3']);
    }
  });

  it('a socket that turns slow in the middle of a batch: the rest of a partial send goes before anything later', async () => {
    const { transports, writers, fanout } = setup(40);
    const payload = 'x'.repeat(1000);
    fanout(frame(`a ${payload}`));
    await endOfTick();
    // Socket 5 takes 100 bytes of the next frame, socket 6 none (EAGAIN); both in the first chunk.
    transports[5]!.kernelRoom = 100;
    transports[6]!.kernelRoom = 0;
    fanout(frame(`b ${payload}`));
    writers[5]!.enqueue(frame('reply-5'));
    fanout(frame(`c ${payload}`));
    await endOfTick();
    fanout(frame(`d ${payload}`)); // a new tick: 5 and 6 still hold bytes, so they queue
    await endOfTick();
    expect(writers[5]!.backlogBytes).toBeGreaterThan(0);
    transports[5]!.drain();
    transports[6]!.drain();
    fanout(frame(`e ${payload}`));
    await endOfTick();
    const head = (texts: string[]) => texts.map((t) => t.split(' ')[0]);
    expect(head(transports[5]!.received())).toEqual(['a', 'b', 'reply-5', 'c', 'd', 'e']);
    expect(head(transports[6]!.received())).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const [i, t] of transports.entries()) if (i !== 5 && i !== 6) expect(head(t.received())).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('a frame offered to a connection whose batched frame has not been sent yet queues behind it', async () => {
    const { transports, writers, scheduler } = setup(2);
    const run = scheduler.beginFanout(2);
    try {
      expect(run.batch!.add(writers[0]!, frame('m1'))).toBe(true); // claimed; the chunk is not full, so not sent yet
      // e.g. an at-least-once retransmission reaching the same connection inside the loop
      expect(scheduler.offer(writers[0]!, frame('other'))).toBe(true);
    } finally {
      scheduler.endFanout(run);
    }
    await endOfTick();
    expect(transports[0]!.received()).toEqual(['m1', 'other']);
  });

  it('held: fan-out frames wait for the release and leave in one write; other frames leave at the end of their tick', async () => {
    const { transports, writers, scheduler, fanout } = setup(3);
    scheduler.hold();
    fanout(frame('m1'));
    fanout(frame('m2'));
    await endOfTick();
    expect(transports[0]!.writes).toHaveLength(0);
    const bystander = new DirectTransport(999);
    const other = new ConnectionWriter(bystander, scheduler, 1 << 20, () => undefined);
    other.enqueue(frame('pong'));
    await endOfTick();
    expect(bystander.received()).toEqual(['pong']);
    writers[1]!.enqueue(frame('reply-1'));
    scheduler.release();
    for (const [i, t] of transports.entries()) {
      expect(t.writes).toHaveLength(1);
      expect(t.received()).toEqual(i === 1 ? ['m1', 'm2', 'reply-1'] : ['m1', 'm2']);
    }
  });

  it('without a native batch send, the same order through direct and queued writes', async () => {
    const { transports, writers, fanout } = setup(5, { batch: false });
    fanout(frame('m1'));
    writers[0]!.enqueue(frame('r'));
    fanout(frame('m2'));
    await endOfTick();
    expect(transports[0]!.received()).toEqual(['m1', 'r', 'm2']);
    expect(transports[4]!.received()).toEqual(['m1', 'm2']);
  });
});

describe('write path: the byte budget', () => {
  it('a connection that stops reading is reported once its backlog would pass the budget, and a close drops its queue', async () => {
    const { transports, writers, fanout, overflows } = setup(2, { budget: 8 * 1024 });
    transports[0]!.kernelRoom = 0;
    const big = frame('y'.repeat(1000));
    for (let i = 0; i < 20 && overflows.length === 0; i++) {
      fanout(big);
      await endOfTick();
    }
    expect(overflows).toEqual([0]);
    expect(writers[0]!.backlogBytes).toBeLessThanOrEqual(8 * 1024);
    expect(writers[0]!.enqueue(big) || overflows.length > 1).toBe(true);
    writers[0]!.close(false);
    expect(writers[0]!.enqueue(big)).toBe(false);
    // The reader was never held back.
    expect(transports[1]!.received().length).toBeGreaterThanOrEqual(8);
  });

  it('a recovery reply may stretch the budget up to twice, not further', () => {
    const { transports, writers, overflows } = setup(1, { budget: 4096 });
    transports[0]!.kernelRoom = 0;
    const w = writers[0]!;
    expect(w.enqueue(frame('z'.repeat(3000)))).toBe(true);
    expect(w.replayRoomBytes).toBeLessThan(2 * 4096);
    expect(w.enqueue(frame('r'.repeat(4000)), true)).toBe(true);
    expect(overflows).toEqual([]);
    expect(w.enqueue(frame('q'.repeat(2000)))).toBe(false);
    expect(overflows).toEqual([0]);
  });
});
