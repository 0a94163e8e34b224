/**
 * @herald/server against a real Herald (in this process, on an ephemeral port) and real WebSocket
 * clients that receive what the SDK publishes. Faults are injected by a real HTTP server between
 * the two (fault-proxy.ts), never by mocking fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient, HeraldError as ClientError } from '@herald/client';
import { CloseCode, HeraldError, HeraldServerClient } from '@herald/server';
import { WebSocket } from 'ws';
import type { HeraldServerClientOptions } from '@herald/server';
import type { HeraldServer } from 'herald';
import { API_KEY, makeToken, startTestServer, TestSocket } from '../../server/test/helpers/server.js';
import type { Frame } from '../../server/test/helpers/server.js';
import { waitFor } from '../../server/test/helpers/wait.js';
import { startFaultProxy } from './fault-proxy.js';
import type { FaultProxy } from './fault-proxy.js';

let herald: HeraldServer;
let proxy: FaultProxy;

beforeAll(async () => {
  herald = await startTestServer({ delivery: { ackTimeoutMs: 60_000 } });
  proxy = await startFaultProxy(herald.url);
});

afterAll(async () => {
  await proxy?.close();
  await herald?.close();
});

function sdk(extra: Partial<HeraldServerClientOptions> = {}): HeraldServerClient {
  return new HeraldServerClient({ url: herald.url, apiKey: API_KEY, ...extra });
}

/** An SDK whose requests pass through the fault proxy; retries without noticeable waits. */
function proxied(extra: Partial<HeraldServerClientOptions> = {}): HeraldServerClient {
  return new HeraldServerClient({ url: proxy.url, apiKey: API_KEY, retries: { attempts: 4, initialDelayMs: 5, maxDelayMs: 2_000 }, ...extra });
}

async function rejection(p: Promise<unknown>): Promise<HeraldError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(HeraldError);
    return err as HeraldError;
  }
  throw new Error('expected a rejection');
}

let sentinels = 0;
/**
 * Publishes a broadcast marker and waits until every socket got it: messages published before it
 * to these sockets have then arrived (one node, one ordered stream per socket), so a test can
 * assert that something did NOT arrive without waiting for a fixed time.
 */
async function settle(...sockets: TestSocket[]): Promise<void> {
  const id = `sentinel-${++sentinels}`;
  await sdk().broadcast('sentinel', id);
  for (const s of sockets) await s.next((f) => f.type === 'message' && f.message.payload === id);
}

const appMessages = (s: TestSocket): Frame[] => s.messages().filter((f) => f.message.eventType !== 'sentinel');

describe('publish to each audience', () => {
  it('publishes to a channel: the subscriber gets the envelope, the result has msgId and position', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'chan-user' });
    await ws.subscribe('sdk:chan');
    const result = await sdk().publishToChannel('sdk:chan', 'chat.message', { text: 'hi' }, { source: 'billing', version: '2.0' });
    expect(result.msgId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(result).toMatchObject({ duplicate: false, attempts: 1, position: { offset: 1 } });
    const m = await ws.next((f) => f.type === 'message');
    expect(m).toMatchObject({ target: 'channel', channel: 'sdk:chan', offset: 1, message: { msgId: result.msgId, eventType: 'chat.message', source: 'billing', version: '2.0', payload: { text: 'hi' }, timestamp: result.timestamp } });
    ws.close();
  });

  it('publishes to a user: every connection of that user, nobody else', async () => {
    const a1 = await TestSocket.connect(herald, { sub: 'alice' });
    const a2 = await TestSocket.connect(herald, { sub: 'alice' });
    const bob = await TestSocket.connect(herald, { sub: 'bob' });
    const result = await sdk().publishToUser('alice', 'notice', { n: 1 });
    expect(result.position).toBeUndefined();
    await settle(a1, a2, bob);
    for (const s of [a1, a2]) expect(appMessages(s).map((f) => [f.target, f.message.msgId])).toEqual([['user', result.msgId]]);
    expect(appMessages(bob)).toEqual([]);
    for (const s of [a1, a2, bob]) s.close();
  });

  it('broadcasts to everyone, and with a tag filter only to matching connections', async () => {
    const pro = await TestSocket.connect(herald, { sub: 'p', tags: { plan: 'pro', region: 'eu' } });
    const free = await TestSocket.connect(herald, { sub: 'f', tags: { plan: 'free', region: 'eu' } });
    const all = await sdk().broadcast('maintenance', { at: '22:00' });
    const promo = await sdk().broadcast('promo', {}, { filter: { and: [{ tag: 'plan', op: 'eq', value: 'pro' }, { tag: 'region', op: 'in', value: ['eu', 'uk'] }] } });
    await settle(pro, free);
    expect(appMessages(pro).map((f) => f.message.msgId)).toEqual([all.msgId, promo.msgId]);
    expect(appMessages(free).map((f) => f.message.msgId)).toEqual([all.msgId]);
    // A filter on a channel publish narrows the channel's subscribers.
    await pro.subscribe('sdk:filtered');
    await free.subscribe('sdk:filtered');
    const narrowed = await sdk().publish({ channel: 'sdk:filtered', eventType: 'x', payload: 1, filter: { tag: 'plan', op: 'eq', value: 'free' } });
    await settle(pro, free);
    expect(appMessages(free).map((f) => f.message.msgId)).toContain(narrowed.msgId);
    expect(appMessages(pro).map((f) => f.message.msgId)).not.toContain(narrowed.msgId);
    pro.close();
    free.close();
  });

  it('a msgId sent twice is a duplicate and is delivered once', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'dup' });
    await ws.subscribe('sdk:dup');
    const first = await sdk().publishToChannel('sdk:dup', 'x', 1, { msgId: 'order-42-created' });
    const again = await sdk().publishToChannel('sdk:dup', 'x', 1, { msgId: 'order-42-created' });
    expect(first).toMatchObject({ msgId: 'order-42-created', duplicate: false });
    expect(again).toMatchObject({ msgId: 'order-42-created', duplicate: true, timestamp: first.timestamp, position: first.position });
    await settle(ws);
    expect(appMessages(ws).map((f) => f.message.msgId)).toEqual(['order-42-created']);
    ws.close();
  });

  it('server refusals keep their stable code and are not retried', async () => {
    const client = proxied();
    const before = proxy.requests.length;
    const err = await rejection(client.publish({ channel: 'no spaces', eventType: 'x', payload: 1 }));
    expect(err).toMatchObject({ code: 'invalid_channel', temporary: false, origin: 'server', httpStatus: 400, attempts: 1 });
    expect(proxy.requests.length - before).toBe(1);
    const bad = await rejection(client.publish({ channel: 'a', user: 'b', eventType: 'x', payload: 1 } as never));
    expect(bad).toMatchObject({ code: 'bad_request', httpStatus: 400, attempts: 1 });
    const wrongKey = await rejection(new HeraldServerClient({ url: herald.url, apiKey: 'not-the-key' }).stats());
    expect(wrongKey).toMatchObject({ code: 'invalid_api_key', httpStatus: 401, temporary: false, attempts: 1 });
  });
});

describe('batch publish', () => {
  it('delivers in order, gives every item a msgId and reports refused items on their own', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'batch' });
    await ws.subscribe('sdk:batch');
    const results = await sdk().publishBatch([
      ...Array.from({ length: 5 }, (_, n) => ({ channel: 'sdk:batch', eventType: 'n', payload: n })),
      { channel: 'bad channel', eventType: 'n', payload: 'x' },
      { user: 'batch', eventType: 'n', payload: 'to-user', msgId: 'mine-1' },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, false, true]);
    const refused = results[5]!;
    if (refused.ok) throw new Error('item 5 should fail');
    expect(refused.error).toMatchObject({ code: 'invalid_channel', origin: 'server' });
    expect(refused.msgId).toEqual(expect.any(String));
    expect(results[6]).toMatchObject({ ok: true, msgId: 'mine-1' });
    expect(new Set(results.map((r) => r.msgId)).size).toBe(7);
    await settle(ws);
    expect(appMessages(ws).map((f) => f.message.payload)).toEqual([0, 1, 2, 3, 4, 'to-user']);
    expect(appMessages(ws).slice(0, 5).map((f) => f.offset)).toEqual([1, 2, 3, 4, 5]);
    ws.close();
  });

  it('a batch whose answer was lost is sent again whole with the same msgIds, and nothing is delivered twice', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'batch2' });
    await ws.subscribe('sdk:batch2');
    const from = proxy.requests.length;
    proxy.plan.push('forward-then-drop');
    const results = await proxied().publishBatch([1, 2, 3].map((n) => ({ channel: 'sdk:batch2', eventType: 'n', payload: n })));
    const tries = proxy.requests.slice(from);
    expect(tries).toHaveLength(2);
    expect(tries[1]!.body).toEqual(tries[0]!.body);
    expect(results.every((r) => r.ok && r.duplicate && r.attempts === 2)).toBe(true);
    await settle(ws);
    expect(appMessages(ws).map((f) => f.message.payload)).toEqual([1, 2, 3]);
    ws.close();
  });
});

describe('retries', () => {
  it('repeats after 503s with the same msgId, then succeeds', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'r503' });
    await ws.subscribe('sdk:r503');
    const from = proxy.requests.length;
    const unavailable = { status: 503, body: { error: { code: 'broker_unavailable', message: 'broker down', temporary: true } } };
    proxy.plan.push(unavailable, unavailable);
    const result = await proxied().publishToChannel('sdk:r503', 'x', 'once');
    expect(result).toMatchObject({ attempts: 3, duplicate: false });
    const ids = proxy.requests.slice(from).map((r) => r.body.msgId);
    expect(ids).toEqual([result.msgId, result.msgId, result.msgId]);
    await settle(ws);
    expect(appMessages(ws).map((f) => f.message.msgId)).toEqual([result.msgId]);
    ws.close();
  });

  it('a publish whose answer was lost is repeated and reported as a duplicate, delivered once', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'lost' });
    await ws.subscribe('sdk:lost');
    proxy.plan.push('forward-then-drop');
    const result = await proxied().publishToChannel('sdk:lost', 'x', 'only-once');
    expect(result).toMatchObject({ attempts: 2, duplicate: true });
    await settle(ws);
    expect(appMessages(ws).map((f) => f.message.payload)).toEqual(['only-once']);
    ws.close();
  });

  it('waits as long as a 429 asks (details.retryAfterMs, else Retry-After)', async () => {
    proxy.plan.push({ status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down', temporary: true, details: { retryAfterMs: 300 } } } });
    let started = Date.now();
    const hinted = await proxied().stats();
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(hinted.node).toEqual(expect.any(String));

    proxy.plan.push({ status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down', temporary: true } } });
    started = Date.now();
    const result = await proxied().broadcast('x', 'after-429');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(result.attempts).toBe(2);
  });

  it('fails at once when Retry-After is longer than retries.maxDelayMs', async () => {
    const from = proxy.requests.length;
    proxy.plan.push({ status: 429, headers: { 'retry-after': '30' }, body: { error: { code: 'rate_limited', message: 'slow down', temporary: true } } });
    const err = await rejection(proxied().broadcast('x', 1));
    expect(err).toMatchObject({ code: 'rate_limited', temporary: true, httpStatus: 429, attempts: 1 });
    expect(proxy.requests.length - from).toBe(1);
  });

  it('an answer that is not Herald\'s (a proxy\'s HTML 502) is temporary and retried', async () => {
    proxy.plan.push({ status: 502, body: '<html>bad gateway</html>' });
    const result = await proxied().stats();
    expect(result.connections).toEqual(expect.any(Number));
    proxy.plan.push({ status: 502, body: '<html>bad gateway</html>' });
    const err = await rejection(proxied({ retries: false }).stats());
    expect(err).toMatchObject({ code: 'unexpected_response', temporary: true, httpStatus: 502, origin: 'sdk', attempts: 1 });
  });

  it('gives up after retries.attempts with the last error', async () => {
    const from = proxy.requests.length;
    const overloaded = { status: 503, body: { error: { code: 'overloaded', message: 'busy', temporary: true } } };
    proxy.plan.push(overloaded, overloaded, overloaded);
    const err = await rejection(proxied({ retries: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 } }).publishToUser('nobody', 'x', 1));
    expect(err).toMatchObject({ code: 'overloaded', temporary: true, httpStatus: 503, attempts: 3 });
    expect(proxy.requests.length - from).toBe(3);
    expect(new Set(proxy.requests.slice(from).map((r) => r.body.msgId)).size).toBe(1);
  });

  it('an attempt that does not finish within timeoutMs is a temporary request_timeout, retried', async () => {
    const from = proxy.requests.length;
    proxy.plan.push('hang');
    const result = await proxied({ timeoutMs: 300 }).publishToUser('nobody', 'x', 1);
    expect(result.attempts).toBe(2);
    expect(proxy.requests.slice(from).map((r) => r.body.msgId)).toEqual([result.msgId, result.msgId]);

    proxy.plan.push('hang', 'hang');
    const started = Date.now();
    const err = await rejection(proxied({ timeoutMs: 200, retries: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 } }).stats());
    expect(err).toMatchObject({ code: 'request_timeout', temporary: true, origin: 'sdk', attempts: 2, details: { timeoutMs: 200 } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('a server that cannot be reached is a temporary connection_failed', async () => {
    const dead = await startFaultProxy(null);
    await dead.close();
    const err = await rejection(new HeraldServerClient({ url: dead.url, apiKey: API_KEY, retries: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 } }).stats());
    expect(err).toMatchObject({ code: 'connection_failed', temporary: true, origin: 'sdk', attempts: 2 });
    expect(err.message).toContain('ECONNREFUSED');
  });
});

describe('connections', () => {
  it('lists channels, a user\'s connections, stats of every node and the live nodes', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'lister', tags: { plan: 'pro' } });
    await ws.subscribe('sdk:list:a');
    const client = sdk();
    expect(await client.channels('sdk:list:')).toEqual([{ channel: 'sdk:list:a', subscribers: 1 }]);
    const conns = await client.userConnections('lister');
    expect(conns).toEqual([expect.objectContaining({ connectionId: ws.info.connectionId, user: 'lister', tags: { plan: 'pro' }, channels: ['sdk:list:a'] })]);
    expect(await client.userConnections('nobody-here')).toEqual([]);
    const stats = await client.stats();
    expect(stats.connections).toBeGreaterThanOrEqual(1);
    expect(stats.node).toBe(ws.info.node);
    expect(stats.nodes).toEqual({ replied: [ws.info.node], missing: [] });
    expect(stats.byNode.map((n) => n.node)).toEqual([ws.info.node]);
    expect(stats.totals.connections).toBe(stats.byNode[0]!.connections);
    const nodes = await client.nodes();
    expect(nodes).toEqual([expect.objectContaining({ node: ws.info.node, connections: expect.any(Number), version: expect.any(String) })]);
    ws.close();
  });

  it('disconnectConnection closes the client with 4502 and the reason; an unknown id is connection_not_found', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'dc' });
    await sdk().disconnectConnection(ws.info.connectionId, { reason: 'banned' });
    expect(await ws.closed).toEqual({ code: CloseCode.FORCE_DISCONNECT, reason: 'banned' });
    const err = await rejection(sdk().disconnectConnection(ws.info.connectionId));
    expect(err).toMatchObject({ code: 'connection_not_found', httpStatus: 404, temporary: false, attempts: 1 });
  });

  it('disconnectUser with reconnect closes every connection of the user with 4005', async () => {
    const a = await TestSocket.connect(herald, { sub: 'du' });
    const b = await TestSocket.connect(herald, { sub: 'du' });
    expect(await sdk().disconnectUser('du', { reconnect: true, reason: 'rebalancing' })).toBe(2);
    for (const s of [a, b]) expect(await s.closed).toEqual({ code: CloseCode.FORCE_RECONNECT, reason: 'rebalancing' });
    expect(await sdk().disconnectUser('du')).toBe(0);
  });
});

describe('requestClient', () => {
  it('round trip with a client that answers; its error comes back as origin "client"', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'rpc' });
    ws.ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as Frame;
      if (f.type !== 'request') return;
      if (f.method === 'getLocation') ws.send({ type: 'response', correlationId: f.correlationId, data: { city: 'Lyon', asked: f.data } });
      if (f.method === 'refuse') ws.send({ type: 'response', correlationId: f.correlationId, error: { code: 'not_allowed', message: 'user said no', temporary: false } });
    });
    const client = sdk();
    const data = await client.requestClient<{ city: string; asked: unknown }>(ws.info.connectionId, 'getLocation', { precise: false }, 5000);
    expect(data).toEqual({ city: 'Lyon', asked: { precise: false } });
    const err = await rejection(client.requestClient(ws.info.connectionId, 'refuse'));
    expect(err).toMatchObject({ code: 'not_allowed', message: 'user said no', origin: 'client', temporary: false });
    ws.close();
  });

  it('a client that does not answer gives the server\'s request_timeout, not retried', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'silent' });
    const from = proxy.requests.length;
    const err = await rejection(proxied().requestClient(ws.info.connectionId, 'ignored', null, 200));
    expect(err).toMatchObject({ code: 'request_timeout', httpStatus: 504, origin: 'server', attempts: 1 });
    expect(proxy.requests.length - from).toBe(1);
    expect(proxy.requests[from]!.body).toEqual({ method: 'ignored', data: null, timeoutMs: 200 });
    ws.close();
  });

  it('is not repeated after a lost answer (the method may have run), but is after a 503', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'rpc2' });
    let calls = 0;
    ws.ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as Frame;
      if (f.type === 'request') ws.send({ type: 'response', correlationId: f.correlationId, data: ++calls });
    });
    proxy.plan.push('forward-then-drop');
    const err = await rejection(proxied().requestClient(ws.info.connectionId, 'charge'));
    expect(err).toMatchObject({ code: 'connection_failed', temporary: true, attempts: 1 });
    expect(calls).toBe(1);
    proxy.plan.push({ status: 503, body: { error: { code: 'overloaded', message: 'too many pending', temporary: true } } });
    expect(await proxied().requestClient(ws.info.connectionId, 'charge')).toBe(2);
    ws.close();
  });

  it('with @herald/client on the other end: a subscription gets the publish, onRequest handlers answer', async () => {
    const client = new HeraldClient({ url: herald.wsUrl, token: await makeToken({ sub: 'sdk-pair' }), WebSocket: WebSocket as never, reconnect: false, browserEvents: false });
    try {
      const received: unknown[] = [];
      client.subscribe('sdk:pair').on('message', (m) => void received.push(m.payload));
      client.onRequest('cart.total', (data) => ({ total: (data as { items: number[] }).items.reduce((a, b) => a + b, 0) }));
      client.onRequest('reserve', () => {
        throw new ClientError('out_of_stock', 'nothing left', { sku: 'A1' }, false);
      });
      await client.connect();
      await waitFor(async () => (await sdk().channels('sdk:pair')).length === 1, 5000, 'the subscription to reach the server');
      await sdk().publishToChannel('sdk:pair', 'x', { hello: 'client' });
      await waitFor(() => received.length === 1, 5000, 'the client to receive the publish');
      expect(received).toEqual([{ hello: 'client' }]);
      const id = client.connectionId!;
      expect(await sdk().requestClient(id, 'cart.total', { items: [2, 3, 5] })).toEqual({ total: 10 });
      const err = await rejection(sdk().requestClient(id, 'reserve', {}));
      expect(err).toMatchObject({ code: 'out_of_stock', message: 'nothing left', origin: 'client', temporary: false });
    } finally {
      client.close();
    }
  });

  it('an unknown connection is connection_not_found', async () => {
    const err = await rejection(sdk().requestClient('herald-nope-1', 'x'));
    expect(err).toMatchObject({ code: 'connection_not_found', httpStatus: 404 });
  });
});

describe('receipts', () => {
  it('an at-least-once publish with receipts: the receipt follows delivery and the ACK', async () => {
    const ws = await TestSocket.connect(herald, { sub: 'rcpt' });
    await ws.subscribe('sdk:rcpt');
    const client = sdk();
    const { msgId } = await client.publishToChannel('sdk:rcpt', 'order.shipped', { order: 42 }, { delivery: 'at-least-once', receipts: true });
    const m = await ws.next((f) => f.type === 'message');
    expect(m.ack).toBe(true);
    const delivered = await client.getReceipt(msgId);
    expect(delivered).toMatchObject({ msgId, mode: 'at-least-once', channel: 'sdk:rcpt', state: 'delivered', counts: { delivered: 1, acknowledged: 0 } });
    expect(delivered?.recipients).toEqual([expect.objectContaining({ connectionId: ws.info.connectionId, user: 'rcpt', attempts: 1 })]);
    ws.send({ type: 'ack', msgIds: [msgId] });
    await waitFor(async () => (await client.getReceipt(msgId))?.state === 'acknowledged', 5000, 'the receipt to show the ACK');
    const acked = await client.getReceipt(msgId);
    expect(acked?.acknowledgedBy).toEqual([expect.objectContaining({ user: 'rcpt', connectionId: ws.info.connectionId })]);
    expect(acked?.recipients?.[0]?.ackedAt).toEqual(expect.any(Number));
    ws.close();
  });

  it('an unknown msgId has no receipt (null)', async () => {
    expect(await sdk().getReceipt('never-published')).toBeNull();
  });
});

describe("Herald's own rate limiter", () => {
  it('a real 429 is waited out as its retryAfterMs says, and the publish then succeeds once', async () => {
    const limited = await startTestServer({ rateLimits: { apiKey: { requests: { perSecond: 1, burst: 2 } } } });
    try {
      const ws = await TestSocket.connect(limited, { sub: 'rl' });
      await ws.subscribe('sdk:rl');
      const patient = new HeraldServerClient({ url: limited.url, apiKey: API_KEY, retries: { attempts: 5, initialDelayMs: 1, maxDelayMs: 2_000 } });
      const impatient = new HeraldServerClient({ url: limited.url, apiKey: API_KEY, retries: { attempts: 5, initialDelayMs: 1, maxDelayMs: 1 } });
      // The burst of 2 goes to the first two calls; the third is refused until a token refills.
      await patient.publishToChannel('sdk:rl', 'x', 1);
      await patient.publishToChannel('sdk:rl', 'x', 2);
      const err = await rejection(impatient.publishToChannel('sdk:rl', 'x', 'refused'));
      expect(err).toMatchObject({ code: 'rate_limited', httpStatus: 429, temporary: true, attempts: 1, details: { limit: 'apiKey.requests', retryAfterMs: expect.any(Number) } });
      const third = await patient.publishToChannel('sdk:rl', 'x', 3);
      expect(third.attempts).toBeGreaterThanOrEqual(2);
      expect(third.duplicate).toBe(false);
      await ws.next((f) => f.type === 'message' && f.message.payload === 3);
      expect(ws.messages().map((f) => f.message.payload)).toEqual([1, 2, 3]);
      ws.close();
    } finally {
      await limited.close();
    }
  });
});
