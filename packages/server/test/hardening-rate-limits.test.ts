/**
 * Rate limits (issue 11, M8 and item 3) against a real server over real sockets: each bucket kind
 * refuses past its burst with `rate_limited` and `retryAfterMs` (HTTP: 429 with `Retry-After`),
 * the refused request is not acted on, and it is accepted again once the client has waited what
 * it was told. Limits are set small per test so a burst reaches them quickly.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HeraldClient } from '@herald/client';
import type { HeraldServer } from '../src/server.js';
import { api, API_KEY, makeToken, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { pause, waitForValue } from './helpers/wait.js';

let server: HeraldServer;
const sockets: TestSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await server?.close();
});

async function connect(claims: Parameters<typeof TestSocket.connect>[1]): Promise<TestSocket> {
  const s = await TestSocket.connect(server, claims);
  sockets.push(s);
  return s;
}

/** herald_rate_limited_total{limit} as scraped from /metrics (0 when absent). */
async function rateLimitedCount(limit: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`herald_rate_limited_total{limit="${limit}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** rate_limited refusals the given sockets received, optionally for one limit. */
function refusals(list: TestSocket[], limit?: string): number {
  return list.reduce((n, s) => n + s.frames.filter((f) => isRateLimited(f) && (limit === undefined || f.error.details.limit === limit)).length, 0);
}

function isRateLimited(reply: Frame): boolean {
  return (reply.type === 'error' || reply.type === 'response') && reply.error?.code === 'rate_limited';
}

function expectRateLimited(reply: Frame, limit: string): number {
  expect(reply.error).toMatchObject({ code: 'rate_limited', temporary: true, details: { limit } });
  const ms = reply.error.details.retryAfterMs as number;
  expect(ms).toBeGreaterThan(0);
  return ms;
}

/**
 * Sends `attempt` until it is not refused with `rate_limited`, waiting the `retryAfterMs` each
 * refusal names; the bound keeps a limiter that never lets go from hanging the test.
 */
async function retryUntilAccepted(attempt: () => Promise<Frame>, tries = 8): Promise<Frame> {
  for (let i = 0; ; i++) {
    const reply = await attempt();
    if (!isRateLimited(reply)) return reply;
    if (i >= tries) throw new Error(`still rate limited after ${tries} waits: ${JSON.stringify(reply)}`);
    await pause(reply.error.details.retryAfterMs as number); // the wait the refusal asks for is what is under test
  }
}

const BIG = { perSecond: 1000, burst: 1000 };

let nextId = 10_000;

/** The first frame `s` received that matches `pred`, whenever it arrived (replies may overtake each other). */
async function received(s: TestSocket, pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
  return waitForValue(() => s.frames.find(pred), timeoutMs, 'a matching frame', 5);
}

/**
 * Sends the frames back to back, each with a fresh id, and returns the reply to each. Sent
 * together, they reach the server within one read, so no bucket refills in between however
 * slow the machine is.
 */
function burst(s: TestSocket, frames: object[]): Promise<Frame[]> {
  const ids = frames.map((f) => {
    const id = nextId++;
    s.send({ ...f, id });
    return id;
  });
  return Promise.all(ids.map((id) => received(s, (f) => f.id === id)));
}

const one = (s: TestSocket, frame: object) => () => burst(s, [frame]).then((r) => r[0]!);
const types = (replies: Frame[]) => replies.map((r) => (r.type === 'error' ? r.error.code : r.type));

describe('rate limits per connection', () => {
  it('refuses publishes past rateLimits.connection.publish, delivers none of them, and accepts again after retryAfterMs', async () => {
    server = await startTestServer({ rateLimits: { connection: { publish: { perSecond: 2, burst: 3 } } } });
    const sub = await connect({ sub: 'reader' });
    await sub.subscribe('news');
    const pub = await connect({ sub: 'writer', publish: ['*'] });
    const publish = (n: number) => ({ type: 'publish', channel: 'news', eventType: 'n', payload: n });
    const replies = await burst(pub, [publish(1), publish(2), publish(3), publish(4)]);
    expect(types(replies)).toEqual(['published', 'published', 'published', 'rate_limited']);
    const wait = expectRateLimited(replies[3]!, 'connection.publish');
    expect(wait).toBeLessThanOrEqual(500);
    expect((await retryUntilAccepted(one(pub, publish(5)))).type).toBe('published');
    // Messages of one publisher arrive in order: 4 would have come before 5.
    await sub.waitMessages(4);
    expect(sub.messages().map((m) => m.message.payload)).toEqual([1, 2, 3, 5]);
    expect(await rateLimitedCount('connection.publish')).toBe(refusals([pub]));
  });

  it('refuses subscribe and unsubscribe past rateLimits.connection.subscribe without acting on them', async () => {
    server = await startTestServer({ rateLimits: { connection: { subscribe: { perSecond: 2, burst: 3 } } } });
    const s = await connect({ sub: 'ann' });
    // (A subscribe and an unsubscribe of the same channel are not pipelined: the unsubscribe would
    // cancel the subscribe before its reply.)
    await s.subscribe('a');
    const replies = await burst(s, [
      { type: 'unsubscribe', channel: 'a' },
      { type: 'subscribe', channel: 'b' },
      { type: 'subscribe', channel: 'c' },
      { type: 'unsubscribe', channel: 'b' },
    ]);
    expect(types(replies)).toEqual(['unsubscribed', 'subscribed', 'rate_limited', 'rate_limited']);
    expectRateLimited(replies[2]!, 'connection.subscribe');
    expectRateLimited(replies[3]!, 'connection.subscribe');
    // Neither refusal was acted on: c is not subscribed, b still is.
    expect(server.node.hub.channelSubscribers('c')).toBe(0);
    expect(server.node.hub.channelSubscribers('b')).toBe(1);
    const reply = await retryUntilAccepted(one(s, { type: 'unsubscribe', channel: 'c' }));
    expect(reply.error?.code).toBe('not_subscribed');
    expect(await rateLimitedCount('connection.subscribe')).toBe(refusals([s]));
  });

  it('answers a request past rateLimits.connection.rpc with a rate_limited response on its correlationId', async () => {
    server = await startTestServer({ rpc: { echo: true }, rateLimits: { connection: { rpc: { perSecond: 2, burst: 2 } } } });
    const s = await connect({ sub: 'ann' });
    let n = 0;
    const send = () => {
      const correlationId = `c-${++n}`;
      s.send({ type: 'request', correlationId, method: 'echo', data: n });
      return received(s, (f) => f.type === 'response' && f.correlationId === correlationId);
    };
    const replies = await Promise.all([send(), send(), send()]);
    expect(replies.map((r) => r.data)).toEqual([1, 2, undefined]);
    expectRateLimited(replies[2]!, 'connection.rpc');
    const accepted = await retryUntilAccepted(send);
    expect(accepted.data).toBe(n);
    expect(await rateLimitedCount('connection.rpc')).toBe(refusals([s]));
  });

  it('counts every frame but ack against rateLimits.connection.frames', async () => {
    server = await startTestServer({ rateLimits: { connection: { frames: { perSecond: 1, burst: 4 } } } });
    const s = await connect({ sub: 'ann' }); // the connect frame is the first of the four
    for (let i = 0; i < 20; i++) s.send({ type: 'ack', msgIds: [`m-${i}`] });
    for (let i = 0; i < 3; i++) s.send({ type: 'ping' });
    // Frames are handled in order: once the subscribe is answered, the pings before it were too.
    const [refused] = await burst(s, [{ type: 'subscribe', channel: 'x' }]);
    expectRateLimited(refused!, 'connection.frames');
    expect(s.frames.filter((f) => f.type === 'pong')).toHaveLength(3);
    expect((await retryUntilAccepted(one(s, { type: 'subscribe', channel: 'x' }))).type).toBe('subscribed');
    expect(await rateLimitedCount('connection.frames')).toBe(refusals([s]));
  });

  it('shares rateLimits.user across the connections of one user, and not across anonymous connections', async () => {
    server = await startTestServer({
      channels: { clientPublish: ['open:*'] },
      auth: { anonymous: true },
      rateLimits: { connection: { publish: BIG }, user: { publish: { perSecond: 1, burst: 4 } } },
    });
    const a = await connect({ sub: 'ann', publish: ['*'] });
    const b = await connect({ sub: 'ann', publish: ['*'] });
    const other = await connect({ sub: 'bob', publish: ['*'] });
    const publish = { type: 'publish', channel: 'news', eventType: 'n', payload: 1 };
    // Six publishes of one user over two connections, three each, against a burst of four.
    const replies = (await Promise.all([burst(a, [publish, publish, publish]), burst(b, [publish, publish, publish])])).flat();
    expect(types(replies).filter((t) => t === 'published')).toHaveLength(4);
    const refused = replies.filter(isRateLimited);
    expect(refused).toHaveLength(2);
    for (const r of refused) expectRateLimited(r, 'user.publish');
    // Another user has a bucket of their own.
    expect((await one(other, publish)()).type).toBe('published');
    expect((await retryUntilAccepted(one(b, publish))).type).toBe('published');
    // Anonymous connections have no user: only their connection limits apply.
    const anon1 = await connect(null);
    const anon2 = await connect(null);
    const open = { type: 'publish', channel: 'open:x', eventType: 'n', payload: 1 };
    const anonymous = (await Promise.all([burst(anon1, Array(6).fill(open)), burst(anon2, Array(6).fill(open))])).flat();
    expect(types(anonymous)).toEqual(Array(12).fill('published'));
    expect(await rateLimitedCount('user.publish')).toBe(refusals([a, b]));
    expect(await rateLimitedCount('connection.publish')).toBe(0);
  });

  it('lets channels.namespaces.<ns>.rateLimits replace the connection bucket for that namespace only', async () => {
    const slowRefill = 0.5;
    server = await startTestServer({
      rateLimits: { connection: { publish: { perSecond: slowRefill, burst: 2 } } },
      channels: { namespaces: { chat: { rateLimits: { publish: { perSecond: slowRefill, burst: 6 } } }, slow: { rateLimits: { publish: { perSecond: slowRefill, burst: 1 } } } } },
    });
    const s = await connect({ sub: 'ann', publish: ['*'] });
    const publish = (channel: string) => ({ type: 'publish', channel, eventType: 'n', payload: 1 });
    const replies = await burst(s, [
      // chat: its own, larger bucket — more than the connection's burst is accepted…
      ...Array.from({ length: 6 }, (_, i) => publish(`chat:room-${i % 2}`)),
      publish('chat:room-0'),
      // …and it spent nothing from the connection bucket the other channels use.
      publish('news'),
      publish('other:x'),
      publish('news'),
      // slow: a smaller bucket of its own, separate from chat's.
      publish('slow:a'),
      publish('slow:a'),
    ]);
    expect(types(replies)).toEqual([...Array(6).fill('published'), 'rate_limited', 'published', 'published', 'rate_limited', 'published', 'rate_limited']);
    expectRateLimited(replies[6]!, 'namespace.publish');
    expectRateLimited(replies[9]!, 'connection.publish');
    expectRateLimited(replies[11]!, 'namespace.publish');
    expect(await rateLimitedCount('namespace.publish')).toBe(2);
    expect(await rateLimitedCount('connection.publish')).toBe(1);
  });

  it('closes a connection that keeps sending past its limits with 4506 after rateLimits.abuse.maxRejected refusals', async () => {
    server = await startTestServer({ rateLimits: { connection: { publish: { perSecond: 1, burst: 1 } }, abuse: { maxRejected: 5, windowMs: 10_000 } } });
    const bystander = await connect({ sub: 'bob' });
    await bystander.subscribe('news');
    const s = await connect({ sub: 'ann', publish: ['*'] });
    for (let i = 0; i < 20; i++) s.send({ type: 'publish', id: i + 1, channel: 'news', eventType: 'n', payload: i });
    const { code } = await s.closed;
    expect(code).toBe(4506);
    // Five refusals are tolerated; the sixth closes the connection (its error frame still goes out).
    expect(refusals([s])).toBe(6);
    expect(await rateLimitedCount('connection.publish')).toBe(6);
    // Everyone else is still served, and only the one publish within the limit was acted on.
    await server.publish({ channel: 'news', eventType: 'after', payload: 'still here' });
    await bystander.next((f) => f.type === 'message' && f.message.payload === 'still here');
    expect(bystander.messages().map((m) => m.message.payload)).toEqual([0, 'still here']);
  });

  it('limits nothing with rateLimits.enabled false', async () => {
    server = await startTestServer({ rateLimits: { enabled: false, connection: { publish: { perSecond: 1, burst: 1 }, frames: { perSecond: 1, burst: 1 } } } });
    const s = await connect({ sub: 'ann', publish: ['*'] });
    for (let i = 0; i < 10; i++) expect((await s.request({ type: 'publish', channel: 'news', eventType: 'n', payload: i })).type).toBe('published');
  });
});

interface HttpAnswer {
  status: number;
  retryAfter: string | undefined;
  body: any;
}

/** 429 answers seen by the current test (compared with the metric). */
let http429 = 0;

function seen(answer: HttpAnswer): HttpAnswer {
  if (answer.status === 429) http429++;
  return answer;
}

/** One WebSocket upgrade attempt, answered with the HTTP response when refused (101 when accepted). */
function upgrade(): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.url}/ws`, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, retryAfter: undefined, body: undefined });
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += String(d)));
      res.on('end', () => resolve(seen({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: JSON.parse(text) })));
    });
    req.on('error', reject);
    req.end();
  });
}

async function httpRetryUntilAccepted(attempt: () => Promise<HttpAnswer>, tries = 8): Promise<HttpAnswer> {
  for (let i = 0; ; i++) {
    const answer = await attempt();
    if (answer.status !== 429) return answer;
    if (i >= tries) throw new Error(`still 429 after ${tries} waits`);
    await pause(answer.body.error.details.retryAfterMs as number); // as Retry-After asks
  }
}

function expectHttp429(answer: HttpAnswer, limit: string): void {
  expect(answer.status).toBe(429);
  expect(answer.body.error).toMatchObject({ code: 'rate_limited', temporary: true, details: { limit } });
  const ms = answer.body.error.details.retryAfterMs as number;
  expect(ms).toBeGreaterThan(0);
  expect(answer.retryAfter).toBe(String(Math.ceil(ms / 1000)));
}

describe('rate limits over HTTP', () => {
  afterEach(() => {
    http429 = 0;
  });

  it('answers upgrades past rateLimits.ip.handshakes with 429, Retry-After and rate_limited', async () => {
    server = await startTestServer({ rateLimits: { ip: { handshakes: { perSecond: 1, burst: 3 } } } });
    const answers = await Promise.all([upgrade(), upgrade(), upgrade(), upgrade()]);
    expect(answers.map((a) => a.status).sort()).toEqual([101, 101, 101, 429]);
    expectHttp429(answers.find((a) => a.status === 429)!, 'ip.handshakes');
    expect((await httpRetryUntilAccepted(upgrade)).status).toBe(101);
    expect(await rateLimitedCount('ip.handshakes')).toBe(http429);
  });

  it('answers API requests past rateLimits.apiKey.requests with 429 and Retry-After, per key', async () => {
    const otherKey = 'second-api-key-456';
    server = await startTestServer({ api: { keys: [API_KEY, otherKey] }, rateLimits: { apiKey: { requests: { perSecond: 1, burst: 3 } } } });
    const call = async (key = API_KEY): Promise<HttpAnswer> => {
      const r = await api(server, 'GET', '/api/v1/stats', undefined, key);
      return seen({ status: r.status, retryAfter: r.headers.get('retry-after') ?? undefined, body: r.body });
    };
    const answers = await Promise.all([call(), call(), call(), call()]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 429]);
    expectHttp429(answers.find((a) => a.status === 429)!, 'apiKey.requests');
    // The publish route is behind the same limit, and another key has its own bucket.
    const publish = await api(server, 'POST', '/api/v1/publish', { channel: 'news', eventType: 'n', payload: 1 });
    expect(publish.status).toBe(429);
    http429++;
    expect((await call(otherKey)).status).toBe(200);
    expect((await httpRetryUntilAccepted(() => call())).status).toBe(200);
    expect(await rateLimitedCount('apiKey.requests')).toBe(http429);
  });

  it('answers polls past rateLimits.poll.requests with 429 and Retry-After, per user and per IP for anonymous clients', async () => {
    server = await startTestServer({ auth: { anonymous: true }, channels: { public: ['pub:*'] }, rateLimits: { poll: { requests: { perSecond: 1, burst: 3 } } } });
    const ann = await makeToken({ sub: 'ann' });
    const bob = await makeToken({ sub: 'bob' });
    const poll = async (path: string, token?: string): Promise<HttpAnswer> => {
      const res = await fetch(`${server.url}/poll/v1${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      return seen({ status: res.status, retryAfter: res.headers.get('retry-after') ?? undefined, body: await res.json() });
    };
    // Both poll routes count against the same per-user bucket.
    const annPolls = await Promise.all([poll('/inbox', ann), poll('/channels/news/messages', ann), poll('/inbox', ann), poll('/channels/news/messages', ann)]);
    expect(annPolls.map((a) => a.status).sort()).toEqual([200, 200, 200, 429]);
    expectHttp429(annPolls.find((a) => a.status === 429)!, 'poll.requests');
    expect((await poll('/inbox', bob)).status).toBe(200);
    expect((await httpRetryUntilAccepted(() => poll('/inbox', ann))).status).toBe(200);
    // Anonymous clients share one bucket per IP.
    const anonymous = await Promise.all(Array.from({ length: 4 }, () => poll('/channels/pub:x/messages')));
    expect(anonymous.map((a) => a.status).sort()).toEqual([200, 200, 200, 429]);
    expectHttp429(anonymous.find((a) => a.status === 429)!, 'poll.requests');
    expect(await rateLimitedCount('poll.requests')).toBe(http429);
  });
});

describe('the client SDK under rate limits', () => {
  it('slows a burst of publishes to the server rate instead of being closed with 4506, and loses none', async () => {
    server = await startTestServer({ rateLimits: { connection: { publish: { perSecond: 50, burst: 10 } }, abuse: { maxRejected: 20, windowMs: 10_000 } } });
    const sub = await connect({ sub: 'reader' });
    await sub.subscribe('chat:burst');
    const c = new HeraldClient({ WebSocket, url: server.wsUrl, token: await makeToken({ sub: 'writer', publish: ['chat:*'] }), reconnect: { strategy: 'fixed', delay: 100, maxAttempts: 0 } });
    const closes: number[] = [];
    c.on('state', (st) => {
      if (st.status === 'disconnected' || st.status === 'reconnecting') closes.push((st as { code?: number }).code ?? -1);
    });
    try {
      await c.connect();
      const n = 120;
      const results = await Promise.all(Array.from({ length: n }, (_, i) => c.publish('chat:burst', 'n', i)));
      expect(results).toHaveLength(n);
      expect(closes).toEqual([]);
      await sub.waitMessages(n, 10_000);
      expect(new Set(sub.messages().map((m) => m.message.payload)).size).toBe(n);
      // The SDK pipelines at most 16 publishes, so it is refused at most that often before pacing.
      expect(await rateLimitedCount('connection.publish')).toBeLessThanOrEqual(20);
    } finally {
      c.close();
    }
  }, 20_000);
});
