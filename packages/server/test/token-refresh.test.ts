/**
 * Credentials over a connection's life, on a real Herald: the in-band `refresh` frame (same user,
 * new expiry, rights and tags; subscriptions kept or revoked with `subscription_revoked`), the
 * refresh proxy hook against a real backend, the close at expiry, and subscription tokens.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { TestBackend } from './helpers/backend.js';
import { makeToken, publishMarker, SECRET, startTestServer, TestSocket, type TokenClaims } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const nowSec = () => Math.floor(Date.now() / 1000);

function subscriptionToken(claims: { sub: string; channel: string; exp?: number }): Promise<string> {
  return new SignJWT({ channel: claims.channel })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? nowSec() + 600)
    .sign(new TextEncoder().encode(SECRET));
}

const sockets: TestSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

describe('in-band refresh and subscription tokens', () => {
  let server: HeraldServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  async function connect(claims: TokenClaims): Promise<TestSocket> {
    const s = await TestSocket.connect(server, claims);
    sockets.push(s);
    return s;
  }

  it('keeps the subscriptions still granted, revokes the others with subscription_revoked, and applies the new tags and expiry', async () => {
    const s = await connect({ sub: 'r1', channels: ['a:*', 'b:*'], tags: { plan: 'free' }, expiresIn: nowSec() + 2 });
    await s.subscribe('a:1');
    await s.subscribe('b:1');
    const exp = nowSec() + 3600;
    const reply = await s.request({ type: 'refresh', token: await makeToken({ sub: 'r1', channels: ['a:*'], tags: { plan: 'pro' }, expiresIn: exp }) });
    expect(reply).toEqual({ type: 'refreshed', id: reply.id, expiresAt: exp });
    const revoked = s.frames.find((f) => f.type === 'unsubscribed');
    expect(revoked).toEqual({ type: 'unsubscribed', channel: 'b:1', error: { code: 'subscription_revoked', message: expect.any(String), temporary: false } });
    // a:1 still delivers; b:1 no longer does (published before the marker, on this one node).
    await server.publish({ channel: 'b:1', eventType: 'gone', payload: 1 });
    await publishMarker(server, s, { channel: 'a:1' });
    expect(s.messages().some((f) => f.message.eventType === 'gone')).toBe(false);
    // The new tags are indexed, the old ones are not.
    const { msgId } = await server.publish({ broadcast: true, filter: { tag: 'plan', op: 'eq', value: 'pro' }, eventType: 'pro', payload: 1 });
    await s.next((f) => f.type === 'message' && f.message.msgId === msgId);
    // The old token's expiry passes; the connection stays, under the new one.
    await waitFor(() => nowSec() > exp - 3600 + 2 + 1, 5000, 'the first token expiry to pass');
    expect((await s.request({ type: 'subscribe', channel: 'a:2' })).type).toBe('subscribed');
  });

  it('refuses a token for another user, an invalid or expired one, and keeps the connection and its token', async () => {
    const s = await connect({ sub: 'r2', channels: ['a:*'] });
    await s.subscribe('a:1');
    expect((await s.request({ type: 'refresh', token: await makeToken({ sub: 'someone-else' }) })).error).toMatchObject({ code: 'permission_denied' });
    expect((await s.request({ type: 'refresh', token: await makeToken({ sub: 'r2', secret: 'wrong-secret-wrong-secret-wrong' }) })).error).toMatchObject({ code: 'unauthorized' });
    expect((await s.request({ type: 'refresh', token: await makeToken({ sub: 'r2', expiresIn: nowSec() - 60 }) })).error).toMatchObject({ code: 'token_expired' });
    expect((await s.request({ type: 'refresh', token: await subscriptionToken({ sub: 'r2', channel: 'a:1' }) })).error).toMatchObject({ code: 'unauthorized' });
    await publishMarker(server, s, { channel: 'a:1' });
  });

  it('an anonymous connection cannot refresh into a user', async () => {
    const anon = await startTestServer({ auth: { anonymous: true } });
    try {
      const s = await TestSocket.connect(anon, null);
      expect((await s.request({ type: 'refresh', token: await makeToken({ sub: 'u' }) })).error).toMatchObject({ code: 'permission_denied' });
      s.close();
    } finally {
      await anon.close();
    }
  });

  it('closes a connection that was not refreshed with 4006 at its expiry', async () => {
    const s = await connect({ sub: 'r3', expiresIn: nowSec() + 1 });
    expect((await s.closed).code).toBe(4006);
  });

  it('a subscription token grants one channel to its user only', async () => {
    const s = await connect({ sub: 'st', channels: [] });
    expect((await s.request({ type: 'subscribe', channel: 'room:1' })).error).toMatchObject({ code: 'permission_denied' });
    expect((await s.request({ type: 'subscribe', channel: 'room:1', token: await subscriptionToken({ sub: 'st', channel: 'room:1' }) })).type).toBe('subscribed');
    await publishMarker(server, s, { channel: 'room:1' });
    expect((await s.request({ type: 'subscribe', channel: 'room:2', token: await subscriptionToken({ sub: 'st', channel: 'room:1' }) })).error).toMatchObject({ code: 'permission_denied' });
    expect((await s.request({ type: 'subscribe', channel: 'room:3', token: await subscriptionToken({ sub: 'other', channel: 'room:3' }) })).error).toMatchObject({ code: 'permission_denied' });
    expect((await s.request({ type: 'subscribe', channel: 'room:4', token: await subscriptionToken({ sub: 'st', channel: 'room:4', exp: nowSec() - 60 }) })).error).toMatchObject({ code: 'token_expired' });
    // The grant survives a refresh whose rights do not include the channel.
    expect((await s.request({ type: 'refresh', token: await makeToken({ sub: 'st', channels: [] }) })).type).toBe('refreshed');
    await publishMarker(server, s, { channel: 'room:1' });
    expect(s.frames.some((f) => f.type === 'unsubscribed')).toBe(false);
  });

  it('a subscription token cannot open a connection', async () => {
    const s = await TestSocket.open(server.wsUrl);
    const reply = await s.request({ type: 'connect', token: await subscriptionToken({ sub: 'st', channel: 'room:1' }) });
    expect(reply.error).toMatchObject({ code: 'unauthorized' });
    expect((await s.closed).code).toBe(4501);
  });
});

describe('refresh hook', () => {
  let backend: TestBackend;
  let server: HeraldServer;
  beforeAll(async () => {
    backend = await TestBackend.start();
    server = await startTestServer({ proxy: { refresh: { url: `${backend.url}/refresh`, timeoutMs: 500, aheadMs: 3500 } } });
  });
  afterEach(() => {
    backend.handlers.clear();
    backend.requests.length = 0;
  });
  afterAll(async () => {
    await server?.close();
    await backend?.close();
  });

  it('asks the backend before expiry and applies its answer without a reconnect', async () => {
    const exp = nowSec() + 3600;
    backend.on('refresh', () => ({ result: { expiresAt: exp, channels: ['a:*'], tags: { tier: 'gold' } } }));
    const s = await TestSocket.connect(server, { sub: 'h1', channels: ['a:*', 'b:*'], expiresIn: nowSec() + 4 });
    sockets.push(s);
    await s.subscribe('a:1');
    await s.subscribe('b:1');
    const revoked = await s.next((f) => f.type === 'unsubscribed', 5000);
    expect(revoked).toMatchObject({ channel: 'b:1', error: { code: 'subscription_revoked' } });
    expect(backend.requestsTo('refresh')).toMatchObject([{ hook: 'refresh', user: 'h1', connectionId: s.info.connectionId }]);
    await waitFor(() => nowSec() > exp - 3600 + 4 + 1, 6000, 'the first expiry to pass');
    await publishMarker(server, s, { channel: 'a:1' });
    const { msgId } = await server.publish({ broadcast: true, filter: { tag: 'tier', op: 'eq', value: 'gold' }, eventType: 'g', payload: 1 });
    await s.next((f) => f.type === 'message' && f.message.msgId === msgId);
  });

  it('a refusal closes with 4006; {disconnect} with the backend code', async () => {
    backend.on('refresh', (b) => (b.user === 'h2' ? { error: { code: 'revoked', message: 'session revoked' } } : { disconnect: { code: 4520, reason: 'banned' } }));
    const a = await TestSocket.connect(server, { sub: 'h2', expiresIn: nowSec() + 3 });
    const b = await TestSocket.connect(server, { sub: 'h3', expiresIn: nowSec() + 3 });
    expect(await a.closed).toMatchObject({ code: 4006 });
    expect(await b.closed).toEqual({ code: 4520, reason: 'banned' });
  });

  it('an unavailable backend is asked again until expiry, then the connection closes with 4006', async () => {
    backend.on('refresh', () => ({ raw: { status: 503, body: 'down' } }));
    const s = await TestSocket.connect(server, { sub: 'h4', expiresIn: nowSec() + 4 });
    expect((await s.closed).code).toBe(4006);
    expect(backend.requestsTo('refresh').length).toBeGreaterThanOrEqual(2); // asked again while unavailable
  });
});

describe('@herald/client getToken against a real Herald', () => {
  it('refreshes in band before expiry: same connection, subscription kept, messages keep coming', async () => {
    const { HeraldClient } = await import('@herald/client');
    const { default: WebSocket } = await import('ws');
    const server = await startTestServer({ origins: { allowed: ['*'] } });
    const expiries: number[] = [];
    const getToken = async () => {
      const exp = nowSec() + (expiries.length === 0 ? 3 : 3600);
      expiries.push(exp);
      return makeToken({ sub: 'sdk', channels: ['live:*'], expiresIn: exp });
    };
    const client = new HeraldClient({ url: server.wsUrl, WebSocket: WebSocket as never, getToken, refreshAhead: 2000 });
    try {
      await client.connect();
      const connectionId = client.connectionId;
      const got: unknown[] = [];
      const sub = client.subscribe('live:1');
      sub.on('message', (m) => void got.push(m.payload));
      await waitFor(() => sub.state === 'subscribed', 3000, 'subscribed');
      await waitFor(() => expiries.length === 2, 5000, 'the in-band refresh');
      await waitFor(() => nowSec() > expiries[0]! + 1, 8000, 'the first token expiry to pass');
      await server.publish({ channel: 'live:1', eventType: 'e', payload: 'after' });
      await waitFor(() => got.includes('after'), 3000, 'a message after the first expiry');
      expect(client.connectionId).toBe(connectionId);
      expect(client.state.status).toBe('connected');
    } finally {
      client.close();
      await server.close();
    }
  });
});
