/**
 * Three Herald nodes in one process sharing one Redis (one key prefix per run): publications,
 * user messages, broadcasts, presence and recovery cross nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { api, isMarker, messagesBesideMarkers, publishMarker, startTestServer, TestSocket, untilUserReachable, type Frame } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const prefix = uniquePrefix('herald-cluster-');

/**
 * Connects and waits until `via` lists the user's `devices` connections (the node has registered
 * this one in presence) and a user message published on `via` reaches it (its user topic
 * subscription, made after `connected`, is in place). The probes are markers: `realMessage`.
 */
async function connectUser(node: HeraldServer, via: HeraldServer, sub: string, devices: number): Promise<TestSocket> {
  const s = await TestSocket.connect(node, { sub });
  await waitFor(
    async () => ((await api(via, 'GET', `/api/v1/users/${encodeURIComponent(sub)}/connections`)).body.connections ?? []).length >= devices,
    3000,
    `${devices} connections of ${sub} in presence`,
    20,
  );
  await untilUserReachable(via, s, sub);
  return s;
}

/** A message frame under test, not a probe or marker. */
const realMessage = (f: Frame): boolean => f.type === 'message' && !isMarker(f);

describe.skipIf(!redisUp)('cluster over Redis (three nodes)', () => {
  let a: HeraldServer;
  let b: HeraldServer;
  let c: HeraldServer;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    const engine = { type: 'redis', redis: { url: REDIS_URL, prefix, presenceTtlMs: 3000 } };
    // Short ACK timeouts so the at-least-once test sees a retransmission within a second.
    const delivery = { ackTimeoutMs: 300, retry: { initialDelayMs: 100 } };
    [a, b, c] = (await Promise.all(['node-a', 'node-b', 'node-c'].map((nodeName) => startTestServer({ server: { nodeName }, engine, delivery })))) as [HeraldServer, HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all([a, b, c].map((n) => n?.close()));
    await dropRedisKeys(prefix);
  });

  const track = (s: TestSocket) => (sockets.push(s), s);

  it('recognises a retried publish on another node as a duplicate (shared idempotency window)', async () => {
    const reader = track(await TestSocket.connect(c, { sub: 'idem-reader' }));
    await reader.subscribe('idem:cluster');
    const body = { channel: 'idem:cluster', eventType: 'x', payload: 1, msgId: `${prefix}-retry-1` };
    const first = await api(a, 'POST', '/api/v1/publish', body);
    const retry = await api(b, 'POST', '/api/v1/publish', body);
    expect(first.body.duplicate).toBeUndefined();
    expect(retry.body).toMatchObject({ duplicate: true, position: first.body.position });
    await publishMarker(b, reader, { channel: 'idem:cluster' });
    expect(messagesBesideMarkers(reader)).toHaveLength(1);
  });

  it('at-least-once crosses nodes: a subscriber and a user on another node get ack:true, and are retransmitted until they ACK', async () => {
    const sub = track(await TestSocket.connect(b, { sub: 'ack-sub' }));
    await sub.subscribe('acks:cluster');
    const user = track(await connectUser(c, a, 'ack-user', 1));
    const onChannel = await a.publish({ channel: 'acks:cluster', eventType: 'n', payload: 'ch', delivery: 'at-least-once' });
    const toUser = await a.publish({ user: 'ack-user', eventType: 'n', payload: 'u', delivery: 'at-least-once' });
    const m1 = await sub.next((f) => f.type === 'message');
    expect(m1).toMatchObject({ ack: true, message: { msgId: onChannel.msgId } });
    const m2 = await user.next(realMessage);
    expect(m2).toMatchObject({ ack: true, message: { msgId: toUser.msgId } });
    // Not acknowledged: the node the subscriber is on sends it again.
    const again = await sub.next((f) => f.type === 'message', 5000);
    expect(again).toMatchObject({ message: { msgId: onChannel.msgId } });
    sub.send({ type: 'ack', msgIds: [onChannel.msgId] });
    user.send({ type: 'ack', msgIds: [toUser.msgId] });
    await waitFor(async () => (await a.node.inbox.size('ack-user')) === 0, 5000, "ack-user's inbox to empty", 20);
  });

  it('a publish on A reaches channel subscribers on B and C, with one offset and epoch', async () => {
    const onB = track(await TestSocket.connect(b, { sub: 'reader-b' }));
    const onC = track(await TestSocket.connect(c, { sub: 'reader-c' }));
    const onA = track(await TestSocket.connect(a, { sub: 'reader-a' }));
    await onB.subscribe('news:cluster');
    await onC.subscribe('news:cluster');
    await onA.subscribe('news:other');
    const res = await api(a, 'POST', '/api/v1/publish', { channel: 'news:cluster', eventType: 'news', payload: { n: 1 } });
    expect(res.status).toBe(200);
    for (const s of [onB, onC]) {
      const m = await s.next((f) => f.type === 'message');
      expect(m).toMatchObject({ target: 'channel', channel: 'news:cluster', offset: res.body.position.offset, epoch: res.body.position.epoch, message: { msgId: res.body.msgId, payload: { n: 1 } } });
    }
    // onA has no path from news:cluster to mark; a broadcast from the same publishing node stands in.
    await publishMarker(a, onA, { broadcast: true });
    expect(messagesBesideMarkers(onA)).toHaveLength(0);
  });

  it('keeps per-channel order across publishing nodes', async () => {
    const s = track(await TestSocket.connect(c, { sub: 'order' }));
    await s.subscribe('seq:cluster');
    const nodes = [a, b, c];
    for (let i = 0; i < 30; i++) await nodes[i % 3]!.publish({ channel: 'seq:cluster', eventType: 'n', payload: i });
    const msgs = await s.waitMessages(30);
    expect(msgs.map((m) => m.message.payload)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const offsets = msgs.map((m) => m.offset as number);
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  });

  it('a user with devices on A and C gets a user message published on B', async () => {
    const phone = track(await connectUser(a, b, 'alice', 1));
    const laptop = track(await connectUser(c, b, 'alice', 2));
    const bob = track(await connectUser(b, b, 'bob', 1));
    const res = await api(b, 'POST', '/api/v1/publish', { user: 'alice', eventType: 'notify', payload: { hi: 'alice' } });
    expect(res.status).toBe(200);
    for (const s of [phone, laptop]) expect(await s.next(realMessage)).toMatchObject({ target: 'user', message: { payload: { hi: 'alice' } } });
    await publishMarker(b, bob, { user: 'bob' });
    expect(messagesBesideMarkers(bob)).toHaveLength(0);
  });

  it('a broadcast reaches every connection on every node', async () => {
    const all = [a, b, c].map(async (n, i) => track(await TestSocket.connect(n, { sub: `bc-${i}` })));
    const socks = await Promise.all(all);
    await api(c, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'maintenance', payload: { at: 1 } });
    for (const s of socks) expect(await s.next((f) => f.type === 'message' && f.target === 'broadcast')).toMatchObject({ message: { payload: { at: 1 } } });
  });

  it('lists a user\'s devices on every node through presence', async () => {
    const d1 = track(await connectUser(a, b, 'carol', 1));
    const d2 = track(await connectUser(c, b, 'carol', 2));
    // B holds none of carol's connections, so it answers from presence.
    const res = await api(b, 'GET', '/api/v1/users/carol/connections');
    expect(res.status).toBe(200);
    const conns = res.body.connections as Array<{ connectionId: string; node: string; user: string }>;
    expect(conns.map((x) => x.connectionId).sort()).toEqual([d1.info.connectionId, d2.info.connectionId].sort());
    expect(conns.map((x) => x.node).sort()).toEqual(['node-a', 'node-c']);
    d1.close();
    await waitFor(async () => (await api(b, 'GET', '/api/v1/users/carol/connections')).body.connections.length === 1, 3000, "carol's closed device to leave presence", 20);
  });

  it('a client recovers on C what was published on A while it was away from B', async () => {
    const first = track(await TestSocket.connect(b, { sub: 'roamer' }));
    await first.subscribe('recover:cluster');
    const p1 = await a.publish({ channel: 'recover:cluster', eventType: 'n', payload: 1 });
    const m1 = await first.next((f) => f.type === 'message');
    expect(m1.offset).toBe(p1.position!.offset);
    first.close();
    await first.closed;
    for (let i = 2; i <= 4; i++) await a.publish({ channel: 'recover:cluster', eventType: 'n', payload: i });
    const again = track(await TestSocket.connect(c, { sub: 'roamer' }));
    const reply = await again.subscribe('recover:cluster', { offset: m1.offset, epoch: m1.epoch });
    expect(reply.recovered).toBe(true);
    expect(reply.publications.map((p: { message: { payload: number } }) => p.message.payload)).toEqual([2, 3, 4]);
  });
});

describe.skipIf(!redisUp)('start-up with engine.type redis', () => {
  it('fails with an error naming engine.redis.url when Redis is unreachable', async () => {
    await expect(startTestServer({ engine: { type: 'redis', redis: { url: 'redis://127.0.0.1:1', prefix } } })).rejects.toThrow(/engine\.redis\.url=redis:\/\/127\.0\.0\.1:1/);
  });
});
