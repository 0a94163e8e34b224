/**
 * Scoped API keys (`api.keys` entries written as objects): each scope reaches its routes and is
 * refused with 403 `api_key_scope` elsewhere; a channel-limited publish key publishes to its
 * channels only, on the single and batch routes and on the publish fast path alike; plain string
 * keys keep the whole API; unknown keys stay 401. Every case runs against a server with the
 * publish fast path and one without it. Also: the configuration forms (and their errors, the
 * environment, `herald config check` masking), `herald publish` with a scoped key, and the rate
 * limit per key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskSecrets } from '../src/cli/mask.js';
import { ConfigError, resolveConfig } from '../src/config.js';
import { configFromEnv } from '../src/config-env.js';
import { exposedWellKnownSecrets } from '../src/exposure.js';
import type { HeraldServer } from '../src/server.js';
import { runCli } from './helpers/cli.js';
import { api, API_KEY, startTestServer, TestSocket } from './helpers/server.js';

const ADMIN = 'admin-object-key-1';
const PUBLISH_ANY = 'publish-any-key-1';
const PUBLISH_NEWS = 'publish-news-key-1';
const READ = 'read-only-key-1';
const KEYS = [
  API_KEY, // a plain string: admin, as before scopes existed
  { key: ADMIN, scope: 'admin' },
  { key: PUBLISH_ANY, scope: 'publish' },
  { key: PUBLISH_NEWS, scope: 'publish', channels: ['news:*', 'alerts'] },
  { key: READ, scope: 'read' },
];

type Route = { group: 'publish' | 'read' | 'admin'; method: string; path: string; body?: unknown };
const ROUTES: Route[] = [
  { group: 'publish', method: 'POST', path: '/api/v1/publish', body: { channel: 'news:1', eventType: 'x', payload: 1 } },
  { group: 'publish', method: 'POST', path: '/api/v1/publish/batch', body: { messages: [{ channel: 'news:1', eventType: 'x', payload: 1 }] } },
  { group: 'read', method: 'GET', path: '/api/v1/stats' },
  { group: 'read', method: 'GET', path: '/api/v1/channels' },
  { group: 'read', method: 'GET', path: '/api/v1/nodes' },
  { group: 'read', method: 'GET', path: '/api/v1/users/ann/connections' },
  { group: 'read', method: 'GET', path: '/api/v1/messages/some-msg' },
  { group: 'admin', method: 'POST', path: '/api/v1/users/ann/disconnect', body: {} },
  { group: 'admin', method: 'POST', path: '/api/v1/connections/c-none/disconnect', body: {} },
  { group: 'admin', method: 'POST', path: '/api/v1/connections/c-none/request', body: { method: 'ping' } },
];
/** What each key may reach. */
const MAY: Record<string, Array<Route['group']>> = {
  [API_KEY]: ['publish', 'read', 'admin'],
  [ADMIN]: ['publish', 'read', 'admin'],
  [PUBLISH_ANY]: ['publish'],
  [PUBLISH_NEWS]: ['publish'],
  [READ]: ['read'],
};

const SERVERS = [
  { name: 'fast path', publishFastPath: true },
  { name: 'fastify only', publishFastPath: false },
];

describe.each(SERVERS)('scoped API keys ($name)', ({ publishFastPath }) => {
  let server: HeraldServer;
  beforeAll(async () => {
    server = await startTestServer({ api: { keys: KEYS, publishFastPath } });
  });
  afterAll(async () => server?.close());

  it('lets each key reach its route groups and refuses the others with 403 api_key_scope', async () => {
    for (const key of Object.keys(MAY)) {
      for (const r of ROUTES) {
        const res = await api(server, r.method, r.path, r.body, key);
        const label = `${key} ${r.method} ${r.path}`;
        if (MAY[key]!.includes(r.group)) {
          // Allowed: whatever the route answers (200, or 404 for the unknown ids), never a refusal of the key.
          expect([200, 404], `${label}: ${JSON.stringify(res.body)}`).toContain(res.status);
        } else {
          expect({ label, status: res.status, code: res.body.error?.code }).toEqual({ label, status: 403, code: 'api_key_scope' });
          expect(res.body.error.temporary).toBe(false);
        }
      }
    }
  });

  it('answers HEAD like GET for each scope, and 404 for a route that does not exist whatever the scope', async () => {
    expect((await fetch(`${server.url}/api/v1/stats`, { method: 'HEAD', headers: { authorization: `Bearer ${READ}` } })).status).toBe(200);
    expect((await fetch(`${server.url}/api/v1/stats`, { method: 'HEAD', headers: { authorization: `Bearer ${PUBLISH_ANY}` } })).status).toBe(403);
    for (const key of [READ, PUBLISH_NEWS, ADMIN]) {
      for (const [method, path] of [['GET', '/api/v1/nope'], ['POST', '/api/v1/nope'], ['GET', '/api/v1/publish']]) {
        const res = await api(server, method!, path!, method === 'POST' ? {} : undefined, key);
        expect({ key, method, path, status: res.status, code: res.body.error?.code }).toEqual({ key, method, path, status: 404, code: 'not_found' });
      }
    }
  });

  it('names what the key may do in the refusal', async () => {
    const read = await api(server, 'POST', '/api/v1/publish', { channel: 'news:1', eventType: 'x', payload: 1 }, READ);
    expect(read.body.error).toMatchObject({ code: 'api_key_scope', details: { scope: 'read' } });
    expect(read.body.error.message).toContain('may read');
    const pub = await api(server, 'GET', '/api/v1/stats', undefined, PUBLISH_NEWS);
    expect(pub.body.error).toMatchObject({ code: 'api_key_scope', details: { scope: 'publish', channels: ['news:*', 'alerts'] } });
    expect(pub.body.error.message).toContain('publish to channels matching news:*, alerts');
  });

  it('keeps a channel-limited publish key to its channel patterns', async () => {
    for (const channel of ['news:1', 'news:sport:2', 'alerts']) {
      const ok = await api(server, 'POST', '/api/v1/publish', { channel, eventType: 'x', payload: 1 }, PUBLISH_NEWS);
      expect({ channel, status: ok.status }).toEqual({ channel, status: 200 });
    }
    const outside = [
      { channel: 'sports' },
      { channel: 'alerts:1' },
      { channel: 'newsletter' },
      { user: 'ann' },
      { broadcast: true },
      { broadcast: true, filter: { tag: 'plan', op: 'eq', value: 'pro' } },
    ];
    for (const target of outside) {
      const res = await api(server, 'POST', '/api/v1/publish', { ...target, eventType: 'x', payload: 1 }, PUBLISH_NEWS);
      expect({ target, status: res.status, code: res.body.error?.code }).toEqual({ target, status: 403, code: 'api_key_scope' });
      expect(res.body.error.details).toEqual({ scope: 'publish', channels: ['news:*', 'alerts'] });
    }
    // A publish key without channels may publish anywhere.
    for (const target of outside) {
      const res = await api(server, 'POST', '/api/v1/publish', { ...target, eventType: 'x', payload: 1 }, PUBLISH_ANY);
      expect({ target, status: res.status }).toEqual({ target, status: 200 });
    }
  });

  it('refuses a whole batch when one message is outside the key\'s channels, publishing none of it', async () => {
    const s = await TestSocket.connect(server, { sub: 'bob' });
    await s.subscribe('news:batch');
    const refused = await api(server, 'POST', '/api/v1/publish/batch', {
      messages: [
        { channel: 'news:batch', eventType: 'x', payload: 'refused' },
        { channel: 'news:batch', eventType: 'x', payload: 'refused too' },
        { user: 'bob', eventType: 'x', payload: 'refused' },
      ],
    }, PUBLISH_NEWS);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'api_key_scope', details: { scope: 'publish', channels: ['news:*', 'alerts'], index: 2 } });
    expect(refused.body.error.message).toMatch(/^messages\[2\]: /);
    const accepted = await api(server, 'POST', '/api/v1/publish/batch', { messages: [{ channel: 'news:batch', eventType: 'x', payload: 'accepted' }] }, PUBLISH_NEWS);
    expect(accepted.status).toBe(200);
    expect(accepted.body.results).toHaveLength(1);
    // The accepted batch is the first thing the subscriber gets: nothing of the refused one went out.
    const [first] = await s.waitMessages(1);
    expect(first!.message.payload).toBe('accepted');
    s.close();
  });

  it('keeps plain and unknown keys as before: no key 401 api_key_required, a wrong key 401 invalid_api_key', async () => {
    const body = { channel: 'anywhere', eventType: 'x', payload: 1 };
    expect((await api(server, 'POST', '/api/v1/publish', body, API_KEY)).status).toBe(200);
    expect((await api(server, 'POST', '/api/v1/users/ann/disconnect', {}, API_KEY)).status).toBe(200);
    const none = await api(server, 'POST', '/api/v1/publish', body, null);
    expect({ status: none.status, code: none.body.error.code }).toEqual({ status: 401, code: 'api_key_required' });
    for (const wrong of ['publish-news-key-2', `${READ}x`, 'scope']) {
      for (const r of ROUTES) {
        const res = await api(server, r.method, r.path, r.body, wrong);
        expect({ wrong, path: r.path, status: res.status, code: res.body.error?.code }).toEqual({ wrong, path: r.path, status: 401, code: 'invalid_api_key' });
      }
    }
  });
});

describe('herald publish with a scoped key', () => {
  let server: HeraldServer;
  beforeAll(async () => {
    server = await startTestServer({ api: { keys: KEYS } });
  });
  afterAll(async () => server?.close());

  it('publishes with a publish key from --key or HERALD_API_KEY, and reports a refusal outside its channels', async () => {
    const byFlag = await runCli(['publish', '--url', server.url, '--key', PUBLISH_NEWS, '--channel', 'news:cli', '-e', 'x', '-d', '1']);
    expect(byFlag.code, byFlag.stderr).toBe(0);
    expect(JSON.parse(byFlag.stdout)).toHaveProperty('msgId');
    const byEnv = await runCli(['publish', '--url', server.url, '--channel', 'alerts', '-e', 'x', '-d', '1'], { HERALD_API_KEY: PUBLISH_NEWS });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const outside = await runCli(['publish', '--url', server.url, '--channel', 'sports', '-e', 'x', '-d', '1'], { HERALD_API_KEY: PUBLISH_NEWS });
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('api_key_scope');
    const read = await runCli(['publish', '--url', server.url, '--key', READ, '--channel', 'news:cli', '-e', 'x', '-d', '1']);
    expect(read.code).toBe(1);
    expect(read.stderr).toContain('api_key_scope');
  });
});

describe('scoped API keys and rateLimits.apiKey', () => {
  let server: HeraldServer;
  beforeAll(async () => {
    server = await startTestServer({ api: { keys: KEYS }, rateLimits: { apiKey: { requests: { perSecond: 0.01, burst: 2 } } } });
  });
  afterAll(async () => server?.close());

  it('limits each key on its own, whatever its scope', async () => {
    const publish = { channel: 'news:1', eventType: 'x', payload: 1 };
    expect((await api(server, 'POST', '/api/v1/publish', publish, PUBLISH_NEWS)).status).toBe(200);
    expect((await api(server, 'POST', '/api/v1/publish', publish, PUBLISH_NEWS)).status).toBe(200);
    const third = await api(server, 'POST', '/api/v1/publish', publish, PUBLISH_NEWS);
    expect({ status: third.status, code: third.body.error.code, limit: third.body.error.details.limit }).toEqual({ status: 429, code: 'rate_limited', limit: 'apiKey.requests' });
    // Another key has its own bucket.
    expect((await api(server, 'GET', '/api/v1/stats', undefined, READ)).status).toBe(200);
    expect((await api(server, 'POST', '/api/v1/publish', publish, PUBLISH_ANY)).status).toBe(200);
  });
});

describe('scoped API keys in the configuration', () => {
  const refused = (keys: unknown[]): string => {
    try {
      resolveConfig({ api: { keys } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(keys)}`);
  };

  it('accepts strings and objects side by side, and names the problem of a bad entry', () => {
    expect(resolveConfig({ api: { keys: KEYS } }).api.keys).toEqual(KEYS);
    expect(refused(['short'])).toContain('api.keys.0: must NOT have fewer than 8 characters');
    expect(refused([{ key: 'short', scope: 'read' }])).toContain('api.keys.0.key: must NOT have fewer than 8 characters');
    expect(refused([{ key: 'long-enough-key', scope: 'write' }])).toContain('api.keys.0.scope: must be equal to one of the allowed values');
    expect(refused([{ key: 'long-enough-key' }])).toContain("api.keys.0: must have required property 'scope'");
    expect(refused([{ key: 'long-enough-key', scope: 'read', channels: ['news:*'] }])).toContain('api.keys.0.scope: must be equal to constant ("publish")');
    expect(refused([{ key: 'long-enough-key', scope: 'publish', channels: [] }])).toContain('api.keys.0.channels');
    expect(refused([{ key: 'long-enough-key', scope: 'publish', extra: 1 }])).toContain('api.keys.0: must NOT have additional properties "extra"');
    expect(refused(['long-enough-key', { key: 'long-enough-key', scope: 'read' }])).toContain('api.keys.1: the same key is already listed at api.keys.0');
  });

  it('takes keys from the environment comma-separated (admin) or as a JSON array (any form)', () => {
    expect(configFromEnv({ HERALD_API__KEYS: 'a-long-key-1,a-long-key-2' })).toEqual({ api: { keys: ['a-long-key-1', 'a-long-key-2'] } });
    const json = JSON.stringify([API_KEY, { key: READ, scope: 'read' }]);
    expect(resolveConfig(configFromEnv({ HERALD_API__KEYS: json })).api.keys).toEqual([API_KEY, { key: READ, scope: 'read' }]);
  });

  it('masks the key of an object entry in `herald config check`, showing its scope and channels', () => {
    const shown = maskSecrets(resolveConfig({ api: { keys: KEYS } })) as { api: { keys: unknown[] } };
    expect(JSON.stringify(shown)).not.toMatch(new RegExp([API_KEY, ADMIN, PUBLISH_ANY, PUBLISH_NEWS, READ].join('|')));
    expect(shown.api.keys).toEqual([
      `<masked: ${API_KEY.length} characters>`,
      { key: `<masked: ${ADMIN.length} characters>`, scope: 'admin' },
      { key: `<masked: ${PUBLISH_ANY.length} characters>`, scope: 'publish' },
      { key: `<masked: ${PUBLISH_NEWS.length} characters>`, scope: 'publish', channels: ['news:*', 'alerts'] },
      { key: `<masked: ${READ.length} characters>`, scope: 'read' },
    ]);
  });

  it('refuses a published example key beyond loopback in the object form too', () => {
    const api = { keys: [{ key: 'dev-api-key', scope: 'read' }] };
    expect(() => resolveConfig({ server: { host: '0.0.0.0' }, api })).toThrow(/api\.keys holds an example secret published with Herald/);
    const local = resolveConfig({ server: { host: '127.0.0.1' }, api });
    expect(exposedWellKnownSecrets(local)).toEqual([]);
  });
});
