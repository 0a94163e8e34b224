/**
 * The proxy-hook helper of @herald/server as an application uses it: a real Herald calls a real
 * backend built with `proxyHandler` on node:http (and the same handlers behind fastify through
 * `answerProxyRequest`, and behind an express-style JSON body parser), and real sockets see the
 * outcome of every hook.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerProxyRequest, HeraldError, parseProxyRequest, proxyAnswer, proxyHandler } from '@herald/server';
import type { ProxyHandlers } from '@herald/server';
import type { HeraldServer } from 'herald';
import { startTestServer, TestSocket } from '../../server/test/helpers/server.js';
import { waitFor } from '../../server/test/helpers/wait.js';

const rooms = new Map<string, Set<string>>([['room:1', new Set(['alice'])]]);
const seen: string[] = [];

const handlers: ProxyHandlers = {
  connect(req) {
    seen.push(`connect ${req.cookies?.sid ?? '-'}`);
    if (req.cookies?.sid !== 'alice-session') return proxyAnswer.refuse('login_required', 'log in first');
    return proxyAnswer.connect({ user: 'alice', channels: ['lobby'], info: { name: 'Alice' }, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
  },
  subscribe(req) {
    if (!rooms.get(req.channel)?.has(req.user)) throw new HeraldError('not_member', `${req.user} is not in ${req.channel}`);
    return proxyAnswer.allow();
  },
  publish(req) {
    if (typeof req.payload !== 'string') return proxyAnswer.refuse('text_only', 'send text');
    return proxyAnswer.publish({ text: req.payload, from: (req.info as { name: string } | undefined)?.name ?? req.user });
  },
  async rpc(req) {
    if (req.method === 'whoami') return proxyAnswer.rpc({ user: req.user, node: req.node });
    if (req.method === 'kick-me') return proxyAnswer.disconnect(4502, 'as you wish');
    if (req.method === 'crash') throw new Error('bug in the backend');
    throw new HeraldError('busy', 'try later', { temporary: true });
  },
};

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let herald: HeraldServer;
let plain: Server;
const failures: unknown[] = [];

beforeAll(async () => {
  plain = createServer(proxyHandler(handlers, { onError: (err) => void failures.push(err) }));
  const url = await listen(plain);
  const hook = { url, timeoutMs: 2000 };
  herald = await startTestServer({ proxy: { connect: hook, subscribe: hook, publish: hook, rpc: hook, cookies: ['sid'] } });
});

afterAll(async () => {
  await herald?.close();
  plain?.closeAllConnections();
  await new Promise<void>((r) => plain?.close(() => r()));
});

describe('proxyHandler on node:http, called by a real Herald', () => {
  it('connect: the backend names the user from a forwarded cookie, or refuses', async () => {
    const refused = await TestSocket.open(herald.wsUrl, { Cookie: 'sid=nobody' });
    expect((await refused.request({ type: 'connect' })).error).toEqual({ code: 'login_required', message: 'log in first', temporary: false });
    expect((await refused.closed).code).toBe(4501);
    const s = await TestSocket.open(herald.wsUrl, { Cookie: 'sid=alice-session; theme=dark' });
    expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'connected', user: 'alice' });
    expect(seen).toEqual(['connect nobody', 'connect alice-session']);
    s.close();
  });

  it('subscribe, publish and rpc hooks: allow, refuse (thrown HeraldError), rewrite, answer, disconnect', async () => {
    const s = await TestSocket.open(herald.wsUrl, { Cookie: 'sid=alice-session' });
    await s.request({ type: 'connect' });
    expect((await s.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
    expect((await s.request({ type: 'subscribe', channel: 'room:2' })).error).toMatchObject({ code: 'not_member', message: 'alice is not in room:2', temporary: false });
    expect((await s.request({ type: 'publish', channel: 'room:1', eventType: 'chat', payload: 'hi' })).type).toBe('published');
    await waitFor(() => s.messages().length === 1, 3000, 'the rewritten message');
    const msg = s.messages()[0]!;
    expect(msg.message.payload).toEqual({ text: 'hi', from: 'Alice' });
    expect((await s.request({ type: 'publish', channel: 'room:1', eventType: 'chat', payload: 42 })).error).toMatchObject({ code: 'text_only' });
    s.send({ type: 'request', correlationId: 'a', method: 'whoami' });
    expect((await s.next((f) => f.correlationId === 'a')).data).toEqual({ user: 'alice', node: herald.node.name });
    s.send({ type: 'request', correlationId: 'b', method: 'other' });
    expect((await s.next((f) => f.correlationId === 'b')).error).toMatchObject({ code: 'busy', temporary: true });
    s.send({ type: 'request', correlationId: 'c', method: 'crash' });
    expect((await s.next((f) => f.correlationId === 'c')).error).toMatchObject({ code: 'backend_unavailable', temporary: true });
    expect(failures).toHaveLength(1);
    s.send({ type: 'request', correlationId: 'd', method: 'kick-me' });
    expect(await s.closed).toEqual({ code: 4502, reason: 'as you wish' });
  });
});

describe('the same handlers behind fastify and an express-style body parser', () => {
  let app: FastifyInstance;
  let parsed: Server;
  let other: HeraldServer;

  beforeAll(async () => {
    app = Fastify();
    app.post('/hooks', async (req, reply) => {
      const answer = await answerProxyRequest(handlers, req.body);
      return reply.code(answer.status).send(answer.body);
    });
    const fastifyUrl = await app.listen({ port: 0, host: '127.0.0.1' });
    // What express.json() does: parse, then set req.body before the handler runs.
    const handle = proxyHandler(handlers);
    parsed = createServer((req: IncomingMessage & { body?: unknown }, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        req.body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        handle(req, res);
      });
    });
    const parsedUrl = await listen(parsed);
    other = await startTestServer({ proxy: { subscribe: { url: `${fastifyUrl}/hooks` }, rpc: { url: parsedUrl } } });
  });

  afterAll(async () => {
    await other?.close();
    await app?.close();
    parsed?.closeAllConnections();
    await new Promise<void>((r) => parsed?.close(() => r()));
  });

  it('answers Herald the same way', async () => {
    const s = await TestSocket.connect(other, { sub: 'alice', channels: [] });
    expect((await s.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
    expect((await s.request({ type: 'subscribe', channel: 'room:9' })).error).toMatchObject({ code: 'not_member' });
    s.send({ type: 'request', correlationId: 'w', method: 'whoami' });
    expect((await s.next((f) => f.correlationId === 'w')).data).toMatchObject({ user: 'alice' });
    s.close();
  });
});

describe('parsing and answer builders', () => {
  it('refuses bodies that are not hook requests (400), and hooks without a handler (404)', async () => {
    expect((await answerProxyRequest(handlers, 'not json')).status).toBe(400);
    expect((await answerProxyRequest(handlers, { hook: 'connect' })).status).toBe(400);
    expect((await answerProxyRequest(handlers, { hook: 'subscribe', node: 'n', connectionId: 'c', remoteAddress: 'r', user: 'u' })).body).toMatchObject({ error: { message: expect.stringContaining('"channel"') } });
    expect((await answerProxyRequest({}, { hook: 'refresh', node: 'n', connectionId: 'c', remoteAddress: 'r', user: 'u' })).status).toBe(404);
    expect(parseProxyRequest(Buffer.from(JSON.stringify({ hook: 'rpc', node: 'n', connectionId: 'c', remoteAddress: 'r', user: 'u', method: 'm' }))).hook).toBe('rpc');
  });

  it('builders refuse what Herald would refuse', () => {
    expect(() => proxyAnswer.refuse('Bad Code', 'x')).toThrow(/must match/);
    expect(() => proxyAnswer.disconnect(1000, 'x')).toThrow(/4000–4999/);
    expect(proxyAnswer.publish()).toEqual({ result: {} });
    expect(proxyAnswer.publish(null)).toEqual({ result: { payload: null } });
    expect(proxyAnswer.refuse('later', 'm', { temporary: true })).toEqual({ error: { code: 'later', message: 'm', temporary: true } });
  });

  it('a body over maxBodyBytes is answered 413 without calling a handler', async () => {
    const small = createServer(proxyHandler(handlers, { maxBodyBytes: 64 }));
    const url = await listen(small);
    try {
      const res = await fetch(url, { method: 'POST', body: JSON.stringify({ hook: 'rpc', pad: 'x'.repeat(500) }) });
      expect(res.status).toBe(413);
    } finally {
      small.closeAllConnections();
      await new Promise<void>((r) => small.close(() => r()));
    }
  });
});
