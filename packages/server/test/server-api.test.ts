import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

describe('HTTP server API', () => {
  it('publishes a batch in order with a result per message', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('b');
    const res = await api(server, 'POST', '/api/v1/publish/batch', {
      messages: [
        { channel: 'b', eventType: 'n', payload: 1 },
        { channel: 'bad name', eventType: 'n', payload: 2 },
        { channel: 'b', eventType: 'n', payload: 3 },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.results[0].position.offset).toBe(1);
    expect(res.body.results[1].error.code).toBe('invalid_channel');
    expect(res.body.results[2].position.offset).toBe(2);
    const msgs = await s.waitMessages(2);
    expect(msgs.map((m) => m.message.payload)).toEqual([1, 3]);
  });

  it('treats a repeated msgId within the window as a duplicate, delivered once', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('idem');
    const body = { channel: 'idem', eventType: 'x', payload: 1, msgId: 'order-42-created' };
    const a = await api(server, 'POST', '/api/v1/publish', body);
    const b = await api(server, 'POST', '/api/v1/publish', body);
    expect(a.body.duplicate).toBeUndefined();
    expect(b.body).toMatchObject({ msgId: 'order-42-created', duplicate: true, position: a.body.position });
    await api(server, 'POST', '/api/v1/publish', { channel: 'idem', eventType: 'x', payload: 2, msgId: 'marker' }); // a second copy would precede it
    expect((await s.waitMessages(2)).map((m) => m.message.msgId)).toEqual(['order-42-created', 'marker']);
  });

  it('lists channels with subscriber counts and a user\'s connections', async () => {
    server = await startTestServer();
    const a = await TestSocket.connect(server, { sub: 'ann', tags: { device: 'ios' } });
    const b = await TestSocket.connect(server, { sub: 'ann' });
    const c = await TestSocket.connect(server, { sub: 'cid' });
    await a.subscribe('room:1');
    await b.subscribe('room:1');
    await c.subscribe('room:2');
    const channels = await api(server, 'GET', '/api/v1/channels');
    expect(channels.body.channels).toEqual([{ channel: 'room:1', subscribers: 2 }, { channel: 'room:2', subscribers: 1 }]);
    expect((await api(server, 'GET', '/api/v1/channels?prefix=room:2')).body.channels).toHaveLength(1);
    const conns = await api(server, 'GET', '/api/v1/users/ann/connections');
    expect(conns.body.connections).toHaveLength(2);
    expect(conns.body.connections.map((x: any) => x.connectionId).sort()).toEqual([a.info.connectionId, b.info.connectionId].sort());
    expect(conns.body.connections.find((x: any) => x.connectionId === a.info.connectionId)).toMatchObject({ user: 'ann', tags: { device: 'ios' }, channels: ['room:1'] });
    expect((await api(server, 'GET', '/api/v1/users/nobody/connections')).body.connections).toEqual([]);
  });

  it('disconnects a connection or all of a user\'s connections with the right close code', async () => {
    server = await startTestServer();
    const a = await TestSocket.connect(server, { sub: 'eve' });
    const b = await TestSocket.connect(server, { sub: 'eve' });
    const c = await TestSocket.connect(server, { sub: 'fred' });
    expect((await api(server, 'POST', `/api/v1/connections/${c.info.connectionId}/disconnect`, { reconnect: true })).body).toEqual({ disconnected: 1, nodes: { replied: [server.node.name], missing: [] } });
    expect((await c.closed).code).toBe(4005);
    expect((await api(server, 'POST', '/api/v1/users/eve/disconnect', { reason: 'banned' })).body).toEqual({ disconnected: 2, nodes: { replied: [server.node.name], missing: [] } });
    expect(await a.closed).toEqual({ code: 4502, reason: 'banned' });
    expect((await b.closed).code).toBe(4502);
    expect(await api(server, 'POST', '/api/v1/connections/nope/disconnect', {})).toMatchObject({ status: 404, body: { error: { code: 'connection_not_found' } } });
  });

  it('sends a request to a client and returns its response (server → client RPC)', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    const pending = api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'getLocation', data: { precise: true } });
    const req = await s.next((f) => f.type === 'request');
    expect(req).toMatchObject({ method: 'getLocation', data: { precise: true } });
    s.send({ type: 'response', correlationId: req.correlationId, data: { lat: 1, lon: 2 } });
    expect((await pending).body).toEqual({ data: { lat: 1, lon: 2 } });

    const failing = api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'x' });
    const req2 = await s.next((f) => f.type === 'request');
    s.send({ type: 'response', correlationId: req2.correlationId, error: { code: 'unknown_method', message: 'no' } });
    expect((await failing).body).toMatchObject({ error: { code: 'unknown_method' } });

    const slow = await api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'ignore', timeoutMs: 100 });
    expect(slow).toMatchObject({ status: 504, body: { error: { code: 'request_timeout' } } });
  });

  it('fails a pending server→client request when the connection drops', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    const pending = api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/request`, { method: 'x', timeoutMs: 5000 });
    await s.next((f) => f.type === 'request');
    s.close();
    expect(await pending).toMatchObject({ status: 404, body: { error: { code: 'connection_not_found' } } });
  });

  it('answers client requests matched by correlationId (client → server RPC)', async () => {
    server = await startTestServer({ rpc: { echo: true } });
    server.node.rpc.handle('sum', async (_s, data) => (data as number[]).reduce((a, b) => a + b, 0));
    const s = await TestSocket.connect(server);
    s.send({ type: 'request', correlationId: 'c-2', method: 'sum', data: [1, 2, 3] });
    s.send({ type: 'request', correlationId: 'c-1', method: 'echo', data: { hello: 'world' } });
    s.send({ type: 'request', correlationId: 'c-3', method: 'nope' });
    const responses = [await s.next((f) => f.type === 'response'), await s.next((f) => f.type === 'response'), await s.next((f) => f.type === 'response')];
    const by = Object.fromEntries(responses.map((r) => [r.correlationId, r]));
    expect(by['c-1']).toEqual({ type: 'response', correlationId: 'c-1', data: { hello: 'world' } });
    expect(by['c-2']).toEqual({ type: 'response', correlationId: 'c-2', data: 6 });
    expect(by['c-3']).toMatchObject({ error: { code: 'unknown_method' } });
  });

  it('serves stats, metrics, health, readiness and the OpenAPI docs', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('m');
    await server.publish({ channel: 'm', eventType: 'x', payload: 1 });
    await s.next((f) => f.type === 'message');
    const stats = await api(server, 'GET', '/api/v1/stats');
    expect(stats.body).toMatchObject({ connections: 1, subscriptions: 1, channels: 1 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['herald_connections 1', 'herald_subscriptions 1', 'herald_deliveries_total 1', 'herald_delivery_latency_seconds_bucket', 'herald_slow_consumer_closes_total', 'herald_queued_bytes', 'nodejs_eventloop_lag_seconds', 'herald_publishes_total{target="channel"} 1']) {
      expect(metrics).toContain(name);
    }
    // Collectors that walk every socket or open file on each scrape are left out.
    for (const name of ['process_open_fds', 'nodejs_active_handles', 'nodejs_active_resources']) expect(metrics).not.toMatch(new RegExp(`^${name}`, 'm'));
    expect(metrics).toMatch(/^process_resident_memory_bytes/m);
    expect(await api(server, 'GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api(server, 'GET', '/readyz')).toMatchObject({ status: 200 });
    const doc = await api(server, 'GET', '/docs/json');
    expect(doc.body.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/publish', '/api/v1/publish/batch', '/api/v1/channels', '/api/v1/users/{user}/connections', '/api/v1/connections/{id}/request', '/api/v1/stats']));
    expect((await fetch(`${server.url}/docs/`)).status).toBe(200);
  });
});
