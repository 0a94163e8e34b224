/**
 * Client SDK pieces without sockets: backoff policies, option validation, dedup LRU, outbox
 * bounds and persistence, frame decoding, and how a subscription merges recovered and live
 * messages at the reconnect seam.
 */
import { describe, expect, it } from 'vitest';
import { createBackoff } from '../src/backoff.js';
import { decodeServerFrame } from '../src/codec.js';
import { SeenMessages } from '../src/dedup.js';
import { Emitter, THREW } from '../src/events.js';
import { HeraldClient, HeraldError } from '../src/index.js';
import { Outbox } from '../src/outbox.js';
import type { OutboxEntry, OutboxStorage } from '../src/outbox.js';
import { Subscription } from '../src/subscription.js';
import type { MessageFrame } from '@herald/protocol';

class FakeWs {
  readyState = 0;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  send(): void {}
  close(): void {}
}

function entry(msgId: string): OutboxEntry {
  return { msgId, channel: 'chat:1', eventType: 'x', payload: { msgId }, createdAt: 1 };
}

function memoryStorage(): OutboxStorage & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

function msg(offset: number, epoch = 'e1'): MessageFrame {
  return {
    type: 'message',
    target: 'channel',
    channel: 'c',
    offset,
    epoch,
    message: { msgId: `m${epoch}${offset}`, timestamp: 0, source: 's', eventType: 'x', version: '1.0', payload: offset },
  };
}

describe('backoff', () => {
  it('exponential with full jitter stays within [0, min(maxDelay, initial * 2^(n-1)))', () => {
    const p = createBackoff({ strategy: 'exponential' }, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => p.delay(n))).toEqual([499, 999, 1999, 3999, 7999, 15999, 19999, 19999]);
    const zero = createBackoff({ strategy: 'exponential' }, () => 0);
    expect(zero.delay(6)).toBe(0);
    const rand = createBackoff({ strategy: 'exponential', initialDelay: 100, maxDelay: 1000 });
    for (let n = 1; n < 50; n++) {
      const d = rand.delay(n)!;
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(1000, 100 * 2 ** (n - 1)));
    }
  });

  it('exponential without jitter returns the ceiling; every strategy honours maxAttempts', () => {
    const p = createBackoff({ strategy: 'exponential', jitter: 'none', initialDelay: 10, maxDelay: 35, maxAttempts: 4 });
    expect([1, 2, 3, 4, 5].map((n) => p.delay(n))).toEqual([10, 20, 35, 35, null]);
    const fixed = createBackoff({ strategy: 'fixed', delay: 250, maxAttempts: 2 });
    expect([1, 2, 3].map((n) => fixed.delay(n))).toEqual([250, 250, null]);
    const now = createBackoff({ strategy: 'immediate' });
    expect(now.delay(1)).toBe(0);
    expect(now.delay(10)).toBe(0);
    expect(now.delay(11)).toBeNull();
    expect(createBackoff({ strategy: 'fixed' }).delay(1e6)).toBe(1000);
  });

  it('rejects bad reconnect options naming the option', () => {
    expect(() => createBackoff({ strategy: 'exponential', initialDelay: -1 })).toThrow(/reconnect\.initialDelay/);
    expect(() => createBackoff({ strategy: 'exponential', initialDelay: 1000, maxDelay: 10 })).toThrow(/reconnect\.maxDelay/);
    expect(() => createBackoff({ strategy: 'fixed', maxAttempts: 1.5 })).toThrow(/reconnect\.maxAttempts/);
    expect(() => createBackoff({ strategy: 'sometimes' } as never)).toThrow(/reconnect\.strategy/);
    expect(() => createBackoff({ strategy: 'fixed', dealy: 5 } as never)).toThrow(/reconnect\.dealy/);
  });
});

describe('options', () => {
  const WebSocket = FakeWs as never;
  const bad = (opts: object, name: RegExp): void => {
    let err: unknown;
    try {
      new HeraldClient({ url: 'ws://x/ws', WebSocket, ...opts });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as HeraldError).code).toBe('invalid_option');
    expect((err as HeraldError).message).toMatch(name);
  };

  it('names the bad option at construction', () => {
    bad({ url: 'http://x' }, /"url"/);
    bad({ connectTimeout: 0 }, /"connectTimeout"/);
    bad({ requestTimeout: 'soon' }, /"requestTimeout"/);
    bad({ ackMode: 'sometimes' }, /"ackMode"/);
    bad({ dedupSize: -1 }, /"dedupSize"/);
    bad({ outbox: { maxSize: 0 } }, /"outbox\.maxSize"/);
    bad({ outbox: { persist: 'localStorage' } }, /"outbox\.persist"/);
    bad({ outbox: { persist: {} } }, /"outbox\.persist"/);
    bad({ reconnect: { strategy: 'fixed', delay: -5 } }, /"reconnect\.delay"/);
    bad({ getToken: 'abc' }, /"getToken"/);
    bad({ tokn: 'abc' }, /"tokn"/);
    bad({ WebSocket: 42 }, /"WebSocket"/);
  });

  it('freezes resolved options with defaults', () => {
    const c = new HeraldClient({ url: 'ws://x/ws', WebSocket });
    expect(Object.isFrozen(c.options)).toBe(true);
    expect(c.options.backoff?.strategy).toBe('exponential');
    expect(c.options.backoff?.maxDelay).toBe(20_000);
    expect(c.options.ackMode).toBe('auto');
    expect(c.state).toEqual({ status: 'idle' });
    c.close();
    expect(c.state).toEqual({ status: 'closed' });
    expect(() => c.subscribe('a')).toThrow(/closed/);
  });
});

describe('dedup LRU', () => {
  it('remembers at most capacity msgIds, forgetting the least recently seen', () => {
    const seen = new SeenMessages(3);
    seen.set('a', 'acked');
    seen.set('b', 'acked');
    seen.set('c', 'handling');
    expect(seen.get('a')).toBe('acked'); // touch a: b is now the oldest
    seen.set('d', 'acked');
    expect(seen.size).toBe(3);
    expect(seen.get('b')).toBeUndefined();
    expect(seen.get('a')).toBe('acked');
    expect(seen.get('c')).toBe('handling');
    seen.delete('c');
    expect(seen.get('c')).toBeUndefined();
  });
});

describe('outbox', () => {
  it('keeps insertion order, ignores a repeated msgId and rejects beyond maxSize with outbox_full', () => {
    const box = new Outbox({ maxSize: 2, storageKey: 'k' });
    box.add(entry('a'));
    box.add(entry('b'));
    box.add(entry('a'));
    expect(box.entries().map((e) => e.msgId)).toEqual(['a', 'b']);
    expect(() => box.add(entry('c'))).toThrow(expect.objectContaining({ code: 'outbox_full', temporary: true }));
    expect(box.remove('a')).toBe(true);
    expect(box.remove('a')).toBe(false);
    box.add(entry('c'));
    expect(box.entries().map((e) => e.msgId)).toEqual(['b', 'c']);
  });

  it('persists through a storage and reloads in order; corrupt data is reported, not thrown', () => {
    const storage = memoryStorage();
    const first = new Outbox({ maxSize: 10, storage, storageKey: 'k' });
    first.add(entry('a'));
    first.add(entry('b'));
    const second = new Outbox({ maxSize: 10, storage, storageKey: 'k' });
    expect(second.entries().map((e) => e.msgId)).toEqual(['a', 'b']);
    second.remove('a');
    second.remove('b');
    expect(storage.data.has('k')).toBe(false);

    storage.data.set('k', '{not json');
    const errors: HeraldError[] = [];
    const third = new Outbox({ maxSize: 10, storage, storageKey: 'k', onError: (e) => errors.push(e) });
    expect(third.size).toBe(0);
    expect(errors[0]?.code).toBe('storage_failed');
  });

  it('client.publish rejects with outbox_full when the outbox is at its bound', async () => {
    const c = new HeraldClient({ url: 'ws://x/ws', WebSocket: FakeWs as never, outbox: { maxSize: 2 } });
    const p1 = c.publish('chat:1', 'x', 1);
    const p2 = c.publish('chat:1', 'x', 2);
    await expect(c.publish('chat:1', 'x', 3)).rejects.toMatchObject({ name: 'HeraldError', code: 'outbox_full' });
    expect(c.outboxSize).toBe(2);
    c.close();
    await expect(p1).rejects.toMatchObject({ code: 'client_closed' });
    await expect(p2).rejects.toMatchObject({ code: 'client_closed' });
  });
});

describe('frame decoding', () => {
  it('accepts valid frames and fills implicit fields of recovered publications', () => {
    const f = decodeServerFrame(JSON.stringify({ type: 'subscribed', id: 2, channel: 'c', position: { offset: 3, epoch: 'e' }, recovered: true, publications: [{ offset: 3, epoch: 'e', message: { msgId: 'm', eventType: 'x' } }] }));
    expect(f.type === 'subscribed' && f.publications?.[0]).toMatchObject({ type: 'message', target: 'channel', channel: 'c', offset: 3 });
  });

  it('throws only HeraldErrors with protocol codes for malformed input', () => {
    const code = (data: unknown): string => {
      try {
        decodeServerFrame(data);
        return 'ok';
      } catch (err) {
        expect(err).toBeInstanceOf(HeraldError);
        return (err as HeraldError).code;
      }
    };
    expect(code('{')).toBe('invalid_json');
    expect(code('[1]')).toBe('invalid_frame');
    expect(code(new Uint8Array(2))).toBe('invalid_frame');
    expect(code('{"type":"nope"}')).toBe('unknown_frame_type');
    expect(code('{"type":"message","target":"channel","message":{"msgId":"m","eventType":"x"}}')).toBe('invalid_frame');
    expect(code('{"type":"message","target":"moon","message":{"msgId":"m","eventType":"x"}}')).toBe('invalid_frame');
    expect(code('{"type":"connected","id":1}')).toBe('invalid_frame');
    expect(code('{"type":"error","error":{"code":1}}')).toBe('invalid_frame');
    expect(code('{"type":"ping"}')).toBe('ok');
  });
});

describe('subscription seam', () => {
  const host = { unsubscribe: async () => {}, reportError: () => {}, presence: async () => ({ members: [] }), presenceStats: async () => ({ connections: 0, users: 0 }) };
  const sub = (): Subscription => new Subscription('c', host);
  const offsets = (frames: MessageFrame[]): number[] => frames.map((f) => f.offset!);

  it('delivers recovered then buffered live messages once each, in order', () => {
    const s = sub();
    s.beginSubscribe();
    s.confirm({ type: 'subscribed', id: 1, channel: 'c', position: { offset: 2, epoch: 'e1' } });
    expect([s.accept(msg(3)), s.accept(msg(4)), s.accept(msg(4))]).toEqual([true, true, false]);
    s.suspend(); // connection lost after offset 4
    expect(s.beginSubscribe()).toEqual({ offset: 4, epoch: 'e1' });
    // Live messages racing the reply, overlapping the recovered ones.
    expect(s.accept(msg(7))).toBe(false);
    expect(s.accept(msg(8))).toBe(false);
    const { info, deliver } = s.confirm({
      type: 'subscribed',
      id: 2,
      channel: 'c',
      position: { offset: 7, epoch: 'e1' },
      recovered: true,
      publications: [msg(4), msg(5), msg(6), msg(7)],
    });
    expect(info.recovered).toBe(true);
    expect(offsets(deliver)).toEqual([5, 6, 7, 8]);
    expect(s.position).toEqual({ offset: 8, epoch: 'e1' });
    expect(s.accept(msg(8))).toBe(false);
    expect(s.accept(msg(9))).toBe(true);
  });

  it('after a failed recovery continues from the server position in the new epoch', () => {
    const s = new Subscription('c', host, { offset: 10, epoch: 'old' });
    expect(s.beginSubscribe()).toEqual({ offset: 10, epoch: 'old' });
    const { info, deliver } = s.confirm({ type: 'subscribed', id: 1, channel: 'c', position: { offset: 3, epoch: 'new' }, recovered: false, publications: [] });
    expect(info).toMatchObject({ recovered: false, position: { offset: 3, epoch: 'new' } });
    expect(deliver).toEqual([]);
    expect(s.accept(msg(4, 'new'))).toBe(true);
  });
});

describe('emitter', () => {
  it('returns a disposer, isolates throwing listeners and reports them', () => {
    const reported: unknown[] = [];
    const e = new Emitter<{ x: [number] }>((err) => reported.push(err));
    const got: number[] = [];
    const off = e.on('x', (n) => got.push(n));
    e.on('x', () => {
      throw new Error('boom');
    });
    const results = e.emit('x', 1);
    expect(results).toContain(THREW);
    off();
    off();
    e.emit('x', 2);
    expect(got).toEqual([1]);
    expect(reported).toHaveLength(2);
  });
});
