import { describe, expect, it, vi } from 'vitest';
import { TimerWheel, type WheelEntry } from '../src/timer-wheel.js';
import { compareVersions, compileFilter, parseVersion } from '../src/tag-filter.js';

class Item implements WheelEntry {
  wheelSlot = -1;
  wheelRound = 0;
  constructor(readonly name: string) {}
}

describe('timer wheel', () => {
  it('fires items after their delay, in ticks, including delays longer than one turn', () => {
    const fired: string[] = [];
    const wheel = new TimerWheel<Item>(10, 8, (i) => fired.push(i.name));
    const a = new Item('a');
    const b = new Item('b');
    const c = new Item('c');
    wheel.schedule(a, 30); // 3 ticks
    wheel.schedule(b, 200); // 20 ticks: more than the 8 slots
    wheel.schedule(c, 1); // rounds up to one tick
    const at: Record<string, number> = {};
    for (let t = 1; t <= 25; t++) {
      wheel.tick();
      for (const n of fired.splice(0)) at[n] = t;
    }
    expect(at).toEqual({ c: 1, a: 3, b: 20 });
  });

  it('cancels and reschedules', () => {
    const fired: string[] = [];
    const wheel = new TimerWheel<Item>(10, 16, (i) => fired.push(i.name));
    const a = new Item('a');
    wheel.schedule(a, 50);
    wheel.cancel(a);
    const b = new Item('b');
    wheel.schedule(b, 20);
    wheel.schedule(b, 100); // moved
    for (let t = 0; t < 5; t++) wheel.tick();
    expect(fired).toEqual([]);
    for (let t = 0; t < 5; t++) wheel.tick();
    expect(fired).toEqual(['b']);
    expect(a.wheelSlot).toBe(-1);
  });
});

describe('timer wheel interval', () => {
  it('keeps no interval while empty: armed by the first schedule, disarmed at the first tick with nothing left', () => {
    const wheel = new TimerWheel<Item>(10, 8, () => undefined);
    wheel.start();
    expect(wheel.armed).toBe(false);
    const a = new Item('a');
    wheel.schedule(a, 20);
    expect(wheel.armed).toBe(true);
    expect(wheel.size).toBe(1);
    wheel.tick();
    wheel.tick(); // a fires
    expect(wheel.size).toBe(0);
    expect(wheel.armed).toBe(true);
    wheel.tick();
    expect(wheel.armed).toBe(false);
    wheel.schedule(a, 10);
    wheel.cancel(a);
    wheel.cancel(a); // twice: counted once
    expect(wheel.size).toBe(0);
    wheel.tick();
    expect(wheel.armed).toBe(false);
    wheel.stop();
    wheel.schedule(a, 10);
    expect(wheel.armed).toBe(false); // stopped wheels never arm
  });

  it('an item cancelled by an earlier callback of the same tick does not fire', () => {
    const fired: string[] = [];
    const a = new Item('a');
    const b = new Item('b');
    const wheel: TimerWheel<Item> = new TimerWheel<Item>(10, 8, (i) => {
      fired.push(i.name);
      wheel.cancel(i === a ? b : a);
    });
    wheel.schedule(a, 10);
    wheel.schedule(b, 10);
    wheel.tick();
    expect(fired).toHaveLength(1);
    expect(wheel.size).toBe(0);
  });

  it('fires on its own once started, and disarms its interval when it empties', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const fired: string[] = [];
      const wheel = new TimerWheel<Item>(5, 8, (i) => fired.push(i.name));
      wheel.start();
      expect(wheel.armed).toBe(false); // nothing scheduled: no interval
      wheel.schedule(new Item('x'), 10);
      expect(wheel.armed).toBe(true);
      vi.advanceTimersByTime(9);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual(['x']);
      vi.advanceTimersByTime(5); // the next tick finds it empty
      expect(wheel.armed).toBe(false);
      wheel.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('tag filter helpers', () => {
  it('compares dotted versions numerically, ignoring pre-release suffixes', () => {
    expect(compareVersions(parseVersion('2.10.0')!, parseVersion('2.9.9')!)).toBeGreaterThan(0);
    expect(compareVersions(parseVersion('v1.2')!, parseVersion('1.2.0')!)).toBe(0);
    expect(parseVersion('1.2.3-beta.1')).toEqual([1, 2, 3]);
    expect(parseVersion('latest')).toBeUndefined();
  });

  it('plans index lookups for equality and in, and scans for the rest', () => {
    expect(compileFilter({ tag: 'a', op: 'eq', value: 1 }).plan).toEqual([{ tag: 'a', value: '1' }]);
    expect(compileFilter({ or: [{ tag: 'a', op: 'eq', value: 'x' }, { tag: 'b', op: 'in', value: ['y', 'z'] }] }).plan).toHaveLength(3);
    expect(compileFilter({ or: [{ tag: 'a', op: 'eq', value: 'x' }, { tag: 'b', op: 'gt', value: 1 }] }).plan).toBeUndefined();
    expect(compileFilter({ not: { tag: 'a', op: 'eq', value: 'x' } }).plan).toBeUndefined();
  });

  it('refuses filters nested too deep or too large', () => {
    let deep: unknown = { tag: 'a', op: 'exists', value: true };
    for (let i = 0; i < 20; i++) deep = { not: deep };
    expect(() => compileFilter(deep)).toThrow(/nesting/);
    const wide = { or: Array.from({ length: 300 }, (_, i) => ({ tag: 't', op: 'eq', value: i })) };
    expect(() => compileFilter(wide)).toThrow(/terms/);
  });
});
