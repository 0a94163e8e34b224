/**
 * The client SDK against a real Herald server over real sockets (Node, `ws`): subscribe and
 * deliver, user/broadcast messages with batched acks, forced reconnect and server restart with
 * recovery (every message published while away arrives exactly once, in order), half-open TCP
 * detection, RPC both ways, the outbox, token refresh, and terminal close codes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HeraldClient } from '@herald/client';
import type { ClientState, Envelope, HeraldClientOptions, HeraldError } from '@herald/client';
import type { HeraldServer } from '../src/index.js';
import { MemoryBroker, RecordingWebSocket, sentFrames, startServer, TcpProxy } from './client-support.js';
import { api, makeToken, publish } from './helpers/server.js';
import { pause, waitFor } from './helpers/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<HeraldServer> {
  const s = await startServer(opts);
  cleanup.push(() => s.close());
  return s;
}

function client(opts: Partial<HeraldClientOptions> & { url: string }): HeraldClient {
  const c = new HeraldClient({ WebSocket, reconnect: { strategy: 'fixed', delay: 100 }, ...opts });
  cleanup.push(() => c.close());
  return c;
}

const CHAT = { sub: 'u1', channels: ['chat:*'], publish: ['chat:*'] };

describe('client ↔ real server', () => {
  it('connects, subscribes and receives channel messages in order', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    const states: ClientState['status'][] = [];
    c.on('state', (st) => states.push(st.status));
    await c.connect();
    expect(c.state).toMatchObject({ status: 'connected', user: 'u1' });
    const sub = c.subscribe<{ n: number }>('chat:1');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    await sub.ready();
    for (let n = 1; n <= 20; n++) await publish(s, { channel: 'chat:1', payload: { n } });
    await waitFor(() => got.length === 20);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(sub.position?.offset).toBe(20);
    expect(states.slice(0, 2)).toEqual(['connecting', 'connected']);
  });

  it('delivers user and broadcast messages to client.on("message") and acks them in batches', async () => {
    const s = await server();
    sentFrames.length = 0;
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT), WebSocket: RecordingWebSocket });
    const got: { target: string; msgId: string }[] = [];
    c.on('message', async (m: Envelope, ctx) => {
      await pause(5); // a handler that takes a while: acks wait for it
      got.push({ target: ctx.target, msgId: m.msgId });
    });
    await c.connect();
    const r = await api(s, 'POST', '/api/v1/publish/batch', {
      messages: [
        ...Array.from({ length: 5 }, (_, i) => ({ user: 'u1', eventType: 'dm', payload: { i }, delivery: 'at-least-once' })),
        { broadcast: true, eventType: 'news', payload: {}, delivery: 'at-least-once' },
      ],
    });
    expect(r.status).toBe(200);
    await waitFor(() => got.length === 6);
    // User messages keep their order; a broadcast is not ordered relative to them.
    expect(got.map((g) => g.target).sort()).toEqual(['broadcast', 'user', 'user', 'user', 'user', 'user']);
    await waitFor(() => sentFrames.filter((f) => f.type === 'ack').flatMap((f) => f.msgIds).length === 6);
    const acks = sentFrames.filter((f) => f.type === 'ack');
    expect(acks.flatMap((f) => f.msgIds).sort()).toEqual(got.map((g) => g.msgId).sort());
    expect(acks.length).toBeLessThan(6); // batched per tick
  });

  it('after a forced disconnect it resubscribes and recovers what was missed, once each, in order', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT), reconnect: { strategy: 'fixed', delay: 400 } });
    await c.connect();
    const sub = c.subscribe<{ n: number }>('chat:r');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    const subscribed: (boolean | undefined)[] = [];
    sub.on('subscribed', (info) => void subscribed.push(info.recovered));
    await sub.ready();
    for (let n = 1; n <= 5; n++) await publish(s, { channel: 'chat:r', payload: { n } });
    await waitFor(() => got.length === 5);

    const disconnected = new Promise<{ code: number; willReconnect: boolean }>((r) => c.once('disconnected', r));
    expect((await api(s, 'POST', `/api/v1/connections/${c.connectionId}/disconnect`, { reconnect: true })).status).toBe(200);
    expect(await disconnected).toMatchObject({ code: 4005, willReconnect: true });
    for (let n = 6; n <= 15; n++) await publish(s, { channel: 'chat:r', payload: { n } }); // while away
    await waitFor(() => c.state.status === 'connected');
    for (let n = 16; n <= 20; n++) await publish(s, { channel: 'chat:r', payload: { n } });
    // A marker published last arrives after anything a duplicate could have been sent before it.
    await publish(s, { channel: 'chat:r', payload: { n: 21 } });
    await waitFor(() => got.includes(21));
    expect(got).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(subscribed).toEqual([undefined, true]);
  });

  it('survives a server kill and restart mid-stream: every message arrives exactly once, in order', async () => {
    const broker = new MemoryBroker(); // history outlives the server process object
    let s = await startServer({ broker });
    const port = s.port;
    cleanup.push(() => s.close());
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT), reconnect: { strategy: 'exponential', initialDelay: 200, maxDelay: 600 } });
    const got: number[] = [];
    let recoveryFailed = 0;
    c.on('recoveryFailed', () => void recoveryFailed++);
    await c.connect();
    const sub = c.subscribe<{ n: number }>('chat:stream');
    sub.on('message', (m) => void got.push(m.payload.n));
    await sub.ready();

    // A backend publishing steadily; a publish that fails while the server is down is retried.
    const TOTAL = 300;
    let next = 1;
    let refused = 0;
    let stopped = false;
    const producer = (async () => {
      while (next <= TOTAL && !stopped) {
        try {
          await publish({ url: `http://127.0.0.1:${port}` }, { channel: 'chat:stream', payload: { n: next }, msgId: `stream-${next}` });
          next++;
        } catch {
          refused++;
          await pause(20); // the producer's own retry pace while the server is down
        }
        await pause(2); // a steady stream rather than a burst
      }
    })();
    cleanup.push(async () => {
      stopped = true;
      await producer;
    });

    await waitFor(() => next > 60, 10_000, 'some messages before the kill');
    await s.close(); // kill: clients get 4001
    await waitFor(() => c.state.status !== 'connected');
    // The outage lasts until both sides have noticed it: the producer's publishes are refused
    // and the client has gone back to dialling.
    await waitFor(() => refused >= 3 && c.state.status === 'reconnecting', 5000, 'the producer and the client to see the server down');
    s = await startServer({ broker, port });
    await waitFor(() => next > TOTAL, 20_000, 'producer to finish');
    await waitFor(() => got.length >= TOTAL, 10_000, `all ${TOTAL} messages`);
    await publish(s, { channel: 'chat:stream', payload: { n: TOTAL + 1 } }); // a marker: any duplicate came before it
    await waitFor(() => got.includes(TOTAL + 1));
    expect(got).toEqual(Array.from({ length: TOTAL + 1 }, (_, i) => i + 1));
    expect(recoveryFailed).toBe(0);
  });

  it('after a restart that lost history it resubscribes and reports recoveryFailed', async () => {
    let s = await startServer();
    const port = s.port;
    cleanup.push(() => s.close());
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    await c.connect();
    const sub = c.subscribe<{ n: number }>('chat:lost');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    await sub.ready();
    await publish(s, { channel: 'chat:lost', payload: { n: 1 } });
    await waitFor(() => got.length === 1);
    const failed = new Promise((r) => sub.on('recoveryFailed', r));
    await s.close();
    s = await startServer({ port });
    await failed;
    await publish(s, { channel: 'chat:lost', payload: { n: 2 } });
    await waitFor(() => got.length === 2);
    expect(got).toEqual([1, 2]);
  });

  it('detects a half-open connection within pingInterval + pongTimeout and reconnects', async () => {
    const s = await server({ heartbeat: { intervalMs: 300, pongTimeoutMs: 200 } });
    const proxy = await new TcpProxy(s.port).listen();
    cleanup.push(() => proxy.close());
    const c = client({ url: proxy.url, token: await makeToken(CHAT), reconnect: { strategy: 'fixed', delay: 50 } });
    await c.connect();
    const sub = c.subscribe<{ n: number }>('chat:h');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    await sub.ready();
    const first = c.connectionId;
    const disconnected = new Promise<{ code: number; reason: string }>((r) => c.once('disconnected', r));
    const frozenAt = Date.now();
    proxy.freeze();
    await publish(s, { channel: 'chat:h', payload: { n: 1 } }); // lost in the frozen pipe
    const info = await disconnected;
    const detectedIn = Date.now() - frozenAt;
    expect(info.code).toBe(4002);
    // Silence is noticed pingInterval + pongTimeout after the last frame, which came at most one
    // ping period before the freeze: 800 ms nominal, with slack for a loaded machine.
    expect(detectedIn).toBeLessThan(300 + 200 + 300 + 700);
    await waitFor(() => c.state.status === 'connected' && c.connectionId !== first, 3000);
    await waitFor(() => got.length === 1, 3000); // recovered from history
    expect(got).toEqual([1]);
  });

  it('answers server pings with pongs so the server keeps the connection', async () => {
    const s = await server({ heartbeat: { intervalMs: 150, pongTimeoutMs: 100 } });
    sentFrames.length = 0;
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT), WebSocket: RecordingWebSocket });
    await c.connect();
    const id = c.connectionId;
    // Several heartbeat rounds, each ping answered, and the connection is still the first one.
    await waitFor(() => sentFrames.filter((f) => f.type === 'pong').length >= 4, 5000, 'four pongs');
    expect(c.state).toMatchObject({ status: 'connected', connectionId: id });
  });

  it('RPC both ways: request/response, unknown methods and errors', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    const pending = c.request('echo', { hello: 'world' }); // made before connecting: waits
    await c.connect();
    expect(await pending).toEqual({ hello: 'world' });
    await expect(c.request('nope')).rejects.toMatchObject({ name: 'HeraldError', code: 'unknown_method', temporary: false });

    c.onRequest('sum', (data) => (data as number[]).reduce((a, b) => a + b, 0));
    c.onRequest('fail', async () => {
      throw Object.assign(new Error('x'), {});
    });
    const id = c.connectionId!;
    expect((await api(s, 'POST', `/api/v1/connections/${id}/request`, { method: 'sum', data: [1, 2, 3] })).body).toEqual({ data: 6 });
    const unknown = await api(s, 'POST', `/api/v1/connections/${id}/request`, { method: 'missing' });
    expect(unknown.body.error).toMatchObject({ code: 'unknown_method', temporary: false });
    const failed = await api(s, 'POST', `/api/v1/connections/${id}/request`, { method: 'fail' });
    expect(failed.body.error).toMatchObject({ code: 'internal' });
  });

  it('pending requests fail with connection_lost when the connection drops, unless idempotent', async () => {
    const s = await server({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100 } });
    const proxy = await new TcpProxy(s.port).listen();
    cleanup.push(() => proxy.close());
    const c = client({ url: proxy.url, token: await makeToken(CHAT), reconnect: { strategy: 'fixed', delay: 50 } });
    await c.connect();
    proxy.freeze();
    const plain = c.request('echo', 1, { timeout: 5000 });
    const retried = c.request('echo', 2, { timeout: 5000, idempotent: true });
    await expect(plain).rejects.toMatchObject({ code: 'connection_lost', temporary: true });
    expect(await retried).toBe(2);
  });

  it('publishes through the outbox: queued while offline, confirmed once, resent with the same msgId', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    const reader = client({ url: s.wsUrl, token: await makeToken({ sub: 'u2', channels: ['chat:*'] }) });
    await reader.connect();
    const got: string[] = [];
    const rsub = reader.subscribe<string>('chat:out');
    rsub.on('message', (m) => void got.push(m.payload));
    await rsub.ready();

    const early = c.publish('chat:out', 'say', 'before-connect'); // client not connected yet
    expect(c.outboxSize).toBe(1);
    await c.connect();
    const r1 = await early;
    expect(r1).toMatchObject({ duplicate: false, position: { offset: 1 } });
    expect(c.outboxSize).toBe(0);

    // The same msgId published again is deduplicated by the server.
    const again = await c.publish('chat:out', 'say', 'before-connect', { msgId: r1.msgId });
    expect(again.duplicate).toBe(true);
    await c.publish('chat:out', 'say', 'second');
    await c.publish('chat:out', 'say', 'third'); // a marker: a duplicate would have come before it
    await waitFor(() => got.length === 3);
    expect(got).toEqual(['before-connect', 'second', 'third']);

    await expect(c.publish('forbidden:1', 'say', 'x')).rejects.toMatchObject({ code: 'permission_denied' });
    expect(c.outboxSize).toBe(0);
  });

  it('resends an unconfirmed publish after reconnecting with the same msgId; the server delivers it once', async () => {
    const s = await server({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100 } });
    const proxy = await new TcpProxy(s.port).listen();
    cleanup.push(() => proxy.close());
    sentFrames.length = 0;
    const c = client({ url: proxy.url, token: await makeToken(CHAT), WebSocket: RecordingWebSocket, reconnect: { strategy: 'fixed', delay: 50 } });
    const reader = client({ url: s.wsUrl, token: await makeToken({ sub: 'u2', channels: ['chat:*'] }) });
    await reader.connect();
    const got: string[] = [];
    const rsub = reader.subscribe<string>('chat:resend');
    rsub.on('message', (m) => void got.push(m.payload));
    await rsub.ready();
    await c.connect();
    const first = c.connectionId;

    proxy.freezeDownstream(); // the publish reaches the server; its `published` reply is lost
    const result = await c.publish('chat:resend', 'say', 'once', { msgId: 'resend-1' });
    expect(c.connectionId).not.toBe(first);
    expect(result).toMatchObject({ msgId: 'resend-1', duplicate: true });
    const sends = sentFrames.filter((f) => f.type === 'publish');
    expect(sends.length).toBe(2);
    expect(new Set(sends.map((f) => f.msgId))).toEqual(new Set(['resend-1']));
    await c.publish('chat:resend', 'say', 'marker'); // a second delivery of 'once' would precede it
    await waitFor(() => got.includes('marker'));
    expect(got).toEqual(['once', 'marker']);
  });

  it('refreshes an expired token with getToken and reconnects with its subscriptions', async () => {
    const s = await server({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100 } });
    let calls = 0;
    const c = client({
      url: s.wsUrl,
      // The second call is the in-band refresh before expiry; it fails, so the server closes at expiry.
      getToken: async () => {
        if (++calls === 2) throw new Error('token service down');
        return makeToken({ ...CHAT, expiresIn: calls === 1 ? '1s' : '1h' });
      },
      reconnect: { strategy: 'fixed', delay: 20 },
    });
    c.on('error', () => {});
    await c.connect();
    expect(calls).toBe(1);
    const sub = c.subscribe<{ n: number }>('chat:t');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    await sub.ready();
    const closed = new Promise<{ code: number }>((r) => c.once('disconnected', r));
    expect((await closed).code).toBe(4006);
    await waitFor(() => c.state.status === 'connected', 5000);
    expect(calls).toBe(3);
    await publish(s, { channel: 'chat:t', payload: { n: 1 } });
    await waitFor(() => got.length === 1);
  });

  it('stops on a terminal close code: connect() rejects, no reconnect', async () => {
    const s = await server();
    const errors: HeraldError[] = [];
    const c = client({ url: s.wsUrl, token: 'not-a-jwt' });
    c.on('error', (e) => void errors.push(e));
    const ends: boolean[] = [];
    c.on('disconnected', (i) => void ends.push(i.willReconnect));
    let retries = 0;
    c.on('reconnecting', () => void retries++);
    await expect(c.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(c.state).toMatchObject({ status: 'disconnected', code: 4501 });
    // The client decides on the close itself: no retry is scheduled (the timers' side of this is
    // client-logic.test.ts, on fake time).
    expect(ends).toEqual([false]);
    expect(retries).toBe(0);
    expect(errors.map((e) => e.code)).toContain('unauthorized');
  });

  it('a subscription the server refuses fails with a typed error', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    await c.connect();
    const errors: string[] = [];
    c.on('error', (e) => void errors.push(e.code));
    const sub = c.subscribe('secret:1');
    await expect(sub.ready()).rejects.toMatchObject({ code: 'permission_denied' });
    expect(sub.state).toBe('failed');
    expect(c.getSubscription('secret:1')).toBeUndefined();
    expect(errors).toEqual(['permission_denied']);
  });

  it('unsubscribe stops delivery and emits unsubscribed', async () => {
    const s = await server();
    const c = client({ url: s.wsUrl, token: await makeToken(CHAT) });
    await c.connect();
    const sub = c.subscribe<{ n: number }>('chat:u');
    const got: number[] = [];
    sub.on('message', (m) => void got.push(m.payload.n));
    const other = c.subscribe<{ n: number }>('chat:v');
    const markers: number[] = [];
    other.on('message', (m) => void markers.push(m.payload.n));
    const events: string[] = [];
    c.on('unsubscribed', (i) => void events.push(i.channel));
    await sub.ready();
    await other.ready();
    await publish(s, { channel: 'chat:u', payload: { n: 1 } });
    await waitFor(() => got.length === 1);
    await sub.unsubscribe();
    await publish(s, { channel: 'chat:u', payload: { n: 2 } });
    // Published after it on the same node, to the same socket: n 2 would have arrived first.
    await publish(s, { channel: 'chat:v', payload: { n: 99 } });
    await waitFor(() => markers.includes(99));
    expect(got).toEqual([1]);
    expect(events).toEqual(['chat:u']);
    expect(sub.state).toBe('unsubscribed');
  });
});
