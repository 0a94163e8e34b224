/**
 * The loadgen's raw-frame scanning (packages/bench/src/loadgen/frame-scan.ts) on frames Herald really writes:
 * a HeraldNode with fake transports publishes the benchmark's payload `{seq, sentAt}` in both
 * delivery modes, and the scanner must read seq, sentAt and (at-least-once) the msgId to ACK
 * without JSON.parse, and agree with JSON.parse on every frame.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ackFrame, ackMsgId, findSentAt, findSeq, readNumber } from '../src/loadgen/frame-scan.js';
import { resolveConfig } from 'herald/internal/config.js';
import { HeraldNode } from 'herald/internal/node.js';
import { FakeTransport } from '../../server/test/helpers/fake-transport.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
let node: HeraldNode | undefined;

afterEach(async () => {
  await node?.close();
  node = undefined;
});

/** Payloads of Herald frames (the bytes the loadgen's frame parser hands on) for `publishes`. */
async function heraldFrames(publishes: Array<Record<string, unknown>>, channels = ['bench']): Promise<Buffer[]> {
  node = new HeraldNode(resolveConfig({ log: { level: 'silent' }, engine: { type: 'memory' } }), pino({ level: 'silent' }));
  await node.start();
  const t = new FakeTransport();
  const s = node.attach(t);
  s.authenticate({ ...node.anonymousIdentity(), user: 'u1' });
  void node.activate(s);
  for (const c of channels) node.hub.subscribe(s, c, false);
  for (const p of publishes) await node.publish({ eventType: 'bench', ...p } as Parameters<HeraldNode['publish']>[0]);
  await tick();
  return t.texts().map((text) => Buffer.from(text, 'utf8'));
}

describe('frame-scan on Herald frames', () => {
  it('reads seq and sentAt of at-most-once deliveries, which carry nothing to ACK', async () => {
    const sentAt = 1_764_180_000_123.456;
    const frames = await heraldFrames([1, 2, 3].map((seq) => ({ channel: 'bench', payload: { seq, sentAt: sentAt + seq } })));
    expect(frames).toHaveLength(3);
    frames.forEach((data, i) => {
      const parsed = JSON.parse(data.toString()) as { ack?: boolean; message: { payload: { seq: number; sentAt: number } } };
      expect(parsed.ack).toBeUndefined();
      const seqAt = findSeq(data);
      expect(seqAt).toBeGreaterThan(0);
      expect(readNumber(data, seqAt)).toBe(i + 1);
      expect(readNumber(data, findSentAt(data, seqAt))).toBeCloseTo(parsed.message.payload.sentAt, 3);
      expect(ackMsgId(data)).toBeUndefined();
    });
  });

  it('finds the msgId of at-least-once deliveries ("ack":true) and builds the ack frame Herald expects', async () => {
    const frames = await heraldFrames([
      { channel: 'bench', delivery: 'at-least-once', payload: { seq: 1, sentAt: 1 } },
      { channel: 'bench', delivery: 'at-least-once', msgId: 'my-id-2', payload: { seq: 2, sentAt: 2 } },
    ]);
    expect(frames).toHaveLength(2);
    const ids = frames.map((data) => {
      const parsed = JSON.parse(data.toString()) as { ack?: boolean; message: { msgId: string } };
      expect(parsed.ack).toBe(true);
      const id = ackMsgId(data);
      expect(id).toBe(parsed.message.msgId);
      return id!;
    });
    expect(ids[1]).toBe('my-id-2');
    expect(JSON.parse(ackFrame(ids))).toEqual({ type: 'ack', msgIds: ids });
  });

  it('reads every message of a batch publish to several channels', async () => {
    const channels = Array.from({ length: 10 }, (_, c) => `bench-${c}`);
    const frames = await heraldFrames(
      channels.map((channel, c) => ({ channel, delivery: 'at-least-once', payload: { seq: c + 1, sentAt: 5 } })),
      channels,
    );
    expect(frames.map((data) => readNumber(data, findSeq(data)))).toEqual([...Array(10).keys()].map((c) => c + 1));
    expect(new Set(frames.map((data) => ackMsgId(data))).size).toBe(10);
  });
});

describe('frame-scan edge cases', () => {
  it('reads numbers in place and rejects non-numbers', () => {
    const data = Buffer.from('{"seq":42,"sentAt":1700000000000.25,"x":-1,"y":"a"}');
    expect(readNumber(data, findSeq(data))).toBe(42);
    expect(readNumber(data, findSentAt(data))).toBe(1_700_000_000_000.25);
    expect(readNumber(data, data.indexOf('-1'))).toBeNaN();
    expect(readNumber(data, data.indexOf('"a"'))).toBeNaN();
    expect(findSeq(Buffer.from('{"type":"pong"}'))).toBe(-1);
  });

  it('finds sentAt before seq (payload keys in either order)', () => {
    const data = Buffer.from('{"payload":{"sentAt":7,"seq":3}}');
    const seqAt = findSeq(data);
    expect(readNumber(data, findSentAt(data, seqAt))).toBe(7);
  });

  it('decodes an escaped msgId and ignores frames without the flag or without an id', () => {
    const escaped = Buffer.from('{"type":"message","ack":true,"message":{"msgId":"a\\"b","payload":{"seq":1}}}');
    expect(ackMsgId(escaped)).toBe('a"b');
    expect(ackMsgId(Buffer.from('{"type":"message","ack":false,"message":{"msgId":"x"}}'))).toBeUndefined();
    expect(ackMsgId(Buffer.from('{"type":"message","ack":true,"message":{}}'))).toBeUndefined();
    expect(ackMsgId(Buffer.from('{"type":"message","ack":true,"message":{"msgId":"unterminated'))).toBeUndefined();
    expect(ackFrame(['a"b'])).toBe('{"type":"ack","msgIds":["a\\"b"]}');
  });
});
