/**
 * Three Herald nodes in one process over one NATS server (one subject prefix and history stream
 * per run). With engine.type "nats", presence and inboxes are per node (memory).
 */
import { connect } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server/server.js';
import { NATS_URL, requireNats, uniquePrefix } from './engine/services.js';
import { api, sleep, startTestServer, TestSocket } from './helpers/server.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_cluster_');

describe.skipIf(!natsUp)('cluster over NATS (three nodes)', () => {
  let a: HeraldServer;
  let b: HeraldServer;
  let c: HeraldServer;
  const sockets: TestSocket[] = [];
  const track = (s: TestSocket) => (sockets.push(s), s);

  beforeAll(async () => {
    const engine = { type: 'nats', nats: { servers: [NATS_URL], prefix } };
    [a, b, c] = (await Promise.all(['node-a', 'node-b', 'node-c'].map((nodeName) => startTestServer({ server: { nodeName }, engine })))) as [HeraldServer, HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all([a, b, c].map((n) => n?.close()));
    const nc = await connect({ servers: NATS_URL });
    await (await nc.jetstreamManager()).streams.delete(`${prefix}_history`).catch(() => undefined);
    await nc.close();
  });

  it('a publish on A reaches channel subscribers on B and C; order holds across publishing nodes', async () => {
    const onB = track(await TestSocket.connect(b, { sub: 'reader-b' }));
    const onC = track(await TestSocket.connect(c, { sub: 'reader-c' }));
    await onB.subscribe('news:cluster');
    await onC.subscribe('news:cluster');
    const nodes = [a, b, c];
    const results = [];
    for (let i = 0; i < 15; i++) results.push(await nodes[i % 3]!.publish({ channel: 'news:cluster', eventType: 'n', payload: i }));
    for (const s of [onB, onC]) {
      const msgs = await s.waitMessages(15);
      expect(msgs.map((m) => m.message.payload)).toEqual(Array.from({ length: 15 }, (_, i) => i));
      expect(msgs.map((m) => m.offset)).toEqual(results.map((r) => r.position!.offset));
    }
  });

  it('user messages and broadcasts cross nodes', async () => {
    const phone = track(await TestSocket.connect(a, { sub: 'alice' }));
    const laptop = track(await TestSocket.connect(c, { sub: 'alice' }));
    const bob = track(await TestSocket.connect(b, { sub: 'bob' }));
    await sleep(100); // user subscriptions are made right after `connected`
    await api(b, 'POST', '/api/v1/publish', { user: 'alice', eventType: 'notify', payload: { hi: 1 } });
    for (const s of [phone, laptop]) expect(await s.next((f) => f.type === 'message')).toMatchObject({ target: 'user', message: { payload: { hi: 1 } } });
    await api(a, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'maintenance', payload: {} });
    for (const s of [phone, laptop, bob]) expect(await s.next((f) => f.type === 'message' && f.target === 'broadcast')).toBeDefined();
    expect(bob.messages()).toHaveLength(1);
  });

  it('a client recovers on C what was published on A while it was away from B', async () => {
    const first = track(await TestSocket.connect(b, { sub: 'roamer' }));
    await first.subscribe('recover:cluster');
    await a.publish({ channel: 'recover:cluster', eventType: 'n', payload: 1 });
    const m1 = await first.next((f) => f.type === 'message');
    first.close();
    await first.closed;
    for (let i = 2; i <= 4; i++) await a.publish({ channel: 'recover:cluster', eventType: 'n', payload: i });
    const again = track(await TestSocket.connect(c, { sub: 'roamer' }));
    const reply = await again.subscribe('recover:cluster', { offset: m1.offset, epoch: m1.epoch });
    expect(reply.recovered).toBe(true);
    expect(reply.publications.map((p: { message: { payload: number } }) => p.message.payload)).toEqual([2, 3, 4]);
  });

  it('fails start-up with an error naming engine.nats.servers when NATS is unreachable', async () => {
    await expect(startTestServer({ engine: { type: 'nats', nats: { servers: ['nats://127.0.0.1:1'], prefix } } })).rejects.toThrow(/engine\.nats\.servers=nats:\/\/127\.0\.0\.1:1/);
  });
});
