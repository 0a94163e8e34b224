/**
 * Issue 11, M2: the idempotency window is scoped by publisher. A client that publishes first with
 * some msgId must not turn the backend's later message with that msgId into a silent duplicate,
 * and must not learn which msgIds the backend used; clients of different users (and anonymous
 * connections) do not share a window either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';

describe('idempotency window scoped by publisher', () => {
  let server: HeraldServer;
  const sockets: TestSocket[] = [];
  const track = (s: TestSocket) => (sockets.push(s), s);

  beforeAll(async () => {
    server = await startTestServer({
      auth: { anonymous: true },
      channels: { public: ['chat:*', 'rel:*'], clientPublish: ['chat:*', 'rel:*'], namespaces: { rel: { delivery: 'at-least-once' } } },
    });
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await server?.close();
  });

  const clientPublish = (s: TestSocket, channel: string, msgId: string, payload: unknown = msgId) =>
    s.request({ type: 'publish', channel, eventType: 'x', payload, msgId });

  it("a client's msgId does not swallow the backend's later message to a user (the issue's scenario)", async () => {
    const mallory = track(await TestSocket.connect(server, { sub: 'mallory', publish: ['chat:*'] }));
    const bob = track(await TestSocket.connect(server, { sub: 'bob' }));
    expect(await clientPublish(mallory, 'chat:lobby', 'order-42-shipped')).toMatchObject({ type: 'published', msgId: 'order-42-shipped' });
    const res = await api(server, 'POST', '/api/v1/publish', { user: 'bob', eventType: 'order.shipped', payload: { order: 42 }, msgId: 'order-42-shipped' });
    expect(res.status).toBe(200);
    expect(res.body.duplicate).toBeUndefined();
    const got = await bob.next((f) => f.type === 'message');
    expect(got).toMatchObject({ target: 'user', message: { msgId: 'order-42-shipped', eventType: 'order.shipped', source: 'api' } });
  });

  it('on one channel, the API publish after a client publish with the same msgId is delivered, not a duplicate', async () => {
    const reader = track(await TestSocket.connect(server, { sub: 'reader-1' }));
    await reader.subscribe('chat:same');
    const client = track(await TestSocket.connect(server, { sub: 'alice', publish: ['chat:*'] }));
    const fromClient = await clientPublish(client, 'chat:same', 'shared-1', 'from client');
    expect(fromClient.duplicate).toBeUndefined();
    const fromApi = await api(server, 'POST', '/api/v1/publish', { channel: 'chat:same', eventType: 'x', payload: 'from api', msgId: 'shared-1' });
    expect(fromApi.body.duplicate).toBeUndefined();
    expect(fromApi.body.position.offset).toBeGreaterThan(fromClient.position.offset);
    const msgs = await reader.waitMessages(2);
    expect(msgs.map((m) => m.message.payload)).toEqual(['from client', 'from api']);
    expect(msgs.map((m) => m.message.msgId)).toEqual(['shared-1', 'shared-1']);
    // The API's own retry is still a duplicate of the API's message.
    const retry = await api(server, 'POST', '/api/v1/publish', { channel: 'chat:same', eventType: 'x', payload: 'from api', msgId: 'shared-1' });
    expect(retry.body).toMatchObject({ duplicate: true, position: fromApi.body.position });
  });

  it('a client cannot learn whether the API used a msgId', async () => {
    const api1 = await api(server, 'POST', '/api/v1/publish', { channel: 'chat:probe', eventType: 'x', payload: 1, msgId: 'secret-order-7' });
    expect(api1.status).toBe(200);
    const probe = track(await TestSocket.connect(server, { sub: 'mallory', publish: ['chat:*'] }));
    const used = await clientPublish(probe, 'chat:probe', 'secret-order-7');
    const unused = await clientPublish(probe, 'chat:probe', 'secret-order-8');
    expect(used.type).toBe('published');
    expect(used.duplicate).toBeUndefined();
    expect(unused.duplicate).toBeUndefined();
    // The answers differ only in what the client's own publishes decided.
    expect(Object.keys(used).sort()).toEqual(Object.keys(unused).sort());
  });

  it("each user has their own window, across that user's connections; anonymous connections have one each", async () => {
    const alice1 = track(await TestSocket.connect(server, { sub: 'alice', publish: ['chat:*'] }));
    const alice2 = track(await TestSocket.connect(server, { sub: 'alice', publish: ['chat:*'] }));
    const carol = track(await TestSocket.connect(server, { sub: 'carol', publish: ['chat:*'] }));
    const first = await clientPublish(alice1, 'chat:users', 'user-scoped-1');
    expect(first.duplicate).toBeUndefined();
    // The same user retrying from another device is a duplicate of their own message...
    expect(await clientPublish(alice2, 'chat:users', 'user-scoped-1')).toMatchObject({ duplicate: true, position: first.position });
    // ...another user is not.
    expect((await clientPublish(carol, 'chat:users', 'user-scoped-1')).duplicate).toBeUndefined();

    const anon1 = track(await TestSocket.connect(server, null));
    const anon2 = track(await TestSocket.connect(server, null));
    const a1 = await clientPublish(anon1, 'chat:anon', 'anon-scoped-1');
    expect(a1.duplicate).toBeUndefined();
    expect(await clientPublish(anon1, 'chat:anon', 'anon-scoped-1')).toMatchObject({ duplicate: true, position: a1.position });
    expect((await clientPublish(anon2, 'chat:anon', 'anon-scoped-1')).duplicate).toBeUndefined();
  });

  it("a client publish with an API msgId leaves the API's delivery receipt alone", async () => {
    const res = await api(server, 'POST', '/api/v1/publish', { user: 'offline-dave', eventType: 'x', payload: 1, msgId: 'receipt-1', delivery: 'at-least-once' });
    expect(res.status).toBe(200);
    const before = await api(server, 'GET', '/api/v1/messages/receipt-1');
    expect(before.body).toMatchObject({ target: 'user', user: 'offline-dave', state: 'inbox' });
    const reader = track(await TestSocket.connect(server, { sub: 'reader-rel' }));
    await reader.subscribe('rel:room');
    const mallory = track(await TestSocket.connect(server, { sub: 'mallory', publish: ['rel:*'] }));
    const fromClient = await clientPublish(mallory, 'rel:room', 'receipt-1');
    expect(fromClient.type).toBe('published');
    await reader.next((f) => f.type === 'message');
    // Receipts are opened in the publish path, before the publish is answered.
    const after = await api(server, 'GET', '/api/v1/messages/receipt-1');
    expect(after.body).toMatchObject({ target: 'user', user: 'offline-dave', acceptedAt: before.body.acceptedAt });
    expect(after.body.channel).toBeUndefined();
  });
});
