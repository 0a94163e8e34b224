/**
 * The publish fast path answers exactly as fastify's route does: the same requests go to a server
 * with `api.publishFastPath` on and one with it off, and status, content type and body must match
 * (ids, timestamps and epochs aside). The metric shows which requests the fast path took, so a
 * fast path that silently handed everything to fastify would fail here too.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { API_KEY, startTestServer, TestSocket } from './helpers/server.js';

interface Raw {
  status: number;
  contentType: string | undefined;
  retryAfter: string | undefined;
  body: string;
}

interface Case {
  name: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  path?: string;
  /** Send the body with Transfer-Encoding: chunked (no Content-Length). */
  chunked?: boolean;
  /** Whether the fast path should answer it (false: handed to fastify). */
  fast: boolean;
  /** The status both must answer, where the case pins it. */
  status?: number;
}

function send(server: HeraldServer, c: Case): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const body = c.body === undefined ? Buffer.alloc(0) : Buffer.from(c.body);
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, ...c.headers };
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    if (!c.chunked) headers['content-length'] = String(body.length);
    const req = request(`${server.url}${c.path ?? '/api/v1/publish'}`, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], retryAfter: res.headers['retry-after'], body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (c.chunked) {
      req.write(body.subarray(0, 5));
      req.end(body.subarray(5));
    } else req.end(body);
  });
}

/** Generated ids, timestamps and random epochs differ between two servers by design. */
function normalized(text: string): string {
  return text
    .replace(/"msgId":"[0-9a-f-]{36}"/g, '"msgId":"<uuid>"')
    .replace(/"timestamp":\d+/g, '"timestamp":<ts>')
    .replace(/"epoch":"[^"]+"/g, '"epoch":"<epoch>"');
}

async function fastPathCount(server: HeraldServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^herald_publish_fast_path_requests_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

const j = (v: unknown): string => JSON.stringify(v);
/** Scoped keys (api-key.ts) besides the plain admin key: both servers hold them. */
const NEWS_KEY = 'publish-news-key-1';
const READ_KEY = 'read-only-key-1';
const ADMIN_KEY = 'admin-object-key-1';
const KEYS = [API_KEY, { key: NEWS_KEY, scope: 'publish', channels: ['news', 'news:*'] }, { key: READ_KEY, scope: 'read' }, { key: ADMIN_KEY, scope: 'admin' }];
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const CASES: Case[] = [
  { name: 'channel publish', body: j({ channel: 'news', eventType: 'story', payload: { t: 1 } }), fast: true },
  { name: 'with a msgId', body: j({ channel: 'news', eventType: 'story', payload: 2, msgId: 'story-2' }), fast: true },
  { name: 'the same msgId again (duplicate)', body: j({ channel: 'news', eventType: 'story', payload: 2, msgId: 'story-2' }), fast: true },
  { name: 'user publish', body: j({ user: 'ann', eventType: 'note', payload: 'hi' }), fast: true },
  { name: 'broadcast with a filter', body: j({ broadcast: true, filter: { tag: 'plan', op: 'eq', value: 'pro' }, eventType: 'promo', payload: null }), fast: true },
  { name: 'source, version, delivery', body: j({ channel: 'news', eventType: 'a.b/c', payload: [1], source: 'svc', version: '2.0', delivery: 'at-least-once' }), fast: true },
  { name: 'charset parameter', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { 'content-type': 'application/json; charset=utf-8' }, fast: true },
  { name: 'upper-case media type', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { 'content-type': 'Application/JSON' }, fast: true },
  { name: 'X-API-Key header', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { authorization: '', 'x-api-key': API_KEY }, fast: true },
  { name: 'byte-order mark', body: `\ufeff${j({ channel: 'news', eventType: 'x', payload: 1 })}`, fast: true },
  { name: 'unknown field', body: j({ channel: 'news', eventType: 'x', payload: 1, colour: 'red' }), fast: true },
  { name: 'missing eventType', body: j({ channel: 'news', payload: 1 }), fast: true },
  { name: 'missing payload', body: j({ channel: 'news', eventType: 'x' }), fast: true },
  { name: 'eventType with a space', body: j({ channel: 'news', eventType: 'a b', payload: 1 }), fast: true },
  { name: 'broadcast false', body: j({ broadcast: false, eventType: 'x', payload: 1 }), fast: true },
  { name: 'channel of the wrong type', body: j({ channel: 7, eventType: 'x', payload: 1 }), fast: true },
  { name: 'channel too long', body: j({ channel: 'c'.repeat(256), eventType: 'x', payload: 1 }), fast: true },
  { name: 'invalid channel name', body: j({ channel: 'bad name', eventType: 'x', payload: 1 }), fast: true },
  { name: 'two audiences', body: j({ channel: 'news', user: 'ann', eventType: 'x', payload: 1 }), fast: true },
  { name: 'no audience', body: j({ eventType: 'x', payload: 1 }), fast: true },
  { name: 'invalid filter', body: j({ broadcast: true, filter: { tag: 'plan', op: 'like', value: 'p' }, eventType: 'x', payload: 1 }), fast: true },
  { name: 'message over limits.maxMessageBytes', body: j({ channel: 'news', eventType: 'x', payload: 'p'.repeat(3000) }), fast: true },
  { name: 'array body', body: '[]', fast: true },
  { name: 'null body', body: 'null', fast: true },
  { name: 'string body', body: '"publish"', fast: true },
  { name: 'malformed JSON', body: '{"channel": "news",', fast: true },
  { name: 'empty body', body: '', fast: true },
  { name: '__proto__ key', body: '{"channel":"news","eventType":"x","payload":{"__proto__":{"admin":true}}}', fast: true },
  { name: 'constructor.prototype key', body: '{"channel":"news","eventType":"x","payload":{"constructor":{"prototype":{"admin":true}}}}', fast: true },
  { name: 'payload at limits.maxJsonDepth (body 1 + 63)', body: `{"channel":"news","eventType":"x","payload":${'['.repeat(63)}${']'.repeat(63)}}`, fast: true, status: 200 },
  { name: 'payload one level past limits.maxJsonDepth', body: `{"channel":"news","eventType":"x","payload":${'['.repeat(64)}${']'.repeat(64)}}`, fast: true, status: 400 },
  { name: 'payload nested 100 000 deep', body: `{"channel":"news","eventType":"x","payload":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, fast: true, status: 400 },
  { name: 'too deep and malformed', body: '{"payload":'.repeat(80), fast: true, status: 400 },
  { name: 'invalid UTF-8', body: Buffer.concat([Buffer.from('{"channel":"news","eventType":"x","payload":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), fast: true },
  { name: 'channel-limited key, its channel', body: j({ channel: 'news:1', eventType: 'x', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 200 },
  { name: 'channel-limited key in X-API-Key', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { authorization: '', 'x-api-key': NEWS_KEY }, fast: true, status: 200 },
  { name: 'channel-limited key, another channel', body: j({ channel: 'sports', eventType: 'x', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 403 },
  { name: 'channel-limited key, a user', body: j({ user: 'ann', eventType: 'x', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 403 },
  { name: 'channel-limited key, broadcast', body: j({ broadcast: true, eventType: 'x', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 403 },
  { name: 'channel-limited key, two audiences', body: j({ channel: 'news', user: 'ann', eventType: 'x', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 403 },
  { name: 'channel-limited key, invalid body', body: j({ channel: 'sports', payload: 1 }), headers: as(NEWS_KEY), fast: true, status: 400 },
  { name: 'channel-limited key, malformed JSON', body: '{"channel":', headers: as(NEWS_KEY), fast: true, status: 400 },
  { name: 'admin key written as an object', body: j({ user: 'ann', eventType: 'x', payload: 1 }), headers: as(ADMIN_KEY), fast: true, status: 200 },
  { name: 'read-only key (refused by fastify on both)', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: as(READ_KEY), fast: false, status: 403 },
  { name: 'no API key', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { authorization: '' }, fast: false },
  { name: 'wrong API key', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { authorization: 'Bearer not-the-key-at-all' }, fast: false },
  { name: 'text/plain', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { 'content-type': 'text/plain' }, fast: false },
  { name: 'no content type', body: j({ channel: 'news', eventType: 'x', payload: 1 }), headers: { 'content-type': '' }, fast: false },
  { name: 'chunked body', body: j({ channel: 'news', eventType: 'x', payload: 1 }), chunked: true, fast: false },
  { name: 'query string', body: j({ channel: 'news', eventType: 'x', payload: 1 }), path: '/api/v1/publish?trace=1', fast: false },
  { name: 'body over the body limit', body: j({ channel: 'news', eventType: 'x', payload: 'p'.repeat(1_100_000) }), fast: false },
];

describe('publish fast path', () => {
  let fast: HeraldServer;
  let slow: HeraldServer;
  const limits = { maxMessageBytes: 2048 };

  beforeAll(async () => {
    fast = await startTestServer({ limits, api: { keys: KEYS, publishFastPath: true } });
    slow = await startTestServer({ limits, api: { keys: KEYS, publishFastPath: false } });
  });
  afterAll(async () => {
    await fast?.close();
    await slow?.close();
  });

  it('answers every request exactly as the fastify route does, and takes only the plain ones', async () => {
    for (const c of CASES) {
      const before = await fastPathCount(fast);
      const a = await send(fast, c);
      const taken = (await fastPathCount(fast)) - before;
      const b = await send(slow, c);
      expect({ case: c.name, status: a.status, contentType: a.contentType, body: normalized(a.body) }).toEqual({ case: c.name, status: b.status, contentType: b.contentType, body: normalized(b.body) });
      expect({ case: c.name, taken }).toEqual({ case: c.name, taken: c.fast ? 1 : 0 });
      if (c.status !== undefined) expect({ case: c.name, status: a.status }).toEqual({ case: c.name, status: c.status });
    }
    expect(await fastPathCount(slow)).toBe(0);
  });

  it('delivers what it accepts, in order, to subscribers and users', async () => {
    const s = await TestSocket.connect(fast, { sub: 'bob' });
    await s.subscribe('live');
    for (let i = 1; i <= 20; i++) await send(fast, { name: 'n', body: j({ channel: 'live', eventType: 'n', payload: i }), fast: true });
    await send(fast, { name: 'u', body: j({ user: 'bob', eventType: 'direct', payload: 'for bob' }), fast: true });
    const msgs = await s.waitMessages(21);
    expect(msgs.slice(0, 20).map((m) => m.message.payload)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(msgs[20]!.message.payload).toBe('for bob');
    s.close();
  });

  it('keeps the connection usable after an error and after an aborted upload', async () => {
    const bad = await send(fast, { name: 'bad', body: '{', fast: true });
    expect(bad.status).toBe(400);
    // An upload cut off mid-body: the server must neither answer garbage nor fall over.
    await new Promise<void>((resolve) => {
      const req = request(`${fast.url}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, 'content-length': '100' } });
      req.on('error', () => resolve());
      req.write('{"channel":"news",');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    const ok = await send(fast, { name: 'ok', body: j({ channel: 'news', eventType: 'x', payload: 1 }), fast: true });
    expect(ok.status).toBe(200);
  });
});

describe('publish fast path under the API key rate limit', () => {
  let fast: HeraldServer;
  let slow: HeraldServer;
  // A token every 100 s: past the burst, every request is refused for the rest of the test, and
  // Retry-After (whole seconds) comes out the same on both servers.
  const rateLimits = { apiKey: { requests: { perSecond: 0.01, burst: 2 } } };

  beforeAll(async () => {
    fast = await startTestServer({ rateLimits, api: { publishFastPath: true } });
    slow = await startTestServer({ rateLimits, api: { publishFastPath: false } });
  });
  afterAll(async () => {
    await fast?.close();
    await slow?.close();
  });

  it('refuses past rateLimits.apiKey.requests exactly as the fastify route does: 429, Retry-After, the same body', async () => {
    const publish: Case = { name: 'publish', body: j({ channel: 'news', eventType: 'x', payload: 1 }), fast: true };
    const cases: Case[] = [
      publish,
      publish,
      { ...publish, name: 'past the limit' },
      { ...publish, name: 'invalid body past the limit', body: '{' },
      { ...publish, name: 'chunked past the limit (fastify on both)', chunked: true, fast: false },
    ];
    // retryAfterMs counts down between the two servers' answers; everything else must match.
    const comparable = (r: Raw) => ({ status: r.status, contentType: r.contentType, retryAfter: r.retryAfter, body: normalized(r.body).replace(/\d+ ms/, '<n> ms').replace(/"retryAfterMs":\d+/, '"retryAfterMs":<n>') });
    const answers: Raw[] = [];
    for (const c of cases) {
      const before = await fastPathCount(fast);
      const a = await send(fast, c);
      const taken = (await fastPathCount(fast)) - before;
      const b = await send(slow, c);
      expect({ case: c.name, ...comparable(a) }).toEqual({ case: c.name, ...comparable(b) });
      expect({ case: c.name, taken }).toEqual({ case: c.name, taken: c.fast ? 1 : 0 });
      answers.push(a);
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429, 429]);
    const refused = JSON.parse(answers[2]!.body);
    expect(refused.error).toMatchObject({ code: 'rate_limited', temporary: true, details: { limit: 'apiKey.requests' } });
    expect(answers[2]!.retryAfter).toBe(String(Math.ceil(refused.error.details.retryAfterMs / 1000)));
    expect(Number(answers[2]!.retryAfter)).toBeGreaterThan(90);
  });
});
