/**
 * Three Herald nodes in one process over one NATS server (one prefix, so one set of streams, per
 * run), plus a fourth as a child process for SIGKILL. Presence (KV) and inboxes (a stream) are in
 * JetStream, shared by every node.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, NATS_URL, requireNats, uniquePrefix } from './engine/services.js';
import { CLI, freePort, startCliNode } from './helpers/processes.js';
import { api, API_KEY, isMarker, makeToken, messagesBesideMarkers, publishMarker, SECRET, startTestServer, TestSocket, untilUserReachable, type Frame } from './helpers/server.js';
import { pause, waitFor } from './helpers/wait.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_cluster_');
const PRESENCE_TTL_MS = 1000;
const engine = { type: 'nats', nats: { servers: [NATS_URL], prefix, presenceTtlMs: PRESENCE_TTL_MS } };
// Short ACK timeouts so the at-least-once test sees a retransmission within a second.
const delivery = { ackTimeoutMs: 300, retry: { initialDelayMs: 100 } };
const startNodes = (): Promise<HeraldServer[]> => Promise.all(['node-a', 'node-b', 'node-c'].map((nodeName) => startTestServer({ server: { nodeName }, engine, delivery })));

/** Polls `read` until `done` holds for its value, and returns that value; throws after `ms`. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 10_000): Promise<T> {
  let v: T | undefined;
  await waitFor(async () => done((v = await read())), ms, 'the polled value to be as expected', 50);
  return v as T;
}

/** A message frame under test, not a probe or marker. */
const realMessage = (f: Frame): boolean => f.type === 'message' && !isMarker(f);

type Listed = Array<{ connectionId: string; node: string; user: string }>;
const connectionsOf = async (server: HeraldServer, user: string): Promise<Listed> => {
  const res = await api(server, 'GET', `/api/v1/users/${encodeURIComponent(user)}/connections`);
  expect(res.status).toBe(200);
  return res.body.connections as Listed;
};
const nodesOf = (list: Listed) => list.map((c) => c.node).sort();
const ack = (s: TestSocket, ...msgIds: string[]) => s.send({ type: 'ack', msgIds });

describe.skipIf(!natsUp)('cluster over NATS (three nodes)', () => {
  let a: HeraldServer;
  let b: HeraldServer;
  let c: HeraldServer;
  const sockets: TestSocket[] = [];
  const track = (s: TestSocket) => (sockets.push(s), s);

  const children: ChildProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    [a, b, c] = (await startNodes()) as [HeraldServer, HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await Promise.all([a, b, c].map((n) => n?.close()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await dropNatsStreams(prefix);
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

  it('concurrent publishes to one channel on three nodes reach every subscriber in offset order', async () => {
    const readers = [track(await TestSocket.connect(a, { sub: 'seq-a' })), track(await TestSocket.connect(b, { sub: 'seq-b' })), track(await TestSocket.connect(c, { sub: 'seq-c' }))];
    for (const r of readers) await r.subscribe('seq:cluster');
    const nodes = [a, b, c];
    // Not awaited one by one: the nodes race for offsets, and their live dispatches race to NATS.
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => nodes[i % 3]!.publish({ channel: 'seq:cluster', eventType: 'n', payload: i })));
    const offsets = results.map((r) => r.position!.offset).sort((x, y) => x - y);
    for (const r of readers) {
      const msgs = await r.waitMessages(60, 10_000);
      expect(msgs.map((m) => m.offset)).toEqual(offsets);
    }
  });

  it('recognises a publish retried on another node as a duplicate (shared idempotency window)', async () => {
    const reader = track(await TestSocket.connect(c, { sub: 'idem-reader' }));
    await reader.subscribe('idem:cluster');
    const body = { channel: 'idem:cluster', eventType: 'x', payload: 1, msgId: `${prefix}-retry-1` };
    // JetStream checks the key (Nats-Msg-Id) in the publish itself, so a retry right after the
    // answer is already a duplicate.
    const first = await api(a, 'POST', '/api/v1/publish', body);
    const retry = await api(b, 'POST', '/api/v1/publish', body);
    expect(first.body.duplicate).toBeUndefined();
    expect(retry.body).toMatchObject({ duplicate: true, position: first.body.position });
    await publishMarker(b, reader, { channel: 'idem:cluster' });
    expect(messagesBesideMarkers(reader)).toHaveLength(1);
  });

  it('a live dispatch that overtakes its predecessor on the wire waits for it (the offset chain)', async () => {
    const reader = track(await TestSocket.connect(b, { sub: 'chain-reader' }));
    await reader.subscribe('chain:cluster');
    const first = await a.publish({ channel: 'chain:cluster', eventType: 'n', payload: 'real' });
    await reader.waitMessages(1);
    const { offset, epoch } = first.position!;
    // Two dispatches as a node would send them, written to the channel's live subject in the
    // wrong order, from a connection of their own (as another node's would be).
    const nc = await connect({ servers: NATS_URL });
    const subject = `${prefix}.ch.${Buffer.from('chain:cluster').toString('base64url')}`;
    const dispatch = (n: number) => JSON.stringify({ position: { offset: offset + n, epoch }, prev: offset + n - 1, target: { kind: 'channel', channel: 'chain:cluster' }, envelope: { msgId: `chain-${n}`, timestamp: Date.now(), source: 't', eventType: 'n', version: '1.0', payload: n } });
    nc.publish(subject, dispatch(2));
    await nc.flush();
    // Deliberate spacing of the test's own traffic: the overtaking dispatch reaches the node alone
    // and has to be held there before its predecessor exists at all.
    await pause(20);
    nc.publish(subject, dispatch(1));
    await nc.drain();
    const msgs = await reader.waitMessages(3);
    expect(msgs.map((m) => m.message.payload)).toEqual(['real', 1, 2]);
  });

  it('at-least-once crosses nodes: a subscriber and a user on another node get ack:true, and are retransmitted until they ACK', async () => {
    const sub = track(await TestSocket.connect(b, { sub: 'ack-sub' }));
    await sub.subscribe('acks:cluster');
    const user = track(await TestSocket.connect(c, { sub: 'ack-user' }));
    await until(() => connectionsOf(a, 'ack-user'), (l) => l.length === 1);
    await untilUserReachable(a, user, 'ack-user');
    const onChannel = await a.publish({ channel: 'acks:cluster', eventType: 'n', payload: 'ch', delivery: 'at-least-once' });
    const toUser = await a.publish({ user: 'ack-user', eventType: 'n', payload: 'u', delivery: 'at-least-once' });
    expect(await sub.next((f) => f.type === 'message')).toMatchObject({ ack: true, message: { msgId: onChannel.msgId } });
    expect(await user.next(realMessage)).toMatchObject({ ack: true, message: { msgId: toUser.msgId } });
    // Not acknowledged: the node the subscriber is on sends it again.
    expect(await sub.next((f) => f.type === 'message', 5000)).toMatchObject({ message: { msgId: onChannel.msgId } });
    ack(sub, onChannel.msgId);
    ack(user, toUser.msgId);
    expect(await until(() => a.node.inbox.size('ack-user'), (n) => n === 0)).toBe(0);
  });

  it('user messages and broadcasts cross nodes', async () => {
    const phone = track(await TestSocket.connect(a, { sub: 'alice' }));
    const laptop = track(await TestSocket.connect(c, { sub: 'alice' }));
    const bob = track(await TestSocket.connect(b, { sub: 'bob' }));
    await untilUserReachable(b, phone, 'alice');
    await untilUserReachable(b, laptop, 'alice');
    await untilUserReachable(b, bob, 'bob');
    await api(b, 'POST', '/api/v1/publish', { user: 'alice', eventType: 'notify', payload: { hi: 1 } });
    for (const s of [phone, laptop]) expect(await s.next(realMessage)).toMatchObject({ target: 'user', message: { payload: { hi: 1 } } });
    await api(a, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'maintenance', payload: {} });
    for (const s of [phone, laptop, bob]) expect(await s.next((f) => f.type === 'message' && f.target === 'broadcast')).toBeDefined();
    expect(messagesBesideMarkers(bob)).toHaveLength(1);
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

  it("lists a user's connections on every node from the HTTP API of any node", async () => {
    const phone = track(await TestSocket.connect(a, { sub: 'carol' }));
    track(await TestSocket.connect(c, { sub: 'carol' }));
    track(await TestSocket.connect(c, { sub: 'not-carol' }));
    for (const server of [a, b, c]) {
      const list = await until(() => connectionsOf(server, 'carol'), (l) => l.length === 2);
      expect(nodesOf(list)).toEqual(['node-a', 'node-c']);
      expect(list.every((x) => x.user === 'carol')).toBe(true);
      expect(new Set(list.map((x) => x.connectionId)).size).toBe(2);
    }
    phone.close();
    await phone.closed;
    // A disconnect removes the entry at once (not by expiry): node B, which never held carol, sees it.
    expect(nodesOf(await until(() => connectionsOf(b, 'carol'), (l) => l.length === 1))).toEqual(['node-c']);
  });

  it('an at-least-once message for an offline user waits in the shared inbox and is delivered on another node', async () => {
    const published = [];
    for (let i = 1; i <= 3; i++) published.push(await a.publish({ user: 'dora', eventType: 'n', payload: i, delivery: 'at-least-once' }));
    expect(await c.node.inbox.size('dora')).toBe(3);
    const laptop = track(await TestSocket.connect(c, { sub: 'dora' }));
    const got = await laptop.waitMessages(3);
    expect(got.map((m: Frame) => m.message.payload)).toEqual([1, 2, 3]);
    expect(got.every((m: Frame) => m.inbox === true && m.ack === true && m.target === 'user')).toBe(true);
    expect(got.map((m: Frame) => m.message.msgId)).toEqual(published.map((p) => p.msgId));
    // Acknowledged on C: gone for every node.
    ack(laptop, ...got.map((m: Frame) => m.message.msgId));
    expect(await until(() => b.node.inbox.size('dora'), (n) => n === 0)).toBe(0);
    laptop.close();
    await laptop.closed;
    const phone = track(await TestSocket.connect(b, { sub: 'dora' }));
    // The inbox is delivered at connect ahead of live at-least-once user messages, so an
    // at-least-once marker arrives after anything the inbox still held.
    await untilUserReachable(b, phone, 'dora');
    const { msgId: markerId } = await b.publish({ user: 'dora', eventType: 'marker', payload: null, delivery: 'at-least-once' });
    await phone.next((f) => f.type === 'message' && f.message?.msgId === markerId);
    ack(phone, markerId);
    expect(messagesBesideMarkers(phone)).toHaveLength(0);
  });

  it.skipIf(!existsSync(CLI))('a node killed with SIGKILL: its presence entries expire, the inbox it accepted into is delivered elsewhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-nats-kill-'));
    dirs.push(dir);
    const port = await freePort();
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({
      server: { host: '127.0.0.1', port, nodeName: 'node-doomed' },
      auth: { jwt: { hmacSecret: SECRET } },
      api: { keys: [API_KEY] },
      engine,
      log: { level: 'info' },
    }));
    const doomed = await startCliNode(file, children);
    const onDoomed = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
    sockets.push(onDoomed);
    expect((await onDoomed.request({ type: 'connect', token: await makeToken({ sub: 'erin' }) })).type).toBe('connected');
    track(await TestSocket.connect(b, { sub: 'erin' }));
    expect(nodesOf(await until(() => connectionsOf(a, 'erin'), (l) => l.length === 2))).toEqual(['node-b', 'node-doomed']);

    // The doomed node accepts an at-least-once message for an offline user, then dies at once.
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ user: 'frank', eventType: 'kept', payload: { n: 1 }, delivery: 'at-least-once' }),
    });
    expect(res.status).toBe(200);
    const { msgId } = (await res.json()) as { msgId: string };
    doomed.kill('SIGKILL');
    await new Promise((r) => doomed.once('exit', r));

    // Nobody removed the doomed node's entry: it leaves by expiry; node B's entry stays.
    const after = await until(() => connectionsOf(a, 'erin'), (l) => l.length === 1, PRESENCE_TTL_MS * 3 + 5000);
    expect(nodesOf(after)).toEqual(['node-b']);
    const frank = track(await TestSocket.connect(c, { sub: 'frank' }));
    expect(await frank.next((f) => f.type === 'message')).toMatchObject({ inbox: true, message: { msgId, payload: { n: 1 } } });
  });

  it('a restarted cluster still delivers what waited in the inbox', async () => {
    const { msgId } = await b.publish({ user: 'gus', eventType: 'durable', payload: 'still here', delivery: 'at-least-once' });
    for (const s of sockets.splice(0)) s.close();
    await Promise.all([a, b, c].map((n) => n.close()));
    [a, b, c] = (await startNodes()) as [HeraldServer, HeraldServer, HeraldServer];
    const gus = track(await TestSocket.connect(a, { sub: 'gus' }));
    expect(await gus.next((f) => f.type === 'message')).toMatchObject({ inbox: true, message: { msgId, payload: 'still here' } });
  });
});
