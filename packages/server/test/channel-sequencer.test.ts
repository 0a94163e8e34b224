import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelSequencer } from '../src/engine/nats/channel-sequencer.js';

/** Delivered items, and a sequencer feeding them; items are their offsets. */
function setup(holdMs = 100, maxHeld = 1000) {
  const out: number[] = [];
  const seq = new ChannelSequencer<number>((n) => out.push(n), holdMs, maxHeld);
  const push = (offset: number, prev: number, channel = 'c', epoch = 'e1') => seq.push(channel, epoch, offset, prev, offset);
  return { out, seq, push };
}

afterEach(() => vi.useRealTimers());

describe('channel sequencer', () => {
  it('passes dispatches in order straight through, the first one without a predecessor', () => {
    const { out, seq, push } = setup();
    push(7, 5); // first seen: nothing to order against
    push(9, 7);
    push(12, 9);
    expect(out).toEqual([7, 9, 12]);
    expect(seq.waiting).toBe(0);
  });

  it('holds a dispatch that overtook its predecessor and releases the chain when it arrives', () => {
    const { out, seq, push } = setup();
    push(1, 0);
    push(4, 3); // 3 has not come yet
    push(5, 4);
    expect(out).toEqual([1]);
    expect(seq.waiting).toBe(2);
    push(3, 1);
    expect(out).toEqual([1, 3, 4, 5]);
    expect(seq.waiting).toBe(0);
  });

  it('lets held dispatches go in offset order when the predecessor never comes', () => {
    vi.useFakeTimers();
    const { out, seq, push } = setup(100);
    push(1, 0);
    push(6, 5);
    push(4, 3);
    vi.advanceTimersByTime(99);
    expect(out).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(out).toEqual([1, 4, 6]);
    // Late after all: passed on rather than lost; what follows 6 is in order again.
    push(3, 1);
    push(7, 6);
    expect(out).toEqual([1, 4, 6, 3, 7]);
    expect(seq.waiting).toBe(0);
  });

  it('bounds what waits per channel', () => {
    const { out, seq, push } = setup(100, 3);
    push(1, 0);
    for (const o of [10, 8, 6, 4]) push(o, o - 1);
    expect(out).toEqual([1, 4, 6, 8, 10]);
    expect(seq.waiting).toBe(0);
  });

  it('keeps channels apart, starts afresh on a new epoch, and flushes on forget and reset', () => {
    const { out, seq, push } = setup();
    push(1, 0, 'a');
    push(2, 0, 'b');
    push(5, 4, 'a'); // waits for 4 on a
    push(3, 2, 'b'); // in order on b
    expect(out).toEqual([1, 2, 3]);
    push(1, 0, 'a', 'e2'); // the stream was recreated: a new sequence; what waited goes first
    expect(out).toEqual([1, 2, 3, 5, 1]);
    push(9, 8, 'b');
    seq.forget('b');
    expect(out).toEqual([1, 2, 3, 5, 1, 9]);
    push(4, 3, 'a', 'e2');
    seq.reset();
    expect(out).toEqual([1, 2, 3, 5, 1, 9, 4]);
    expect(seq.waiting).toBe(0);
  });
});
