/** The recovery seam rule (src/engine/recovery-seam.ts) on its own. */
import { describe, expect, it } from 'vitest';
import { noStreamPosition } from '../src/engine/broker.js';
import { livePoint, seamVerdict, SubscriptionSeam } from '../src/engine/recovery-seam.js';

const E = 'e1';
const at = (offset: number, epoch = E) => ({ offset, epoch });

describe('seamVerdict', () => {
  it('drops what the reply covered, delivers T + 1, calls anything else above T a gap', () => {
    const top = at(10);
    expect(seamVerdict(top, at(3))).toBe('drop');
    expect(seamVerdict(top, at(10))).toBe('drop');
    expect(seamVerdict(top, at(11))).toBe('deliver');
    expect(seamVerdict(top, at(12))).toBe('gap');
  });

  it('with `prev` (non-contiguous offsets), the successor is the one whose prev is T', () => {
    const top = at(100);
    expect(seamVerdict(top, { ...at(100), prev: 90 })).toBe('drop');
    expect(seamVerdict(top, { ...at(140), prev: 100 })).toBe('deliver');
    expect(seamVerdict(top, { ...at(101), prev: 99 })).toBe('gap');
  });

  it('another stream follows on only from its first message (the old one was lost or forgotten)', () => {
    expect(seamVerdict(at(10), at(1, 'e2'))).toBe('deliver');
    expect(seamVerdict(at(10), at(11, 'e2'))).toBe('gap');
    expect(seamVerdict(at(10), at(2, 'e2'))).toBe('gap');
    expect(seamVerdict(at(10), { ...at(57, 'e2'), prev: 0 })).toBe('deliver');
    expect(seamVerdict(at(10), { ...at(57, 'e2'), prev: 40 })).toBe('gap');
  });

  it('after a reply that found no stream, the first stream to appear follows on from its first message', () => {
    const none = noStreamPosition();
    expect(seamVerdict(none, at(1, 'fresh'))).toBe('deliver');
    expect(seamVerdict(none, { ...at(7, 'fresh'), prev: 0 })).toBe('deliver');
    expect(seamVerdict(none, at(2, 'fresh'))).toBe('gap');
    // Offset 0 of a real stream (an empty NATS channel) is that stream's position like any other.
    expect(seamVerdict(at(0), { ...at(7), prev: 0 })).toBe('deliver');
    expect(seamVerdict(at(0), at(1))).toBe('deliver');
  });
});

describe('SubscriptionSeam', () => {
  it('holds until the reply, then delivers only what follows T, in order', () => {
    const seam = new SubscriptionSeam<string>();
    for (const o of [8, 9, 10]) expect(seam.offer(at(o), `m${o}`)).toBe('held');
    expect(seam.settle(at(9))).toEqual({ deliver: ['m10'], gap: false });
    expect(seam.crossed).toBe(true);
    expect(seam.offer(at(11), 'm11')).toBe('deliver');
  });

  it('after the reply, drops late live copies of what the reply carried, then takes T + 1 and turns off', () => {
    const seam = new SubscriptionSeam<string>();
    expect(seam.settle(at(20))).toEqual({ deliver: [], gap: false });
    expect(seam.crossed).toBe(false);
    expect(seam.offer(at(19), 'late')).toBe('drop');
    expect(seam.offer(at(20), 'late')).toBe('drop');
    expect(seam.offer(at(21), 'next')).toBe('deliver');
    expect(seam.crossed).toBe(true);
    // Past the seam the rule is off: the live stream's own order stands.
    expect(seam.offer(at(23), 'later')).toBe('deliver');
  });

  it('a held publication that skips T + 1 is a gap, and nothing after it is delivered', () => {
    const seam = new SubscriptionSeam<string>();
    seam.offer(at(5), 'm5');
    seam.offer(at(7), 'm7');
    seam.offer(at(8), 'm8');
    expect(seam.settle(at(5))).toEqual({ deliver: [], gap: true });
    expect(seam.crossed).toBe(false);
  });

  it('a live publication that skips T + 1 after the reply is a gap', () => {
    const seam = new SubscriptionSeam<string>();
    seam.settle(at(5));
    expect(seam.offer(at(7), 'm7')).toBe('gap');
  });

  it('a publication without a position is delivered as it comes (nothing to order it by)', () => {
    const seam = new SubscriptionSeam<string>();
    seam.settle(at(5));
    expect(seam.offer(undefined, 'x')).toBe('deliver');
    expect(seam.crossed).toBe(false);
  });

  it('livePoint carries prev only where the engine set it', () => {
    const envelope = { msgId: 'm', timestamp: 0, source: 's', eventType: 'e', version: '1', payload: null };
    expect(livePoint({ target: { kind: 'channel', channel: 'c' }, envelope, position: at(3) })).toEqual(at(3));
    expect(livePoint({ target: { kind: 'channel', channel: 'c' }, envelope, position: at(9), prev: 4 })).toEqual({ ...at(9), prev: 4 });
    expect(livePoint({ target: { kind: 'broadcast' }, envelope })).toBeUndefined();
  });
});
