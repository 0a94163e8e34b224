/**
 * Issue 11 M1, M3 and "detailed receipts keep one record per recipient": who may acknowledge
 * what, and receipts that stay bounded and truthful. An ACK counts only when it settles a delivery
 * Herald made — in flight on that connection, or held in the user's inbox (a user message, or one
 * whose retries ran out) — on the WebSocket and on the poll route alike; anything else is ignored
 * without saying whether the msgId exists. Receipts count only deliveries of their own message
 * (not a client's message reusing its msgId) and keep at most `delivery.maxRecipientsPerReceipt`
 * entries per list.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { api, makeToken, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();

let server: HeraldServer;
afterEach(async () => server?.close());

const FAST_RETRY = {
  delivery: { ackTimeoutMs: 100, retry: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0 }, maxAttempts: 4 },
};

const ack = (s: TestSocket, ...msgIds: string[]) => s.send({ type: 'ack', msgIds });

/** Frames are handled in order: once the pong is back, every ACK sent before it was handled. */
async function handled(s: TestSocket): Promise<void> {
  s.send({ type: 'ping' });
  await s.next((f) => f.type === 'pong');
}

async function receipt(msgId: string, on: HeraldServer = server): Promise<Frame> {
  const res = await api(on, 'GET', `/api/v1/messages/${msgId}`);
  expect(res.status).toBe(200);
  return res.body;
}

async function pollAck(token: string, msgIds: string[]) {
  const res = await fetch(`${server.url}/poll/v1/inbox/ack`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ msgIds }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** Opens `n` anonymous connections, `width` at a time, hands each to `use`, then closes it. */
async function churn(n: number, width: number, use: (s: TestSocket) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const s = await TestSocket.connect(server, null);
      await use(s);
      s.close();
      await s.closed;
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

describe('who may acknowledge what (M1, M3)', () => {
  it("mallory's HTTP ack of bob's msgId changes nothing in bob's receipt or inbox, and is answered like an unknown id", async () => {
    server = await startTestServer(FAST_RETRY);
    const { msgId } = await server.publish({ user: 'bob', eventType: 'secret', payload: 1, delivery: 'at-least-once', receipts: true });
    const mallory = await makeToken({ sub: 'mallory' });
    const probe = await pollAck(mallory, [msgId]);
    const unknown = await pollAck(mallory, ['no-such-message']);
    expect(await server.node.inbox.size('bob')).toBe(1);
    expect(await receipt(msgId)).toMatchObject({ state: 'inbox', counts: { acknowledged: 0 }, acknowledgedBy: [], inbox: [{ user: 'bob' }] });
    expect((await receipt(msgId)).inbox[0].removedAt).toBeUndefined();
    expect(probe).toEqual({ status: 200, body: { removed: 0, refused: [msgId] } });
    expect(unknown).toEqual({ status: 200, body: { removed: 0, refused: ['no-such-message'] } });

    // Bob's own poll ACK takes it, and settles its delivery to bob's socket on this node.
    const phone = await TestSocket.connect(server, { sub: 'bob' });
    await phone.next((f) => f.type === 'message' && f.message.msgId === msgId);
    const own = await pollAck(await makeToken({ sub: 'bob' }), [msgId, msgId]);
    expect(own).toEqual({ status: 200, body: { removed: 1, refused: [] } });
    expect(await server.node.inbox.size('bob')).toBe(0);
    expect(await receipt(msgId)).toMatchObject({ state: 'acknowledged', counts: { acknowledged: 1 }, acknowledgedBy: [{ user: 'bob', connectionId: 'http' }] });
    expect(server.node.delivery.unacked(server.node.hub.sessions.get(phone.info.connectionId)!)).toBe(0);
  });

  it('20 fresh connections ACKing a broadcast they never received leave acknowledged at 0; the real recipient makes it 1', async () => {
    server = await startTestServer({ auth: { anonymous: true } });
    const recipient = await TestSocket.connect(server, null);
    const { msgId } = await server.publish({ broadcast: true, eventType: 'b', payload: 1, delivery: 'at-least-once', receipts: true });
    await recipient.next((f) => f.type === 'message' && f.message.msgId === msgId);
    const strangers = await Promise.all(Array.from({ length: 20 }, () => TestSocket.connect(server, null)));
    for (const s of strangers) ack(s, msgId);
    await Promise.all(strangers.map(handled));
    expect(strangers.flatMap((s) => s.frames.filter((f) => f.type === 'error'))).toEqual([]);
    expect(await receipt(msgId)).toMatchObject({ state: 'delivered', counts: { delivered: 1, acknowledged: 0 }, acknowledgedBy: [] });
    ack(recipient, msgId);
    await handled(recipient);
    const r = await receipt(msgId);
    expect(r).toMatchObject({ state: 'acknowledged', counts: { delivered: 1, acknowledged: 1 } });
    expect(r.acknowledgedBy.map((a: any) => a.connectionId)).toEqual([recipient.info.connectionId]);
  });

  it('a subscriber that joins after the delivery cannot ACK it, nor settle it for the one that got it', async () => {
    server = await startTestServer(FAST_RETRY);
    const early = await TestSocket.connect(server, { sub: 'early' });
    await early.subscribe('orders:1');
    const { msgId } = await server.publish({ channel: 'orders:1', eventType: 'o', payload: 1, delivery: 'at-least-once', receipts: true });
    await early.next((f) => f.type === 'message' && f.message.msgId === msgId);
    const late = await TestSocket.connect(server, { sub: 'late' });
    await late.subscribe('orders:1');
    ack(late, msgId);
    await handled(late);
    expect(await receipt(msgId)).toMatchObject({ counts: { delivered: 1, acknowledged: 0 }, acknowledgedBy: [] });
    // Still unsettled for `early`: it is sent again.
    await early.next((f) => f.type === 'message' && f.message.msgId === msgId);
    ack(early, msgId);
    await handled(early);
    const r = await receipt(msgId);
    expect(r).toMatchObject({ state: 'acknowledged', counts: { acknowledged: 1 }, acknowledgedBy: [{ user: 'early' }] });
    expect(r.recipients.map((x: any) => x.user)).toEqual(['early']);
  });

  it('a late ACK, after the retries ran out and the message went to the inbox, still settles it there', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'slow' });
    await s.subscribe('alerts');
    const { msgId } = await server.publish({ channel: 'alerts', eventType: 'x', payload: 1, delivery: 'at-least-once', receipts: true });
    await waitFor(async () => (await server.node.inbox.size('slow')) === 1, 5000, 'the inbox to hold the exhausted message');
    expect(await receipt(msgId)).toMatchObject({ state: 'inbox', counts: { exhausted: 1, inbox: 1, acknowledged: 0 } });
    ack(s, msgId);
    await waitFor(async () => (await server.node.inbox.size('slow')) === 0, 5000, 'the late ACK to clear the inbox');
    const r = await receipt(msgId);
    expect(r).toMatchObject({ state: 'acknowledged', counts: { acknowledged: 1 }, acknowledgedBy: [{ user: 'slow' }] });
    expect(r.inbox).toEqual([expect.objectContaining({ user: 'slow', removedAt: expect.any(Number) })]);
    // Once settled, another late ACK is a duplicate: no second count.
    ack(s, msgId);
    await handled(s);
    expect((await receipt(msgId)).counts.acknowledged).toBe(1);
  });

  it('repeated and unknown ACKs cost no inbox lookups: at most one per delivery Herald made', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'spammer' });
    await s.subscribe('alerts');
    const { msgId } = await server.publish({ channel: 'alerts', eventType: 'x', payload: 1, delivery: 'at-least-once', receipts: true });
    await waitFor(async () => (await server.node.inbox.size('spammer')) === 1, 5000, 'the exhausted message in the inbox');
    const inbox = server.node.inbox;
    const remove = inbox.remove.bind(inbox);
    let lookups = 0;
    inbox.remove = (user, ids) => {
      lookups++;
      return remove(user, ids);
    };
    for (let i = 0; i < 100; i++) ack(s, msgId, `unknown-${i}`);
    await handled(s);
    await waitFor(async () => (await server.node.inbox.size('spammer')) === 0, 5000, 'the late ACK to clear the inbox');
    expect(lookups).toBe(1);
    expect((await receipt(msgId)).counts.acknowledged).toBe(1);
  });

  it('a late ACK settles the inbox entry without any receipt (delivery.maxReceipts 0, or a client-published message)', async () => {
    server = await startTestServer({
      ...FAST_RETRY,
      delivery: { ...FAST_RETRY.delivery, maxReceipts: 0 },
      channels: { namespaces: { chat: { delivery: 'at-least-once' } } },
    });
    const s = await TestSocket.connect(server, { sub: 'quiet' });
    await s.subscribe('chat:room');
    await s.subscribe('alerts');
    const writer = await TestSocket.connect(server, { sub: 'writer', publish: ['chat:*'] });
    const published = await writer.request({ type: 'publish', channel: 'chat:room', eventType: 'said', payload: 'hi' });
    expect(published.type).toBe('published');
    const api1 = await server.publish({ channel: 'alerts', eventType: 'x', payload: 1, delivery: 'at-least-once' });
    await waitFor(async () => (await server.node.inbox.size('quiet')) === 2, 5000, 'both exhausted messages in the inbox');
    ack(s, published.msgId, api1.msgId);
    await waitFor(async () => (await server.node.inbox.size('quiet')) === 0, 5000, 'the late ACKs to clear the inbox');
  });

  it("a client publish reusing an API message's msgId adds nothing to that message's receipt", async () => {
    server = await startTestServer({ ...FAST_RETRY, channels: { namespaces: { orders: { delivery: 'at-least-once' } } } });
    const first = await TestSocket.connect(server, { sub: 'first' });
    await first.subscribe('orders:7');
    const msgId = 'order-7-shipped';
    await server.publish({ channel: 'orders:7', eventType: 'shipped', payload: 'api', msgId, delivery: 'at-least-once', receipts: true });
    await first.next((f) => f.type === 'message' && f.message.payload === 'api');
    ack(first, msgId);
    await handled(first);
    const before = await receipt(msgId);
    expect(before).toMatchObject({ counts: { delivered: 1, acknowledged: 1, retransmissions: 0, exhausted: 0, inbox: 0 } });

    const second = await TestSocket.connect(server, { sub: 'second' });
    await second.subscribe('orders:7');
    const mute = await TestSocket.connect(server, { sub: 'mute' });
    await mute.subscribe('orders:7');
    const eve = await TestSocket.connect(server, { sub: 'eve', publish: ['orders:*'] });
    const copy = await eve.request({ type: 'publish', channel: 'orders:7', eventType: 'shipped', payload: 'eve', msgId });
    expect(copy).toMatchObject({ type: 'published', msgId }); // another publisher's scope: not a duplicate
    for (const s of [first, second]) {
      await s.next((f) => f.type === 'message' && f.message.payload === 'eve');
      ack(s, msgId);
      await handled(s);
    }
    // `mute` never ACKs: retransmitted, exhausted, put in its inbox, then ACKed late from there.
    await waitFor(async () => (await server.node.inbox.size('mute')) === 1, 5000, "the client's message in mute's inbox");
    ack(mute, msgId);
    await waitFor(async () => (await server.node.inbox.size('mute')) === 0, 5000, 'the late ACK to clear it');
    const after = await receipt(msgId);
    expect(after.counts).toEqual(before.counts);
    expect(after.acknowledgedBy).toEqual(before.acknowledgedBy);
    expect(after.recipients).toEqual(before.recipients);
    expect(after.inbox).toEqual([]);
  });

  it("an inbox entry of a client's message with an API user message's msgId is not counted in that message's receipt", async () => {
    server = await startTestServer({ ...FAST_RETRY, channels: { namespaces: { orders: { delivery: 'at-least-once' } } } });
    const msgId = 'order-8-shipped';
    const bob = await TestSocket.connect(server, { sub: 'bob' });
    await bob.subscribe('orders:8');
    const eve = await TestSocket.connect(server, { sub: 'eve', publish: ['orders:*'] });
    expect(await eve.request({ type: 'publish', channel: 'orders:8', eventType: 'shipped', payload: 'eve', msgId })).toMatchObject({ type: 'published' });
    await waitFor(async () => (await server.node.inbox.size('bob')) === 1, 5000, "eve's message in bob's inbox (bob never ACKed it)");
    bob.close();
    await bob.closed;
    // The inbox keys entries by msgId, so the API's message does not get an entry of its own.
    await server.publish({ user: 'bob', eventType: 'shipped', payload: 'api', msgId, delivery: 'at-least-once', receipts: true });
    expect(await receipt(msgId)).toMatchObject({ counts: { inbox: 0 }, inbox: [] });
    const removed = await pollAck(await makeToken({ sub: 'bob' }), [msgId]);
    expect(removed.body).toEqual({ removed: 1, refused: [] }); // eve's entry
    expect(await receipt(msgId)).toMatchObject({ counts: { acknowledged: 0 }, acknowledgedBy: [] });
  });
});

describe('bounded receipts (M3, detailed receipts)', () => {
  it('receipts stay bounded and truthful with thousands of churned ACKers', async () => {
    server = await startTestServer({
      auth: { anonymous: true },
      delivery: { maxRecipientsPerReceipt: 10 },
      // 2030 connections from one IP within seconds: far past rateLimits.ip.handshakes (a flood
      // defence this test is not about).
      rateLimits: { ip: { handshakes: { perSecond: 100_000, burst: 100_000 } } },
    });
    const recipients = await Promise.all(Array.from({ length: 30 }, () => TestSocket.connect(server, null)));
    const { msgId } = await server.publish({ broadcast: true, eventType: 'b', payload: 1, delivery: 'at-least-once', receipts: true });
    for (const s of recipients) await s.next((f) => f.type === 'message' && f.message.msgId === msgId);
    for (const s of recipients) ack(s, msgId);
    await Promise.all(recipients.map(handled));
    // Connection churn: two thousand connections that never got it ACK it and leave.
    await churn(2000, 20, async (s) => {
      ack(s, msgId);
      await handled(s);
    });
    const r = await receipt(msgId);
    expect(r.counts).toMatchObject({ delivered: 30, acknowledged: 30 });
    expect(server.node.delivery.receipts.get(msgId)!.acks!.size).toBe(10);
    expect(r.acknowledgedBy).toHaveLength(10);
    expect(r.acknowledgedBy.every((a: any) => recipients.some((s) => s.info.connectionId === a.connectionId))).toBe(true);
    expect(r.acknowledgedByTruncated).toBe(true);
    expect(r.recipients).toHaveLength(10);
    expect(r.recipientsTruncated).toBe(true);
  }, 60_000);

  it('a detailed receipt keeps at most delivery.maxRecipientsPerReceipt recipients, counts them all, and says the list is truncated', async () => {
    server = await startTestServer({ delivery: { maxRecipientsPerReceipt: 5 } });
    const subs = await Promise.all(Array.from({ length: 12 }, (_, i) => TestSocket.connect(server, { sub: `reader-${i}` })));
    for (const s of subs) await s.subscribe('wide');
    const { msgId } = await server.publish({ channel: 'wide', eventType: 'w', payload: 1, delivery: 'at-least-once', receipts: true });
    for (const s of subs) await s.next((f) => f.type === 'message' && f.message.msgId === msgId);
    const r = await receipt(msgId);
    expect(r.counts.delivered).toBe(12);
    expect(r.recipients).toHaveLength(5);
    expect(r.recipientsTruncated).toBe(true);
    // Below the bound the flag is absent.
    await subs[0]!.subscribe('narrow');
    const { msgId: narrow } = await server.publish({ channel: 'narrow', eventType: 'w', payload: 1, delivery: 'at-least-once', receipts: true });
    await subs[0]!.next((f) => f.type === 'message' && f.message.msgId === narrow);
    const n = await receipt(narrow);
    expect(n.recipients).toHaveLength(1);
    expect(n).not.toHaveProperty('recipientsTruncated');
  });
});

describe.skipIf(!redisUp)('ACKs across two nodes on Redis (receipts live on the accepting node)', () => {
  const prefix = uniquePrefix('herald-acks-');
  let a: HeraldServer;
  let b: HeraldServer;
  const sockets: TestSocket[] = [];
  const track = (s: TestSocket) => (sockets.push(s), s);

  beforeAll(async () => {
    const engine = { type: 'redis', redis: { url: REDIS_URL, prefix } };
    const channels = { namespaces: { orders: { delivery: 'at-least-once' } } };
    [a, b] = (await Promise.all(['node-a', 'node-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, channels, ...FAST_RETRY })))) as [HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all([a, b].map((n) => n?.close()));
    await dropRedisKeys(prefix);
  });

  it("settles each node's own deliveries (late ACKs through the shared inbox too), and a client on the other node reusing the msgId adds nothing to the receipt", async () => {
    const here = track(await TestSocket.connect(a, { sub: 'here' }));
    const there = track(await TestSocket.connect(b, { sub: 'there' }));
    await here.subscribe('orders:x');
    await there.subscribe('orders:x');
    const msgId = `${prefix}-m`;
    await a.publish({ channel: 'orders:x', eventType: 'o', payload: 'api', msgId, receipts: true });
    await here.next((f) => f.type === 'message' && f.message.msgId === msgId);
    ack(here, msgId);
    await handled(here);
    // `there` (node b) never ACKs in time: its copy goes to the shared inbox; its late ACK on b settles it there.
    await there.next((f) => f.type === 'message' && f.message.msgId === msgId);
    await waitFor(async () => (await a.node.inbox.size('there')) === 1, 5000, "the message in there's inbox");
    ack(there, msgId);
    await waitFor(async () => (await a.node.inbox.size('there')) === 0, 5000, 'the late ACK on node b to clear it');
    const before = await receipt(msgId, a);
    expect(before).toMatchObject({ counts: { delivered: 1, acknowledged: 1, exhausted: 0, inbox: 0 } });
    expect((await api(b, 'GET', `/api/v1/messages/${msgId}`)).status).toBe(404);

    // A client on node b publishes its own message with that msgId; node a delivers it too.
    const eve = track(await TestSocket.connect(b, { sub: 'eve', publish: ['orders:*'] }));
    expect(await eve.request({ type: 'publish', channel: 'orders:x', eventType: 'o', payload: 'eve', msgId })).toMatchObject({ type: 'published', msgId });
    for (const s of [here, there]) {
      await s.next((f) => f.type === 'message' && f.message.payload === 'eve');
      ack(s, msgId);
      await handled(s);
    }
    const after = await receipt(msgId, a);
    expect(after.counts).toEqual(before.counts);
    expect(after.recipients).toEqual(before.recipients);
  });
});
