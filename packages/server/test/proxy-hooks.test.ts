/**
 * Proxy hooks against a real Herald and a real backend (node:http on loopback): every hook's
 * success, refusal, disconnect, timeout and backend-down path, answers that are garbage, too
 * large or off-schema, bounded requests in flight — and a bystander whose traffic goes on while
 * the backend keeps another client waiting.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Ajv } from 'ajv';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { TestBackend } from './helpers/backend.js';
import { publishMarker, startTestServer, TestSocket, type Frame, type TokenClaims } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let backend: TestBackend;
let server: HeraldServer;
const sockets: TestSocket[] = [];

async function open(headers: Record<string, string> = {}): Promise<TestSocket> {
  const s = await TestSocket.open(server.wsUrl, headers);
  sockets.push(s);
  return s;
}

async function withToken(claims: TokenClaims = {}): Promise<TestSocket> {
  const s = await TestSocket.connect(server, claims);
  sockets.push(s);
  return s;
}

/** A port nobody listens on: a backend that is down. */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  backend = await TestBackend.start();
  const hook = (name: string, timeoutMs = 400) => ({ url: `${backend.url}/${name}`, timeoutMs });
  server = await startTestServer({
    proxy: {
      // Long enough for a 2 MB answer to arrive on a busy machine (the huge-answer case).
      connect: hook('connect', 2000),
      subscribe: hook('subscribe'),
      publish: hook('publish'),
      rpc: hook('rpc'),
      headers: ['X-Tenant'],
      cookies: ['session'],
      maxInFlight: 8,
      maxInFlightPerConnection: 3,
    },
    channels: {
      clientPublish: ['open:*'],
      namespaces: { ns2: { proxy: { subscribe: { url: `${backend.url}/subscribe-ns2` }, publish: { url: `${backend.url}/publish-ns2` } } } },
    },
    rateLimits: { connection: { rpc: { perSecond: 1000, burst: 1000 } }, user: { rpc: { perSecond: 1000, burst: 1000 } } },
  });
});

const proxySchema = new Ajv({ strict: false }).addSchema(JSON.parse(readFileSync(new URL('../api/proxy.schema.json', import.meta.url), 'utf8')));

afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  // Every request Herald sent matches its documented schema (api/proxy.schema.json).
  for (const { path, body } of backend.requests) {
    const hook = path.slice(1).replace(/-ns2$/, '');
    const validate = proxySchema.getSchema(`herald:proxy#/$defs/${hook}Request`)!;
    expect(validate(body), `${hook} request ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(validate.errors)}`).toBe(true);
  }
  backend.handlers.clear();
  backend.requests.length = 0;
});

afterAll(async () => {
  await server?.close();
  await backend?.close();
});

const connected = (f: Frame) => f.type === 'connected' || f.type === 'error';
/** A valid connect answer larger than proxy.maxResponseBytes (default 1 MiB). */
const HUGE = JSON.stringify({ result: { user: 'x', info: 'y'.repeat(2_000_000) } });

describe('connect hook', () => {
  it('names the user, rights, tags and info of a connection without a token; forwards only allow-listed headers and cookies', async () => {
    backend.on('connect', () => ({ result: { user: 'alice', channels: ['room:*'], tags: { plan: 'pro' }, info: { name: 'Alice' }, expiresAt: Math.floor(Date.now() / 1000) + 3600 } }));
    backend.on('subscribe', () => ({ error: { code: 'nope', message: 'no' } }));
    const s = await open({ 'X-Tenant': 't1', Authorization: 'Bearer secret', Cookie: 'session=abc; other=zzz' });
    const reply = await s.request({ type: 'connect', client: 'test/1' });
    expect(reply).toMatchObject({ type: 'connected', user: 'alice' });
    expect(reply.expiresAt).toBeGreaterThan(Date.now() / 1000);
    const [req] = backend.requestsTo('connect');
    expect(req).toMatchObject({ hook: 'connect', connectionId: reply.connectionId, client: 'test/1', headers: { 'x-tenant': 't1' }, cookies: { session: 'abc' } });
    expect(req.headers.authorization).toBeUndefined();
    expect(req.cookies.other).toBeUndefined();
    expect(req.token).toBeUndefined();
    // Its rights are the backend's: room:* granted, the rest goes to the subscribe hook (refused).
    expect((await s.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
    expect((await s.request({ type: 'subscribe', channel: 'other:1' })).error).toMatchObject({ code: 'nope', temporary: false });
    // info travels with the connection to later hooks.
    expect(backend.requestsTo('subscribe')[0]).toMatchObject({ user: 'alice', channel: 'other:1', info: { name: 'Alice' } });
    // The tags are indexed: a filtered publish reaches it.
    await server.publish({ broadcast: true, filter: { tag: 'plan', op: 'eq', value: 'pro' }, eventType: 'e', payload: 1 });
    await s.next((f) => f.type === 'message');
  });

  it('a refusal reaches the client with the backend code, and the connection closes with 4501', async () => {
    backend.on('connect', () => ({ error: { code: 'banned', message: 'you are banned' } }));
    const s = await open();
    const reply = await s.request({ type: 'connect' });
    expect(reply.error).toEqual({ code: 'banned', message: 'you are banned', temporary: false });
    expect((await s.closed).code).toBe(4501);
  });

  it('a temporary refusal closes with 4008 (reconnect later); {disconnect} closes with the backend code', async () => {
    backend.on('connect', () => ({ error: { code: 'busy', message: 'later', temporary: true } }));
    const a = await open();
    expect((await a.request({ type: 'connect' })).error).toMatchObject({ code: 'busy', temporary: true });
    expect((await a.closed).code).toBe(4008);
    backend.on('connect', () => ({ disconnect: { code: 4599, reason: 'go away' } }));
    const b = await open();
    b.send({ type: 'connect', id: 1 });
    expect(await b.closed).toEqual({ code: 4599, reason: 'go away' });
  });

  it('with a token it is not asked (unless proxy.connect.always)', async () => {
    backend.on('connect', () => ({ error: { code: 'never', message: 'must not be asked' } }));
    const s = await withToken({ sub: 'tok-user' });
    expect(s.info.user).toBe('tok-user');
    expect(backend.requestsTo('connect')).toEqual([]);
  });

  it('garbage, off-schema, huge, 4xx and 5xx answers are errors, never a crash', async () => {
    const cases: Array<[unknown, string]> = [
      [{ raw: { status: 200, body: 'not json{' } }, 'backend_error'],
      [{ result: { user: 42 } }, 'backend_error'],
      [{ result: { user: 'x' }, error: { code: 'a', message: 'b' } }, 'backend_error'],
      [{ disconnect: { code: 1000, reason: 'bad range' } }, 'backend_error'],
      [{ raw: { status: 200, body: HUGE } }, 'backend_error'],
      [{ raw: { status: 404, body: '{}' } }, 'backend_error'],
      [{ raw: { status: 503, body: 'down' } }, 'backend_unavailable'],
    ];
    for (const [answer, code] of cases) {
      backend.on('connect', () => answer);
      const s = await open();
      const reply = await s.request({ type: 'connect' });
      expect(reply.error, JSON.stringify(answer).slice(0, 80)).toMatchObject({ code, temporary: true });
      expect((await s.closed).code).toBe(4008);
    }
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('a backend that never answers costs its client a timeout (4008) while a bystander publishes and receives', async () => {
    backend.on('connect', () => 'hang');
    backend.on('publish', () => ({ result: {} }));
    const waiting = await open();
    waiting.send({ type: 'connect', id: 1 });
    await waitFor(() => backend.open === 1, 2000, 'the connect request at the backend');
    const bystander = await withToken({ sub: 'bystander', publish: ['by:*'] });
    await bystander.subscribe('by:1');
    const published = await bystander.request({ type: 'publish', channel: 'by:1', eventType: 'e', payload: 'hi' });
    expect(published.type).toBe('published');
    await waitFor(() => bystander.messages().some((f) => f.message.payload === 'hi'), 2000, 'the bystander\'s own message');
    expect(waiting.frames.filter((f) => f.type !== 'ping')).toEqual([]);
    const reply = await waiting.next(connected, 6000);
    expect(reply.error).toMatchObject({ code: 'backend_unavailable', temporary: true });
    expect((await waiting.closed).code).toBe(4008);
  });
});

describe('subscribe hook', () => {
  it('decides channels the token does not grant; namespace overrides go to their own URL', async () => {
    backend.on('subscribe', (b) => (b.channel === 'priv:ok' ? { result: {} } : { error: { code: 'not_member', message: 'not a member' } }));
    backend.on('subscribe-ns2', () => ({ result: {} }));
    const s = await withToken({ sub: 'u-sub', channels: ['pub:*'] });
    await s.subscribe('pub:1');
    expect(backend.requestsTo('subscribe')).toEqual([]); // granted by the token: not asked
    await s.subscribe('priv:ok');
    expect((await s.request({ type: 'subscribe', channel: 'priv:no' })).error).toEqual({ code: 'not_member', message: 'not a member', temporary: false });
    await s.subscribe('ns2:x');
    expect(backend.requestsTo('subscribe-ns2')).toMatchObject([{ hook: 'subscribe', channel: 'ns2:x', user: 'u-sub' }]);
    await publishMarker(server, s, { channel: 'priv:ok' });
    // Unsubscribing withdraws the grant: the next subscribe asks again.
    expect((await s.request({ type: 'unsubscribe', channel: 'priv:ok' })).type).toBe('unsubscribed');
    await s.subscribe('priv:ok');
    expect(backend.requestsTo('subscribe').filter((b) => b.channel === 'priv:ok')).toHaveLength(2);
  });

  it('backend down: a temporary backend_unavailable, the connection stays', async () => {
    const s = await withToken({ sub: 'u-down', channels: [] });
    // No handler for the path: 404 is an answer outside the contract.
    expect((await s.request({ type: 'subscribe', channel: 'priv:a' })).error).toMatchObject({ code: 'backend_error', temporary: true });
    backend.on('subscribe', () => 'hang');
    expect((await s.request({ type: 'subscribe', channel: 'priv:b' })).error).toMatchObject({ code: 'backend_unavailable', temporary: true });
    expect((await s.request({ type: 'ping' }).catch(() => undefined)) ?? 'open').toBeTruthy();
    expect(s.ws.readyState).toBe(1);
  });
});

describe('publish hook', () => {
  it('may rewrite the payload or refuse; the token publish rights are not consulted', async () => {
    backend.on('publish', (b) => (b.payload === 'bad' ? { error: { code: 'spam', message: 'no spam' } } : { result: { payload: { text: b.payload, by: b.user } } }));
    const s = await withToken({ sub: 'writer', channels: ['chat:*'], publish: [] });
    await s.subscribe('chat:1');
    expect((await s.request({ type: 'publish', channel: 'chat:1', eventType: 'msg', payload: 'hello' })).type).toBe('published');
    const m = s.messages()[0]!;
    expect(m.message.payload).toEqual({ text: 'hello', by: 'writer' });
    expect(m.message.source).toBe('client:writer');
    expect((await s.request({ type: 'publish', channel: 'chat:1', eventType: 'msg', payload: 'bad' })).error).toMatchObject({ code: 'spam' });
    expect(backend.requestsTo('publish')).toMatchObject([{ channel: 'chat:1', eventType: 'msg', payload: 'hello' }, { payload: 'bad' }]);
  });

  it('is never retried: a dropped answer is backend_unavailable once', async () => {
    const s = await withToken({ sub: 'once', channels: ['chat:*'] });
    backend.on('publish', () => 'hang');
    expect((await s.request({ type: 'publish', channel: 'chat:2', eventType: 'e', payload: 1 })).error).toMatchObject({ code: 'backend_unavailable' });
    expect(backend.requestsTo('publish')).toHaveLength(1);
  });

  it('{disconnect} ends the connection with the backend code', async () => {
    backend.on('publish', () => ({ disconnect: { code: 4502, reason: 'kicked' } }));
    const s = await withToken({ sub: 'kicked', channels: ['chat:*'] });
    s.send({ type: 'publish', id: 9, channel: 'chat:3', eventType: 'e', payload: 1 });
    expect(await s.closed).toEqual({ code: 4502, reason: 'kicked' });
  });
});

describe('rpc hook', () => {
  it('answers methods the server does not handle, by correlationId; refusals become the response error', async () => {
    backend.on('rpc', (b) => (b.method === 'sum' ? { result: { data: (b.data as number[]).reduce((a, c) => a + c, 0) } } : { error: { code: 'no_such_method', message: `no ${b.method}` } }));
    const s = await withToken({ sub: 'caller' });
    s.send({ type: 'request', correlationId: 'c1', method: 'sum', data: [1, 2, 3] });
    expect(await s.next((f) => f.correlationId === 'c1')).toEqual({ type: 'response', correlationId: 'c1', data: 6 });
    s.send({ type: 'request', correlationId: 'c2', method: 'other' });
    expect(await s.next((f) => f.correlationId === 'c2')).toMatchObject({ error: { code: 'no_such_method', temporary: false } });
    expect(backend.requestsTo('rpc')[0]).toMatchObject({ hook: 'rpc', user: 'caller', method: 'sum', data: [1, 2, 3] });
  });

  it('a flood from one client holds at most proxy.maxInFlightPerConnection at the backend; the rest fail fast', async () => {
    backend.on('rpc', () => 'hang');
    const flooder = await withToken({ sub: 'flooder' });
    for (let i = 0; i < 40; i++) flooder.send({ type: 'request', correlationId: `f${i}`, method: 'slow' });
    const fast = await Promise.all(Array.from({ length: 37 }, () => flooder.next((f) => f.type === 'response' && f.error?.code === 'backend_unavailable')));
    expect(fast).toHaveLength(37);
    await waitFor(() => backend.open === 3, 2000, 'three requests at the backend');
    // Another client still gets through to the backend (the node-wide bound is not used up).
    backend.on('rpc', () => ({ result: { data: 'ok' } }));
    const other = await withToken({ sub: 'other' });
    other.send({ type: 'request', correlationId: 'o1', method: 'x' });
    expect((await other.next((f) => f.correlationId === 'o1')).data).toBe('ok');
    // The flooder's three time out at the backend's deadline.
    await flooder.next((f) => f.type === 'response' && f.error?.code === 'backend_unavailable' && /no answer within/.test(f.error.message));
  });

  it('past proxy.maxInFlight for the node, requests fail at once instead of queueing', async () => {
    backend.on('rpc', () => 'hang');
    const clients = await Promise.all([1, 2, 3].map((i) => withToken({ sub: `many${i}` })));
    for (const c of clients) for (let i = 0; i < 3; i++) c.send({ type: 'request', correlationId: `m${i}`, method: 'slow' });
    await waitFor(() => backend.open === 8, 2000, '8 requests at the backend');
    const last = clients[2]!;
    const refusals = await last.next((f) => f.type === 'response' && /proxy\.maxInFlight\)/.test(f.error?.message ?? ''));
    expect(refusals.error.temporary).toBe(true);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/herald_proxy_in_flight 8\b/);
    expect(metrics).toMatch(/herald_proxy_requests_total\{hook="rpc",outcome="overflow"\} [1-9]/);
    expect(metrics).toMatch(/herald_proxy_requests_total\{hook="connect",outcome="result"\} [1-9]/);
  });
});

describe('rpc flood with the default rate limits', () => {
  it('past rateLimits.connection.rpc the backend is not asked: rate_limited responses instead', async () => {
    const own = await TestBackend.start();
    own.on('rpc', () => ({ result: { data: 'ok' } }));
    const limited = await startTestServer({ proxy: { rpc: { url: `${own.url}/rpc` } } });
    try {
      const s = await TestSocket.connect(limited, { sub: 'flood' });
      // Past the burst (50) but short of rateLimits.abuse.maxRejected refusals, which would close it (4506).
      for (let i = 0; i < 80; i++) s.send({ type: 'request', correlationId: `q${i}`, method: 'm' });
      const responses = () => s.frames.filter((f) => f.type === 'response');
      await waitFor(() => responses().length === 80, 10_000, '80 responses');
      const limitedCount = responses().filter((f) => f.error?.code === 'rate_limited').length;
      expect(limitedCount).toBeGreaterThan(0);
      // Every request got exactly one answer: rate limited, refused at once past
      // proxy.maxInFlightPerConnection, or the backend's. Only the last reached the backend.
      expect(new Set(responses().map((f) => f.correlationId)).size).toBe(80);
      const answered = responses().filter((f) => f.data === 'ok').length;
      const overflow = responses().filter((f) => f.error?.code === 'backend_unavailable').length;
      expect(limitedCount + overflow + answered).toBe(80);
      expect(own.requestsTo('rpc')).toHaveLength(answered);
      expect(answered).toBeGreaterThanOrEqual(16);
      s.close();
    } finally {
      await limited.close();
      await own.close();
    }
  });
});

describe('backend down', () => {
  it('every hook answers backend_unavailable (temporary), never hangs', async () => {
    const dead = await deadUrl();
    const down = await startTestServer({
      proxy: { connect: { url: dead, timeoutMs: 2000 }, rpc: { url: dead }, subscribe: { url: dead }, publish: { url: dead } },
    });
    try {
      const a = await TestSocket.open(down.wsUrl);
      expect((await a.request({ type: 'connect' })).error).toMatchObject({ code: 'backend_unavailable', temporary: true });
      expect((await a.closed).code).toBe(4008);
      const b = await TestSocket.connect(down, { sub: 'b', channels: [] });
      expect((await b.request({ type: 'subscribe', channel: 'x:1' })).error).toMatchObject({ code: 'backend_unavailable' });
      expect((await b.request({ type: 'publish', channel: 'x:1', eventType: 'e', payload: 1 })).error).toMatchObject({ code: 'backend_unavailable' });
      b.send({ type: 'request', correlationId: 'r', method: 'm' });
      expect((await b.next((f) => f.correlationId === 'r')).error).toMatchObject({ code: 'backend_unavailable', temporary: true });
      b.close();
    } finally {
      await down.close();
    }
  });
});

describe('proxy.connect.always and configuration', () => {
  it('asks the connect hook with the verified token too, and refuses an invalid token without asking', async () => {
    const own = await TestBackend.start();
    own.on('connect', (b) => ({ result: { user: `${b.token ? 'with' : 'without'}-token`, channels: ['x:*'] } }));
    const always = await startTestServer({ auth: { anonymous: false }, proxy: { connect: { url: `${own.url}/connect`, always: true } } });
    try {
      const a = await TestSocket.connect(always, { sub: 'tok' });
      expect(a.info.user).toBe('with-token');
      expect(own.requestsTo('connect')[0].token).toEqual(expect.any(String));
      const b = await TestSocket.connect(always, null);
      expect(b.info.user).toBe('without-token');
      const bad = await TestSocket.open(always.wsUrl);
      expect((await bad.request({ type: 'connect', token: 'not-a-jwt' })).error).toMatchObject({ code: 'unauthorized' });
      expect(own.requestsTo('connect')).toHaveLength(2);
      a.close();
      b.close();
    } finally {
      await always.close();
      await own.close();
    }
  });

  it('a hook URL that is not http(s) fails at start, naming the key', async () => {
    await expect(startTestServer({ proxy: { rpc: { url: 'ftp://backend/rpc' } } })).rejects.toThrow(/proxy\.rpc\.url/);
    await expect(startTestServer({ channels: { namespaces: { chat: { proxy: { publish: { url: 'backend' } } } } } })).rejects.toThrow(/chat.*proxy.*publish.*url|proxy\.publish\.url/);
  });
});
