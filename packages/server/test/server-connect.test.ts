import { generateKeyPair, exportSPKI, SignJWT } from 'jose';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { makeToken, nextUpgrade, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function unsignedToken(sub: string): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub, channels: ['*'], exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}

describe('connect and authentication', () => {
  it('accepts a valid HS256 token and announces the heartbeat', async () => {
    server = await startTestServer({ heartbeat: { intervalMs: 5000, pongTimeoutMs: 2000 } });
    const s = await TestSocket.connect(server, { sub: 'alice' });
    expect(s.info).toMatchObject({ type: 'connected', user: 'alice', pingInterval: 5000, pongTimeout: 2000, protocol: 1 });
    expect(typeof s.info.connectionId).toBe('string');
    expect(s.info.expiresAt).toBeGreaterThan(Date.now() / 1000);
  });

  it.each([
    ['badly signed', async () => makeToken({ secret: 'another-secret-0123456789' }), 'unauthorized', 4501],
    ['expired', async () => makeToken({ expiresIn: Math.floor(Date.now() / 1000) - 10 }), 'token_expired', 4006],
    ['alg none', async () => unsignedToken('mallory'), 'unauthorized', 4501],
    ['garbage', async () => 'not.a.jwt', 'unauthorized', 4501],
  ])('refuses a %s token with an error frame and close code', async (_name, token, code, close) => {
    server = await startTestServer();
    const s = await TestSocket.open(server.wsUrl);
    s.send({ type: 'connect', id: 1, token: await token() });
    const err = await s.next();
    expect(err).toMatchObject({ type: 'error', id: 1, error: { code } });
    expect((await s.closed).code).toBe(close);
  });

  it('verifies RS256 tokens against a public key file and refuses HS256 tokens signed with that key text', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const dir = mkdtempSync(join(tmpdir(), 'herald-'));
    const pem = await exportSPKI(publicKey);
    writeFileSync(join(dir, 'pub.pem'), pem);
    server = await startTestServer({ auth: { jwt: { hmacSecret: '', publicKeyFile: join(dir, 'pub.pem') } } });
    const good = await new SignJWT({ channels: ['*'] }).setProtectedHeader({ alg: 'RS256' }).setSubject('rsa-user').setExpirationTime('1h').sign(privateKey);
    const s = await TestSocket.open(server.wsUrl);
    expect(await s.request({ type: 'connect', token: good })).toMatchObject({ type: 'connected', user: 'rsa-user' });
    // Algorithm confusion: an HMAC token keyed with the public key text must not pass.
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setExpirationTime('1h').sign(new TextEncoder().encode(pem));
    const t = await TestSocket.open(server.wsUrl);
    expect(await t.request({ type: 'connect', token: confused })).toMatchObject({ type: 'error', error: { code: 'unauthorized' } });
  });

  it('refuses anonymous connections unless configured, then limits them to public channels', async () => {
    server = await startTestServer();
    const s = await TestSocket.open(server.wsUrl);
    expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'error', error: { code: 'unauthorized' } });
    expect((await s.closed).code).toBe(4501);
    await server.close();
    server = await startTestServer({ auth: { anonymous: true }, channels: { public: ['news:*'] } });
    const a = await TestSocket.connect(server, null);
    expect(a.info.user).toBe('');
    expect(await a.request({ type: 'subscribe', channel: 'news:today' })).toMatchObject({ type: 'subscribed' });
    expect(await a.request({ type: 'subscribe', channel: 'private:1' })).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
  });

  it('accepts the token from the upgrade URL', async () => {
    server = await startTestServer();
    const s = await TestSocket.open(`${server.wsUrl}?token=${await makeToken({ sub: 'q' })}`);
    expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'connected', user: 'q' });
  });

  it('closes a connection that sends another frame before connect', async () => {
    server = await startTestServer();
    const s = await TestSocket.open(server.wsUrl);
    s.send({ type: 'subscribe', id: 7, channel: 'a' });
    expect(await s.next()).toMatchObject({ type: 'error', id: 7, error: { code: 'not_connected' } });
    expect((await s.closed).code).toBe(4504);
  });

  it('refuses a second connect on the same connection', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    expect(await s.request({ type: 'connect', token: await makeToken() })).toMatchObject({ type: 'error', error: { code: 'already_connected' } });
  });

  it('closes connections that never send connect (handshake timeout)', async () => {
    server = await startTestServer({ limits: { handshakeTimeoutMs: 200 } });
    const s = await TestSocket.open(server.wsUrl);
    expect((await s.closed).code).toBe(4007);
  });
});

describe('origin checks', () => {
  it('allows same-origin by default and refuses other origins with 403', async () => {
    server = await startTestServer();
    const same = `http://127.0.0.1:${server.port}`;
    await expect(TestSocket.open(server.wsUrl, { origin: same })).resolves.toBeInstanceOf(TestSocket);
    await expect(TestSocket.open(server.wsUrl, { origin: 'http://evil.example' })).rejects.toMatchObject({ status: 403 });
  });

  it('uses the allow-list when configured', async () => {
    server = await startTestServer({ origins: { allowed: ['https://app.example.com'] } });
    await expect(TestSocket.open(server.wsUrl, { origin: 'https://app.example.com' })).resolves.toBeInstanceOf(TestSocket);
    await expect(TestSocket.open(server.wsUrl, { origin: `http://127.0.0.1:${server.port}` })).rejects.toMatchObject({ status: 403 });
  });
});

describe('limits', () => {
  it('limits connections per user with close code 4503', async () => {
    server = await startTestServer({ limits: { maxConnectionsPerUser: 2 } });
    await TestSocket.connect(server, { sub: 'bob' });
    await TestSocket.connect(server, { sub: 'bob' });
    const third = await TestSocket.open(server.wsUrl);
    third.send({ type: 'connect', id: 1, token: await makeToken({ sub: 'bob' }) });
    expect(await third.next()).toMatchObject({ type: 'error', error: { code: 'too_many_connections' } });
    expect((await third.closed).code).toBe(4503);
    await TestSocket.connect(server, { sub: 'carol' });
  });

  it('limits connections per IP with HTTP 429', async () => {
    server = await startTestServer({ limits: { maxConnectionsPerIp: 2 } });
    await TestSocket.open(server.wsUrl);
    await TestSocket.open(server.wsUrl);
    await expect(TestSocket.open(server.wsUrl)).rejects.toMatchObject({ status: 429 });
  });

  it('fails fast with 503 at capacity, and admits again when a slot frees', async () => {
    // Only authenticated connections fill maxConnections (pending ones have their own cap).
    server = await startTestServer({ limits: { maxConnections: 2 } });
    const a = await TestSocket.connect(server);
    await TestSocket.connect(server);
    const started = Date.now();
    await expect(TestSocket.open(server.wsUrl)).rejects.toMatchObject({ status: 503 });
    expect(Date.now() - started).toBeLessThan(2000);
    a.close();
    await a.closed;
    await waitFor(() => server!.node.hub.connectedCount < 2, 5000, 'the server to free the slot');
    await expect(TestSocket.open(server.wsUrl)).resolves.toBeInstanceOf(TestSocket);
  });

  it('queues upgrades at capacity in queue mode', async () => {
    server = await startTestServer({ limits: { maxConnections: 1, overload: { mode: 'queue', queueTimeoutMs: 3000, maxQueued: 5 } } });
    const a = await TestSocket.connect(server);
    const queued = nextUpgrade(server);
    const waiting = TestSocket.open(server.wsUrl);
    await queued; // the upgrade is waiting in the queue, not yet admitted
    a.close();
    await expect(waiting).resolves.toBeInstanceOf(TestSocket);
  });

  it('times out queued upgrades with 503', async () => {
    server = await startTestServer({ limits: { maxConnections: 1, overload: { mode: 'queue', queueTimeoutMs: 100, maxQueued: 5 } } });
    await TestSocket.connect(server);
    await expect(TestSocket.open(server.wsUrl)).rejects.toMatchObject({ status: 503 });
  });
});

describe('heartbeats', () => {
  it('pings at the announced interval and keeps a connection that answers', async () => {
    server = await startTestServer({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100, maxMissed: 1 } });
    const s = await TestSocket.connect(server);
    // Three rounds, each answered within pongTimeout: one missed pong would have closed it.
    await waitFor(() => s.frames.filter((f) => f.type === 'ping').length >= 3 || s.ws.readyState !== 1, 5000, 'three pings');
    expect(s.ws.readyState).toBe(1);
  });

  it('closes a peer that misses maxMissed pongs with 4002', async () => {
    server = await startTestServer({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100, maxMissed: 2 } });
    const s = await TestSocket.connect(server);
    s.autoPong = false;
    const started = Date.now();
    expect((await s.closed).code).toBe(4002);
    const pings = s.frames.filter((f) => f.type === 'ping').length;
    expect(pings).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('answers client pings with pong', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    s.send({ type: 'ping' });
    expect(await s.next((f) => f.type === 'pong')).toEqual({ type: 'pong' });
  });

  it('closes with 4006 when the token expires during the connection', async () => {
    server = await startTestServer({ heartbeat: { intervalMs: 200, pongTimeoutMs: 100 } });
    const s = await TestSocket.connect(server, { expiresIn: Math.floor(Date.now() / 1000) + 1 });
    expect((await s.closed).code).toBe(4006);
  });
});
