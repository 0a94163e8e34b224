import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer;
afterEach(async () => server?.close());

const FAST_RETRY = {
  delivery: { ackTimeoutMs: 100, retry: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0 }, maxAttempts: 4 },
};

function ack(s: TestSocket, ...msgIds: string[]) {
  s.send({ type: 'ack', msgIds });
}

const arrivalsOf = (s: TestSocket, msgId: string): Frame[] => s.frames.filter((f) => f.type === 'message' && f.message.msgId === msgId);

/**
 * Publishes an at-least-once marker nobody acknowledges and waits for its first retransmission.
 * Retransmissions run on one schedule (no jitter here), so a retransmission still due for
 * anything delivered before the marker would have arrived before the marker's own.
 */
async function afterMarkerRetransmitted(s: TestSocket, target: { channel: string } | { user: string }): Promise<string> {
  const { msgId } = await server.publish({ ...target, eventType: 'marker', payload: 'marker', delivery: 'at-least-once' });
  await waitFor(() => arrivalsOf(s, msgId).length >= 2, 5000, 'the marker to be retransmitted');
  return msgId;
}

const inboxSize = (user: string): Promise<number> => server.node.inbox.size(user);

describe('at-least-once delivery', () => {
  it('marks reliable deliveries for ACK and leaves at-most-once ones unmarked', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('mix');
    await server.publish({ channel: 'mix', eventType: 'a', payload: 1 });
    await server.publish({ channel: 'mix', eventType: 'b', payload: 2, delivery: 'at-least-once' });
    const [m1, m2] = await s.waitMessages(2);
    expect(m1!.ack).toBeUndefined();
    expect(m2!.ack).toBe(true);
  });

  it('uses the namespace default delivery mode', async () => {
    server = await startTestServer({ channels: { namespaces: { orders: { delivery: 'at-least-once' } } } });
    const s = await TestSocket.connect(server);
    await s.subscribe('orders:eu');
    await s.subscribe('ticker');
    await server.publish({ channel: 'orders:eu', eventType: 'o', payload: 1 });
    await server.publish({ channel: 'ticker', eventType: 't', payload: 1 });
    const msgs = await s.waitMessages(2);
    expect(msgs.find((m) => m.channel === 'orders:eu')!.ack).toBe(true);
    expect(msgs.find((m) => m.channel === 'ticker')!.ack).toBeUndefined();
  });

  it('retransmits an unacknowledged message on the backoff schedule, then puts it in the inbox', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'mute' });
    await s.subscribe('alerts');
    const { msgId } = await server.publish({ channel: 'alerts', eventType: 'x', payload: 1, delivery: 'at-least-once' });
    // Exhausted retries end in the inbox; nothing is transmitted after that.
    await waitFor(async () => (await inboxSize('mute')) === 1, 5000, 'the message to reach the inbox');
    const arrivals = arrivalsOf(s, msgId);
    expect(arrivals).toHaveLength(4); // maxAttempts transmissions, identical frames
    expect(new Set(arrivals.map((f) => JSON.stringify(f))).size).toBe(1);
    const receipt = await api(server, 'GET', `/api/v1/messages/${msgId}`);
    expect(receipt.body).toMatchObject({ state: 'inbox', counts: { delivered: 1, retransmissions: 3, exhausted: 1, inbox: 1 } });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('herald_retries_exhausted_total 1');
    // The next connection of that user gets it from the inbox; acknowledging clears it.
    s.close();
    const again = await TestSocket.connect(server, { sub: 'mute' });
    const fromInbox = await again.next((f) => f.type === 'message');
    expect(fromInbox).toMatchObject({ target: 'user', channel: 'alerts', inbox: true, ack: true, message: { msgId } });
    ack(again, msgId);
    await waitFor(async () => (await inboxSize('mute')) === 0, 5000, 'the ACK to clear the inbox');
  });

  it('spaces retransmissions by growing delays', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'timer' });
    const at: number[] = [];
    s.ws.on('message', (d) => {
      if (String(d).includes('"ack":true')) at.push(Date.now());
    });
    const { msgId } = await server.publish({ user: 'timer', eventType: 'x', payload: 1, delivery: 'at-least-once' });
    const exhausted = async (): Promise<boolean> => (await api(server, 'GET', `/api/v1/messages/${msgId}`)).body.counts?.exhausted === 1;
    await waitFor(exhausted, 5000, 'retries to be exhausted', 50);
    expect(at).toHaveLength(4);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // Expected 200, 300, 500 ms (ackTimeout 100 + 100·2^(k-1)); the wheel ticks every 50 ms.
    expect(gaps[0]).toBeGreaterThanOrEqual(150);
    expect(gaps[1]).toBeGreaterThan(gaps[0]! + 40);
    expect(gaps[2]).toBeGreaterThan(gaps[1]! + 100);
  });

  it('stops retransmitting once acknowledged; duplicate and unknown ACKs are harmless', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'acker' });
    await s.subscribe('c');
    const { msgId } = await server.publish({ channel: 'c', eventType: 'x', payload: 1, delivery: 'at-least-once', receipts: true });
    const { msgId: plain } = await server.publish({ channel: 'c', eventType: 'x', payload: 2, delivery: 'at-least-once' });
    await s.waitMessages(2);
    ack(s, msgId, plain);
    ack(s, msgId, msgId, plain);
    ack(s, 'never-heard-of-it');
    await afterMarkerRetransmitted(s, { channel: 'c' });
    expect(arrivalsOf(s, msgId)).toHaveLength(1);
    expect(arrivalsOf(s, plain)).toHaveLength(1);
    expect(s.frames.filter((f) => f.type === 'error')).toHaveLength(0);
    expect((await api(server, 'GET', `/api/v1/messages/${msgId}`)).body).toMatchObject({ state: 'acknowledged', counts: { acknowledged: 1 }, acknowledgedBy: [{ user: 'acker' }] });
    // Without `receipts: true` a channel message keeps counts only.
    expect((await api(server, 'GET', `/api/v1/messages/${plain}`)).body).toMatchObject({ state: 'acknowledged', counts: { acknowledged: 1 }, acknowledgedBy: [] });
  });

  it('accepts out-of-order ACKs', async () => {
    server = await startTestServer(FAST_RETRY);
    const s = await TestSocket.connect(server, { sub: 'ooo' });
    await s.subscribe('c');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await server.publish({ channel: 'c', eventType: 'x', payload: i, delivery: 'at-least-once' })).msgId);
    await s.waitMessages(3);
    ack(s, ids[2]!);
    ack(s, ids[0]!, ids[1]!);
    await afterMarkerRetransmitted(s, { channel: 'c' });
    for (const id of ids) expect(arrivalsOf(s, id!)).toHaveLength(1);
  });

  it('ignores an ACK for a message that was never sent to this user, like an unknown msgId', async () => {
    server = await startTestServer(FAST_RETRY);
    const alice = await TestSocket.connect(server, { sub: 'alice' });
    const mallory = await TestSocket.connect(server, { sub: 'mallory' });
    const { msgId } = await server.publish({ user: 'alice', eventType: 'secret', payload: 1, delivery: 'at-least-once' });
    await alice.next((f) => f.type === 'message');
    ack(mallory, msgId);
    ack(mallory, 'never-heard-of-it');
    // Answered alike (not at all), so an ACK cannot tell which msgIds exist; ping orders the check.
    mallory.send({ type: 'ping' });
    await mallory.next((f) => f.type === 'pong');
    expect(mallory.frames.filter((f) => f.type === 'error')).toEqual([]);
    expect(await server.node.inbox.size('alice')).toBe(1); // still waiting for alice
    expect((await api(server, 'GET', `/api/v1/messages/${msgId}`)).body).toMatchObject({ counts: { acknowledged: 0 }, acknowledgedBy: [] });
  });

  it('bounds unacknowledged deliveries per connection and sends the rest in order as ACKs arrive', async () => {
    server = await startTestServer({ delivery: { maxInFlight: 2, ackTimeoutMs: 5000 } });
    const s = await TestSocket.connect(server, { sub: 'bounded' });
    await s.subscribe('q');
    // Another subscriber that acknowledges at once sees all five: the fan-out of the last one has
    // happened; a ping on the bounded socket then comes back behind anything queued for it.
    const observer = await TestSocket.connect(server, { sub: 'observer' });
    await observer.subscribe('q');
    observer.ws.on('message', (d) => {
      const f = JSON.parse(String(d)) as Frame;
      if (f.type === 'message') ack(observer, f.message.msgId);
    });
    for (let i = 0; i < 5; i++) await server.publish({ channel: 'q', eventType: 'x', payload: i, delivery: 'at-least-once' });
    await observer.waitMessages(5);
    s.send({ type: 'ping' });
    await s.next((f) => f.type === 'pong');
    expect(s.messages().map((m) => m.message.payload)).toEqual([0, 1]);
    ack(s, s.messages()[0]!.message.msgId);
    await s.waitMessages(3);
    ack(s, ...s.messages().slice(1).map((m: Frame) => m.message.msgId));
    const all = await s.waitMessages(5);
    expect(all.map((m) => m.message.payload)).toEqual([0, 1, 2, 3, 4]);
  });

  it('keeps user messages for an offline user and delivers them in order at connect', async () => {
    server = await startTestServer();
    for (let i = 1; i <= 5; i++) await server.publish({ user: 'offline', eventType: 'n', payload: i, delivery: 'at-least-once' });
    await server.publish({ user: 'offline', eventType: 'n', payload: 'lost', delivery: 'at-most-once' });
    expect(await server.node.inbox.size('offline')).toBe(5);
    const phone = await TestSocket.connect(server, { sub: 'offline' });
    const got = await phone.waitMessages(5);
    expect(got.map((m) => m.message.payload)).toEqual([1, 2, 3, 4, 5]);
    // Live messages published now come after the inbox, in order.
    await server.publish({ user: 'offline', eventType: 'n', payload: 6, delivery: 'at-least-once' });
    expect((await phone.waitMessages(6))[5]!.message.payload).toBe(6);
    // Acknowledge three, then drop the connection mid-way: the other three come back.
    ack(phone, ...got.slice(0, 3).map((m) => m.message.msgId));
    await waitFor(async () => (await inboxSize('offline')) === 3, 5000, 'three ACKs to leave 4, 5 and 6 in the inbox');
    phone.close();
    await phone.closed;
    const laptop = await TestSocket.connect(server, { sub: 'offline' });
    const again = await laptop.waitMessages(3);
    expect(again.map((m) => m.message.payload)).toEqual([4, 5, 6]);
    // A live message after them: a second copy of any of the three would have come first.
    await server.publish({ user: 'offline', eventType: 'n', payload: 7, delivery: 'at-least-once' });
    expect((await laptop.waitMessages(4)).map((m) => m.message.payload)).toEqual([4, 5, 6, 7]);
  });

  it('an ACK from one device settles the message for the user\'s other devices', async () => {
    server = await startTestServer(FAST_RETRY);
    const a = await TestSocket.connect(server, { sub: 'multi' });
    const b = await TestSocket.connect(server, { sub: 'multi' });
    const { msgId } = await server.publish({ user: 'multi', eventType: 'x', payload: 1, delivery: 'at-least-once', receipts: true });
    await a.next((f) => f.type === 'message');
    await b.next((f) => f.type === 'message');
    ack(a, msgId);
    await afterMarkerRetransmitted(b, { user: 'multi' });
    expect(arrivalsOf(b, msgId)).toHaveLength(1); // no retransmissions to b
    const receipt = (await api(server, 'GET', `/api/v1/messages/${msgId}`)).body;
    expect(receipt.state).toBe('acknowledged');
    expect(receipt.recipients).toHaveLength(2);
    expect(receipt.recipients.find((r: any) => r.connectionId === a.info.connectionId).ackedAt).toBeGreaterThan(0);
    expect(receipt.inbox).toEqual([expect.objectContaining({ user: 'multi', removedAt: expect.any(Number) })]);
  });

  it('drops inbox entries past the per-user limit and counts them', async () => {
    server = await startTestServer({ inbox: { maxMessages: 3 } });
    for (let i = 1; i <= 5; i++) await server.publish({ user: 'full', eventType: 'n', payload: i, delivery: 'at-least-once' });
    expect(await server.node.inbox.size('full')).toBe(3);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('herald_inbox_dropped_total 2');
    const s = await TestSocket.connect(server, { sub: 'full' });
    expect((await s.waitMessages(3)).map((m) => m.message.payload)).toEqual([3, 4, 5]);
  });

  it('a slow consumer closed for its full queue recovers everything on reconnect', async () => {
    server = await startTestServer({ limits: { maxQueueBytes: 32 * 1024 } });
    const s = await TestSocket.connect(server, { sub: 'slowpoke' });
    const first = await s.subscribe('big');
    const pause = (s.ws as any)._socket;
    pause.pause();
    const payload = 'z'.repeat(4096);
    const sent: number[] = [];
    // More than the 32 KiB budget in one tick closes it; what it missed (under twice the budget,
    // the most a recovery reply may take) comes back whole. Larger gaps: packages/server/test/hardening-budget.test.ts.
    for (let i = 1; i <= 14; i++) {
      await server.publish({ channel: 'big', eventType: 'n', payload: { i, payload } });
      sent.push(i);
    }
    pause.resume();
    expect((await s.closed).code).toBe(4003);
    const got = s.messages();
    const last = got[got.length - 1];
    const t = await TestSocket.connect(server, { sub: 'slowpoke' });
    const rec = await t.subscribe('big', last ? { offset: last.offset, epoch: last.epoch } : first.position);
    expect(rec.recovered).toBe(true);
    const all = [...got.map((m) => m.message.payload.i), ...rec.publications.map((p: any) => p.message.payload.i)];
    expect(all).toEqual(sent);
  });
});
