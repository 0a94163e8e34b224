import { afterEach, describe, expect, it } from 'vitest';
import { configFromEnv } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { api, makeToken, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

describe('races and pipelining', () => {
  it('publishes a msgId once even when the retry races the original', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('race');
    const body = { channel: 'race', eventType: 'x', payload: 1, msgId: 'same-id' };
    const [a, b] = await Promise.all([api(server, 'POST', '/api/v1/publish', body), api(server, 'POST', '/api/v1/publish', body)]);
    expect([a.body.duplicate, b.body.duplicate].filter(Boolean)).toHaveLength(1);
    expect(a.body.position).toEqual(b.body.position);
    await api(server, 'POST', '/api/v1/publish', { channel: 'race', eventType: 'x', payload: 2, msgId: 'marker' }); // a second copy would precede it
    expect((await s.waitMessages(2)).map((m) => m.message.msgId)).toEqual(['same-id', 'marker']);
  });

  it('accepts frames pipelined right behind connect, in order', async () => {
    server = await startTestServer();
    const s = await TestSocket.open(server.wsUrl);
    s.send({ type: 'connect', id: 1, token: await makeToken() });
    s.send({ type: 'subscribe', id: 2, channel: 'p1' });
    s.send({ type: 'subscribe', id: 3, channel: 'p2' });
    expect(await s.next()).toMatchObject({ type: 'connected', id: 1 });
    expect(await s.next()).toMatchObject({ type: 'subscribed', id: 2 });
    expect(await s.next()).toMatchObject({ type: 'subscribed', id: 3 });
  });

  it('refuses a second connect sent before the first completed', async () => {
    server = await startTestServer();
    const s = await TestSocket.open(server.wsUrl);
    const token = await makeToken();
    s.send({ type: 'connect', id: 1, token });
    s.send({ type: 'connect', id: 2, token });
    expect(await s.next()).toMatchObject({ type: 'connected', id: 1 });
    expect(await s.next()).toMatchObject({ type: 'error', id: 2, error: { code: 'already_connected' } });
  });

  it('accepts disconnect calls without a body', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server, { sub: 'z' });
    const res = await fetch(`${server.url}/api/v1/users/z/disconnect`, { method: 'POST', headers: { authorization: 'Bearer test-api-key-123' } });
    expect(res.status).toBe(200);
    expect((await s.closed).code).toBe(4502);
  });

  it('ignores HERALD_ variables that name no config section', () => {
    expect(configFromEnv({ HERALD_API_KEY: 'for-the-cli', HERALD_CONFIG: 'x.json', HERALD_LOG__LEVEL: 'warn' })).toEqual({ log: { level: 'warn' } });
  });
});
