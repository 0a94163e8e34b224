/**
 * Path parameters within the documented limits reach their routes, and what fastify's router
 * refuses before any route runs (bad percent-encoding, an over-long parameter) gets Herald's error
 * body. Found by the protocol fuzzer (issue 11): fastify's default maxParamLength of 100 answered
 * 414 with its own body for 150-character user ids and 155-character channels the API documents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, makeToken, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => server.close());

describe('path parameters', () => {
  it('takes a user id of 256 characters, as tokens allow, on the user routes', async () => {
    const user = 'u'.repeat(256);
    const s = await TestSocket.connect(server, { sub: user });
    const listed = await api(server, 'GET', `/api/v1/users/${user}/connections`);
    expect(listed.status).toBe(200);
    expect(listed.body.connections.map((c: { connectionId: string }) => c.connectionId)).toEqual([s.info.connectionId]);
    const closed = await api(server, 'POST', `/api/v1/users/${user}/disconnect`, {});
    expect(closed.body).toMatchObject({ disconnected: 1 });
    expect((await s.closed).code).toBe(4502);
  });

  it('polls a channel of 255 characters', async () => {
    const channel = `c:${'x'.repeat(253)}`;
    const res = await fetch(`${server.url}/poll/v1/channels/${channel}/messages`, { headers: { authorization: `Bearer ${await makeToken()}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { channel: string }).channel).toBe(channel);
  });

  it('looks up a receipt by a 128-character msgId', async () => {
    const res = await api(server, 'GET', `/api/v1/messages/${'m'.repeat(128)}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('answers a parameter past the schema limit with bad_request in Herald\'s body', async () => {
    const res = await api(server, 'GET', `/api/v1/users/${'u'.repeat(257)}/connections`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
  });

  it('answers a parameter past the router\'s limit with bad_request in Herald\'s body', async () => {
    const res = await api(server, 'GET', `/api/v1/users/${'u'.repeat(5000)}/connections`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'bad_request', message: expect.any(String), temporary: false } });
  });

  it('answers a path that is not valid percent-encoded UTF-8 with bad_request in Herald\'s body', async () => {
    const res = await api(server, 'GET', '/api/v1/users/%ED%A0%80/connections');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'bad_request', message: expect.any(String), temporary: false } });
  });
});
