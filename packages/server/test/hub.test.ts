import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { HeraldNode } from '../src/node.js';
import { encodeTextFrame } from '../src/transport/ws-frame.js';
import { decodeServerFrame, FakeTransport } from './helpers/fake-transport.js';

function makeNode(overrides: Record<string, unknown> = {}) {
  const config = resolveConfig({ log: { level: 'silent' }, ...overrides });
  return new HeraldNode(config, pino({ level: 'silent' }));
}

function connectFake(node: HeraldNode, user: string, channels: string[] = []) {
  const t = new FakeTransport();
  const s = node.attach(t);
  s.authenticate({ ...node.anonymousIdentity(), user });
  void node.activate(s);
  for (const c of channels) node.hub.subscribe(s, c, false);
  return { s, t };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('hub fan-out (fake transport)', () => {
  it('encodes a message once and writes the same bytes to every subscriber', async () => {
    const node = makeNode();
    await node.start();
    const peers = Array.from({ length: 5 }, (_, i) => connectFake(node, `u${i}`, ['room']));
    await node.publish({ channel: 'room', eventType: 'e', payload: { x: 1 } });
    await tick();
    const first = peers[0]!.t.writes[0]![0]!;
    for (const { t } of peers) {
      expect(t.writes).toHaveLength(1);
      expect(t.writes[0]![0]).toBe(first); // the very same Buffer object
    }
    expect(JSON.parse(decodeServerFrame(first))).toMatchObject({ type: 'message', channel: 'room', offset: 1 });
    await node.close();
  });

  it('writes a lone message at once, and coalesces the rest of the tick into one more write', async () => {
    const node = makeNode();
    await node.start();
    const { t } = connectFake(node, 'u', ['a', 'b']);
    await node.publish({ channel: 'a', eventType: 'e', payload: 'alone' });
    expect(t.writes).toHaveLength(1); // written synchronously, before the tick ends
    await tick();
    for (let i = 0; i < 5; i++) void node.publish({ channel: 'b', eventType: 'e', payload: i });
    await tick();
    // The first of the five leaves at once; the other four follow in one write.
    expect(t.writes.map((w) => w.length)).toEqual([1, 1, 4]);
    await node.close();
  });

  it('coalesces a held batch for one connection into one write', async () => {
    const node = makeNode();
    await node.start();
    const { t } = connectFake(node, 'u', ['a', 'b']);
    node.hub.writes.hold();
    await Promise.all(Array.from({ length: 10 }, (_, i) => node.publish({ channel: i % 2 ? 'a' : 'b', eventType: 'e', payload: i })));
    node.hub.writes.release();
    await tick();
    expect(t.writes).toHaveLength(1);
    expect(t.writes[0]).toHaveLength(10);
    expect(t.texts().map((x) => JSON.parse(x).message.payload)).toEqual([...Array(10).keys()]);
    await node.close();
  });

  it('closes a slow consumer with 4003 once its backlog passes the byte budget, without affecting others', async () => {
    const node = makeNode({ limits: { maxQueueBytes: 4096 } });
    await node.start();
    const slow = connectFake(node, 'slow', ['feed']);
    const fast = connectFake(node, 'fast', ['feed']);
    slow.t.stuck = true; // the kernel is not taking its bytes
    slow.t.bufferedAmount = 3500;
    for (let i = 0; i < 10; i++) await node.publish({ channel: 'feed', eventType: 'e', payload: 'x'.repeat(100) });
    await tick();
    expect(slow.t.closed?.code).toBe(4003);
    expect(fast.t.texts()).toHaveLength(10);
    expect(await node.metrics.registry.getSingleMetricAsString('herald_slow_consumer_closes_total')).toContain(' 1');
    await node.close();
  });

  it('frames text per RFC 6455 for short, medium and long payloads', () => {
    for (const n of [0, 125, 126, 65535, 65536, 70000]) {
      const text = 'a'.repeat(n);
      const f = encodeTextFrame(text);
      expect(f[0]).toBe(0x81);
      expect(decodeServerFrame(f)).toBe(text);
    }
  });
});
