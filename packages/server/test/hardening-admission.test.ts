/**
 * Connection admission and HTTP protection (issue 11: M5, M6, M7, R3, the same-host Origin
 * fallback, and batch publishes that would block the event loop). Real server, real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { RawConn, refusedUpgrade } from './helpers/raw-conn.js';
import { API_KEY, makeToken, nextUpgrade, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer | undefined;
const opened: Array<{ close(): void } | RawConn> = [];
function closeAll(): void {
  for (const c of opened.splice(0)) {
    if (c instanceof RawConn) c.destroy();
    else c.close();
  }
}
afterEach(async () => {
  closeAll();
  await server?.close();
  server = undefined;
});

function raw(port: number, opts: { host?: string; localAddress?: string } = {}): RawConn {
  const c = new RawConn(port, opts);
  opened.push(c);
  return c;
}

async function open(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<TestSocket> {
  const s = await TestSocket.open(url, headers, localAddress);
  opened.push(s);
  return s;
}

async function connected(srv: HeraldServer, sub = 'u1'): Promise<TestSocket> {
  const s = await TestSocket.connect(srv, { sub });
  opened.push(s);
  return s;
}

const UPGRADE = (port: number, extra = '') =>
  `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/** The close code in the first server close frame after a 101 response, if any. */
function closeCodeAfter101(text: string): number | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/1.1 101') || end < 0) return undefined;
  const frame = Buffer.from(text.slice(end + 4), 'latin1');
  if (frame.length < 4 || frame[0] !== 0x88) return undefined;
  return frame.readUInt16BE(2);
}

describe('HTTP deadlines and the connection cap (M5)', () => {
  it('answers a request whose body trickles in with 408 client_timeout and closes it', async () => {
    server = await startTestServer({ server: { http: { requestTimeoutMs: 1000, headersTimeoutMs: 1000 } } });
    const token = await makeToken({ sub: 'alice' });
    const requests = [
      // The publish fast path (valid key, JSON, a Content-Length) and a fastify route.
      `POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`,
      `POST /poll/v1/inbox/ack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`,
    ];
    for (const head of requests) {
      const c = raw(server.port);
      c.write(head);
      const stop = c.dribble('{"channel":"a","eventType":"e","payload":"' + 'x'.repeat(190), 250);
      // Safety bound only: Node's default would have waited forever (requestTimeout was 0).
      expect(await c.waitClosed(8000)).toBe(true);
      stop();
      expect(c.response()).toMatchObject({ status: 408, body: { error: { code: 'client_timeout', temporary: true } } });
    }
  });

  it('authenticates a poll request before reading its body: no token is answered 401 while the body is unsent', async () => {
    server = await startTestServer();
    for (const auth of ['', 'Authorization: Bearer not-a-jwt\r\n']) {
      const c = raw(server.port);
      c.write(`POST /poll/v1/inbox/ack HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`);
      expect(await c.waitFor((t) => t.includes('\r\n\r\n{'), 5000)).toBe(true);
      expect(c.response()).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
      // The connection is not kept waiting for a body that will not be read.
      expect(await c.waitClosed(5000)).toBe(true);
    }
  });

  it("answers malformed requests with Herald's error body", async () => {
    server = await startTestServer();
    for (const request of ['HELLO THERE\r\n\r\n', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]) {
      const c = raw(server.port);
      c.write(request);
      expect(await c.waitClosed(5000)).toBe(true);
      expect(c.response()).toMatchObject({ status: 400, body: { error: { code: 'bad_request', temporary: false } } });
    }
  });

  it('caps open TCP connections, WebSockets included (server.http.maxConnections)', async () => {
    server = await startTestServer({ server: { http: { maxConnections: 3 } } });
    const first = await connected(server, 'a');
    await connected(server, 'b');
    await open(server.wsUrl);
    // A fourth TCP connection is closed at once, before anything is read from it.
    const extra = raw(server.port);
    extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await extra.waitClosed(5000)).toBe(true);
    expect(extra.text).toBe('');
    first.close();
    await first.closed;
    // A freed slot is usable again (the server may see the close a moment after the client).
    await waitFor(async () => (await fetch(`${server!.url}/healthz`).then((r) => r.status, () => 0)) === 200, 2500, 'the freed slot to serve /healthz', 50);
  });
});

describe('the handshake deadline covers the upgrade request (R3)', () => {
  it('closes a socket dribbling its upgrade request at limits.handshakeTimeoutMs, long before headersTimeout', async () => {
    server = await startTestServer({ limits: { handshakeTimeoutMs: 500 }, server: { http: { headersTimeoutMs: 20000, requestTimeoutMs: 30000 } } });
    const conns = Array.from({ length: 5 }, () => raw(server!.port));
    const stops = conns.map((c) => c.dribble(UPGRADE(server!.port), 100));
    for (const c of conns) {
      // Generous bound: the deadline is 0.5 s, headersTimeout 20 s.
      expect(await c.waitClosed(6000)).toBe(true);
      expect(c.closedAt! - c.openedAt).toBeLessThan(6000);
      expect(c.response()).toMatchObject({ status: 408, body: { error: { code: 'client_timeout' } } });
    }
    for (const stop of stops) stop();
  });

  it('counts from the TCP accept: time spent sending the upgrade is taken from the time to connect', async () => {
    const deadline = 2000;
    server = await startTestServer({ limits: { handshakeTimeoutMs: deadline } });
    const c = raw(server.port);
    await c.connected;
    const request = UPGRADE(server.port);
    // Most of the deadline goes into sending the upgrade request; then no connect frame is sent.
    c.dribble(request, Math.floor((deadline * 0.8) / request.length));
    expect(await c.waitFor((t) => closeCodeAfter101(t) !== undefined, deadline * 4)).toBe(true);
    expect(closeCodeAfter101(c.text)).toBe(4007);
    // Closed about `deadline` after the accept; a fresh deadline from the upgrade would take ~1.8×.
    expect(Date.now() - c.openedAt).toBeLessThan(deadline * 1.5);
  });

  it('leaves plain HTTP requests alone once their head has arrived', async () => {
    server = await startTestServer({ limits: { handshakeTimeoutMs: 300 } });
    const c = raw(server.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await c.waitFor((t) => t.includes('200 OK'), 3000)).toBe(true);
    // A socket accepted after it that sends nothing is closed by its deadline: by then the first
    // one's deadline has passed too, had it still been running.
    const idle = raw(server.port);
    await idle.connected;
    expect(await idle.waitClosed(5000)).toBe(true);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await c.waitFor((t) => t.split('200 OK').length === 3, 3000)).toBe(true);
    expect(c.closedAt).toBeUndefined();
  });
});

describe('pending sockets are counted apart (M6)', () => {
  it('idle unauthenticated sockets do not lock users out of maxConnections', async () => {
    server = await startTestServer({ limits: { maxConnections: 2 } });
    for (let i = 0; i < 5; i++) await open(server.wsUrl);
    await connected(server, 'alice');
    await connected(server, 'bob');
    // Now the authenticated slots are full.
    expect(await refusedUpgrade(server.wsUrl)).toMatchObject({ status: 503, body: { error: { code: 'overloaded' } } });
  });

  it('caps pending sockets at limits.maxPendingConnections with 503 overloaded', async () => {
    server = await startTestServer({ limits: { maxPendingConnections: 3 } });
    const idle = [await open(server.wsUrl), await open(server.wsUrl), await open(server.wsUrl)];
    const refused = await refusedUpgrade(server.wsUrl);
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'overloaded', temporary: true } } });
    expect(refused.body.error.message).toContain('maxPendingConnections');
    // Authenticating one frees its pending slot.
    const reply = await idle[0]!.request({ type: 'connect', token: await makeToken({ sub: 'carol' }) });
    expect(reply.type).toBe('connected');
    await open(server.wsUrl);
  });

  it('enforces maxConnections when pending sockets race for the last slot: the loser gets overloaded and 1013', async () => {
    server = await startTestServer({ limits: { maxConnections: 1 } });
    const a = await open(server.wsUrl);
    const b = await open(server.wsUrl);
    expect((await a.request({ type: 'connect', token: await makeToken({ sub: 'a' }) })).type).toBe('connected');
    expect(await b.request({ type: 'connect', token: await makeToken({ sub: 'b' }) })).toMatchObject({ type: 'error', error: { code: 'overloaded' } });
    expect((await b.closed).code).toBe(1013);
  });

  it('keeps the freed slot for the socket admitted from the overload queue', async () => {
    server = await startTestServer({ limits: { maxConnections: 1, overload: { mode: 'queue', queueTimeoutMs: 5000, maxQueued: 5 } } });
    const early = await open(server.wsUrl); // pending, admitted while there was room
    const a = await connected(server, 'a');
    const upgraded = nextUpgrade(server);
    const queued = TestSocket.open(server.wsUrl);
    await upgraded; // waiting in the overload queue
    a.close();
    const w = await queued;
    opened.push(w);
    // The slot a freed is kept for the queued socket: the earlier pending one cannot take it.
    expect(await early.request({ type: 'connect', token: await makeToken({ sub: 'early' }) })).toMatchObject({ type: 'error', error: { code: 'overloaded' } });
    expect((await w.request({ type: 'connect', token: await makeToken({ sub: 'w' }) })).type).toBe('connected');
  });
});

describe('per-IP limits (M6, M7)', () => {
  it('with trustProxy 1, spoofed left-most X-Forwarded-For entries do not pass a per-IP limit', async () => {
    server = await startTestServer({ server: { trustProxy: 1 }, limits: { maxConnectionsPerIp: 2 } });
    // As a proxy that appends would forward them: the client's own header, then the real address.
    const results: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const headers = { 'x-forwarded-for': `10.9.9.${i}, 203.0.113.7` };
      results.push(await open(server.wsUrl, headers).then(() => 101, (e: { status?: number }) => e.status ?? 0));
    }
    expect(results).toEqual([101, 101, 429, 429, 429]);
    // Another client behind the same proxy is not affected.
    await open(server.wsUrl, { 'x-forwarded-for': '10.9.9.1, 203.0.113.8' });
  });

  it('groups IPv6 clients by limits.ipv6PrefixLength and IPv4-mapped addresses with IPv4', async () => {
    server = await startTestServer({ server: { trustProxy: 1 }, limits: { maxConnectionsPerIp: 2 } });
    const xff = (v: string) => ({ 'x-forwarded-for': v });
    await open(server.wsUrl, xff('2001:db8:0:1::a'));
    await open(server.wsUrl, xff('2001:db8:0:1::b'));
    expect(await refusedUpgrade(server.wsUrl, { headers: xff('2001:db8:0:1:ffff:1:2:3') })).toMatchObject({ status: 429, body: { error: { code: 'too_many_connections' } } });
    await open(server.wsUrl, xff('2001:db8:0:2::a'));
    await open(server.wsUrl, xff('::ffff:198.51.100.1'));
    await open(server.wsUrl, xff('198.51.100.1'));
    expect((await refusedUpgrade(server.wsUrl, { headers: xff('::ffff:c633:6401') })).status).toBe(429);
  });

  it('counts real source addresses apart (127.0.0.x), on a dual-stack listener too', async () => {
    for (const host of ['127.0.0.1', '::']) {
      server = await startTestServer({ server: { host }, limits: { maxConnectionsPerIp: 2 } });
      const url = `ws://127.0.0.1:${server.port}/ws`;
      await open(url, {}, '127.0.0.2');
      await open(url, {}, '127.0.0.2');
      expect((await refusedUpgrade(url, { localAddress: '127.0.0.2' })).status).toBe(429);
      await open(url, {}, '127.0.0.3');
      closeAll();
      await server.close();
      server = undefined;
    }
  });
});

describe('same-origin fallback and DNS rebinding', () => {
  it('accepts same-origin only for IP literals and localhost; a named host must be listed', async () => {
    server = await startTestServer();
    const port = server.port;
    const same = (host: string) => ({ host: `${host}:${port}`, origin: `http://${host}:${port}` });
    await open(server.wsUrl, same('127.0.0.1'));
    await open(server.wsUrl, same('localhost'));
    await open(server.wsUrl, same('[::1]'));
    // An attacker's name re-pointed at this server: Origin and Host agree, and prove nothing.
    expect(await refusedUpgrade(server.wsUrl, { headers: same('rebind.attacker.example') })).toMatchObject({ status: 403, body: { error: { code: 'forbidden_origin' } } });
    await server.close();
    server = await startTestServer({ origins: { allowed: [`http://app.example.com:${port}`] } });
    await open(server.wsUrl, { host: `app.example.com:${port}`, origin: `http://app.example.com:${port}` });
  });
});
