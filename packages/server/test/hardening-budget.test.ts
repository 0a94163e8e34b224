/**
 * Issue 11, H1 and "a byte budget that nothing bypasses": every frame for a connection — recovery
 * replies, inbox batches, RPC replies, at-least-once retransmissions — counts against
 * `limits.maxQueueBytes`. A client that stops reading is closed as a slow consumer (4003) with the
 * server's buffers for it bounded by the budget, whichever path fills them. Recovery replies may
 * stretch it by at most one more budget (so that a slow consumer can recover what it missed), and
 * never further however often they are asked for.
 *
 * The clients here stop reading by pausing their TCP socket. The kernel buffers of a loopback
 * connection first absorb a few MB, so each attack writes well past that.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import type { Session } from '../src/session.js';
import { FakeTransport } from './helpers/fake-transport.js';
import { makeToken, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

// These attacks would also be stopped by the rate limits (subscribe churn, RPC floods); they are
// off here so the byte budget is shown to hold on its own. packages/server/test/hardening-rate-limits.test.ts
// covers the limits.
const NO_RATE_LIMITS = { enabled: false };

let server: HeraldServer;
afterEach(async () => server?.close());

const BUDGET = 256 * 1024;
/** Control frames `ws` writes itself (a close frame) are not budgeted; they are a few bytes. */
const SLACK = 1024;

function rawSocket(s: TestSocket): Socket {
  return (s.ws as unknown as { _socket: Socket })._socket;
}

function sessionOf(id: string): Session {
  const s = server.node.hub.sessions.get(id);
  if (!s) throw new Error(`no session ${id}`);
  return s;
}

/** The most the server has held for `session` after any write (its queue plus the socket's buffer). */
function watchBacklog(session: Session): { peak: number; frames: number } {
  const watch = { peak: 0, frames: 0 };
  const transport = session.transport;
  const write = transport.write.bind(transport);
  transport.write = (frames) => {
    watch.frames += frames.length;
    write(frames);
    watch.peak = Math.max(watch.peak, session.backlogBytes);
  };
  return watch;
}

/** Once the server has closed it, the client reads again and sees the close code behind the data. */
async function closeCodeSeenByClient(s: TestSocket, session: Session): Promise<number> {
  await waitFor(() => session.state === 'closed', 10_000, 'condition', 0);
  rawSocket(s).resume();
  return (await s.closed).code;
}

const slowConsumerCloses = async (): Promise<number> => (await server.node.metrics.slowConsumerCloses.get()).values[0]?.value ?? 0;

describe('H1: subscribe-with-recover while not reading', () => {
  it('ends in a 4003 close, the server holding no more than twice limits.maxQueueBytes for the connection', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: BUDGET } });
    // About 160 KB of history: each recovery reply fits the budget on its own.
    for (let i = 0; i < 40; i++) await server.publish({ channel: 'hist', eventType: 'e', payload: 'x'.repeat(4000) });
    const s = await TestSocket.connect(server, { sub: 'mallory' });
    const { position } = await s.subscribe('hist');
    await s.request({ type: 'unsubscribe', channel: 'hist' });
    const session = sessionOf(s.info.connectionId);
    const backlog = watchBacklog(session);
    rawSocket(s).pause();
    let cycles = 0;
    // Before the fix the budget widened with every reply and this grew without end: stop at 4×.
    while (session.open && backlog.peak <= 4 * BUDGET && cycles < 5000) {
      cycles++;
      s.send({ type: 'subscribe', id: 2 * cycles, channel: 'hist', recover: { offset: 0, epoch: position.epoch } });
      // The reply is queued once the subscription's seam knows its position (or it is already live).
      await waitFor(() => !session.open || (session.isSubscribed('hist') && (session.recoveryBuffer('hist')?.settled ?? true)), 10_000, 'the subscribed reply queued', 0);
      if (!session.open) break;
      s.send({ type: 'unsubscribe', id: 2 * cycles + 1, channel: 'hist' });
      await waitFor(() => !session.open || !session.isSubscribed('hist'), 10_000, 'the unsubscribe', 0);
    }
    expect(backlog.peak).toBeLessThanOrEqual(2 * BUDGET + SLACK);
    expect(session.state).toBe('closed');
    expect(await slowConsumerCloses()).toBe(1);
    expect(await closeCodeSeenByClient(s, session)).toBe(4003);
  });

  it('replays up to twice the budget; a larger replay is answered recovered: false with no publications', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: BUDGET } });
    // About 600 KB of history: more than twice the budget. About 330 KB: more than the budget, less than twice.
    for (let i = 0; i < 150; i++) await server.publish({ channel: 'big', eventType: 'e', payload: 'x'.repeat(4000) });
    for (let i = 0; i < 80; i++) await server.publish({ channel: 'mid', eventType: 'e', payload: 'x'.repeat(4000) });
    const s = await TestSocket.connect(server);
    const big = await s.subscribe('big');
    const mid = await s.subscribe('mid');
    await s.request({ type: 'unsubscribe', channel: 'big' });
    await s.request({ type: 'unsubscribe', channel: 'mid' });
    const tooBig = await s.request({ type: 'subscribe', channel: 'big', recover: { offset: 0, epoch: big.position.epoch } });
    expect(tooBig).toMatchObject({ type: 'subscribed', recovered: false, publications: [], position: { offset: 150 } });
    const fits = await s.request({ type: 'subscribe', channel: 'mid', recover: { offset: 0, epoch: mid.position.epoch } });
    expect(fits).toMatchObject({ type: 'subscribed', recovered: true });
    expect(fits.publications).toHaveLength(80);
    // Live messages continue after the top either way.
    await server.publish({ channel: 'big', eventType: 'e', payload: 'live' });
    expect(await s.next((f) => f.type === 'message')).toMatchObject({ channel: 'big', offset: 151, message: { payload: 'live' } });
  });
});

describe('every other path counts against the same budget', () => {
  it('an inbox batch: a large inbox goes to a client that reads a budget at a time, in order, without closing it', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: 32 * 1024 } });
    const ids: string[] = [];
    // ≈ 160 KB waiting: five budgets. Sent all at once, the first batch alone would close it.
    for (let i = 0; i < 40; i++) ids.push((await server.publish({ user: 'ann', eventType: 'n', payload: { i, pad: 'p'.repeat(4000) }, delivery: 'at-least-once' })).msgId);
    const s = await TestSocket.connect(server, { sub: 'ann' });
    const got: string[] = [];
    while (got.length < ids.length) {
      const m = await s.next((f) => f.type === 'message');
      got.push(m.message.msgId);
      s.send({ type: 'ack', msgIds: [m.message.msgId] });
    }
    expect(got).toEqual(ids);
    expect(s.ws.readyState).toBe(1);
    expect(await slowConsumerCloses()).toBe(0);
  });

  it('an inbox batch: a client that never reads is given no more than the budget', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: 32 * 1024 } });
    for (let i = 0; i < 40; i++) await server.publish({ user: 'bea', eventType: 'n', payload: { i, pad: 'p'.repeat(4000) }, delivery: 'at-least-once' });
    const t = new FakeTransport();
    t.stuck = true;
    const session = server.node.attach(t);
    server.node.onText(session, JSON.stringify({ type: 'connect', id: 1, token: await makeToken({ sub: 'bea' }) }));
    await waitFor(() => t.texts().some((x) => x.includes('"inbox":true')), 10_000, 'condition', 0);
    // The inbox read is asynchronous: give the batch the turns it needs to be written.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const delivered = t.texts().filter((x) => x.includes('"inbox":true')).length;
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(40);
    expect(t.bufferedAmount).toBeLessThanOrEqual(32 * 1024);
    expect(session.open).toBe(true);
  });

  it('an inbox batch: a live user message arriving while older entries wait for the next batch comes after them, none skipped', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, inbox: { deliverBatch: 5 } });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await server.publish({ user: 'cy', eventType: 'n', payload: i, delivery: 'at-least-once' })).msgId);
    const s = await TestSocket.connect(server, { sub: 'cy' });
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push((await s.next((f) => f.type === 'message')).message.msgId);
    // The first batch is in flight, three entries wait in the inbox; a new message arrives live.
    ids.push((await server.publish({ user: 'cy', eventType: 'n', payload: 8, delivery: 'at-least-once' })).msgId);
    s.send({ type: 'ack', msgIds: got });
    while (got.length < ids.length) {
      const m = await s.next((f) => f.type === 'message');
      got.push(m.message.msgId);
      s.send({ type: 'ack', msgIds: [m.message.msgId] });
    }
    expect(got).toEqual(ids);
  });

  it('RPC replies to a flood of requests', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: BUDGET }, rpc: { echo: true } });
    const s = await TestSocket.connect(server);
    const session = sessionOf(s.info.connectionId);
    const backlog = watchBacklog(session);
    rawSocket(s).pause();
    const data = 'x'.repeat(16_000);
    // About 16 MB of replies asked for.
    for (let i = 0; i < 1000; i++) s.send({ type: 'request', correlationId: `r${i}`, method: 'echo', data });
    expect(await closeCodeSeenByClient(s, session)).toBe(4003);
    expect(backlog.peak).toBeLessThanOrEqual(BUDGET + SLACK);
    expect(await slowConsumerCloses()).toBe(1);
  });

  it('pongs to a flood of WebSocket control pings', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: BUDGET } });
    const s = await TestSocket.connect(server);
    const session = sessionOf(s.info.connectionId);
    const backlog = watchBacklog(session);
    rawSocket(s).pause();
    // 127-byte pongs asked for, ≈ 19 MB: far past the budget and the kernel's buffers. `ws` would
    // answer them itself, past the budget; Herald answers them through the session.
    const payload = Buffer.alloc(125, 0x70);
    for (let i = 0; i < 150_000 && session.open; i++) {
      s.ws.ping(payload);
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    expect(await closeCodeSeenByClient(s, session)).toBe(4003);
    expect(backlog.peak).toBeLessThanOrEqual(BUDGET + SLACK);
    expect(await slowConsumerCloses()).toBe(1);
  });

  it('a control ping from a client that reads is answered with its payload', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    const pong = new Promise<Buffer>((resolve) => s.ws.once('pong', resolve));
    s.ws.ping(Buffer.from('are you there'));
    expect((await pong).toString()).toBe('are you there');
  });

  it('at-least-once messages waiting behind delivery.maxInFlight, counted as a slow-consumer close', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxQueueBytes: BUDGET }, delivery: { defaultMode: 'at-least-once', maxInFlight: 1 } });
    const s = await TestSocket.connect(server, { sub: 'wes' });
    await s.subscribe('orders');
    const session = sessionOf(s.info.connectionId);
    // One in flight, never acknowledged; the rest wait in the server until their bytes pass the budget.
    for (let i = 0; i < 20 && session.open; i++) await server.publish({ channel: 'orders', eventType: 'e', payload: 'x'.repeat(16_000) });
    expect(await closeCodeSeenByClient(s, session)).toBe(4003);
    expect(await slowConsumerCloses()).toBe(1);
  });

  it('at-least-once retransmissions', async () => {
    server = await startTestServer({
      rateLimits: NO_RATE_LIMITS,
      limits: { maxQueueBytes: BUDGET },
      delivery: { defaultMode: 'at-least-once', ackTimeoutMs: 10, retry: { initialDelayMs: 1, maxDelayMs: 20, jitter: 0 }, maxAttempts: 100, maxInFlight: 1000 },
    });
    const s = await TestSocket.connect(server, { sub: 'rita' });
    await s.subscribe('orders');
    const session = sessionOf(s.info.connectionId);
    const backlog = watchBacklog(session);
    rawSocket(s).pause();
    // 256 KB sent once, one message per tick, so each leaves at once: the budget plus the
    // kernel's buffers hold them all. What then fills the budget is the retransmissions.
    const MESSAGES = 16;
    for (let i = 0; i < MESSAGES; i++) {
      await server.publish({ channel: 'orders', eventType: 'e', payload: 'x'.repeat(16_000) });
      await new Promise((r) => setImmediate(r));
    }
    expect(await closeCodeSeenByClient(s, session)).toBe(4003);
    expect(backlog.frames).toBeGreaterThan(MESSAGES);
    expect(backlog.peak).toBeLessThanOrEqual(BUDGET + SLACK);
    expect(await slowConsumerCloses()).toBe(1);
  });
});
