/**
 * The admin UI's server side without a browser: sessions (lifetime, idle time, cap), the CSRF
 * token and Origin rule, login (password hash, admin API key, refusals, rate limit), the cookie's
 * flags, the start-up refusal without a credential, 404 when the UI is off, 401 without a session,
 * the sampler's quantiles and cluster sums, and `herald admin hash-password`. The browser test
 * (browser/admin-ui.test.ts) drives the pages themselves.
 */
import { spawn } from 'node:child_process';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@herald/protocol';
import { configWarnings } from '../src/cli/advice.js';
import { maskSecrets } from '../src/cli/mask.js';
import { resolveConfig } from '../src/config.js';
import { installErrorHandling } from '../src/http/error-handler.js';
import { AdminGuard, cookieValue } from '../src/http/admin-ui/guard.js';
import { adminUiRoutes, type AdminUiOptions } from '../src/http/admin-ui/routes.js';
import { hashPassword, parsePasswordHash, verifyPassword } from '../src/http/admin-ui/password.js';
import { AdminSampler, combine, quantileMs } from '../src/http/admin-ui/sampler.js';
import { Metrics } from '../src/metrics.js';
import { csrfMatches, SessionStore } from '../src/http/admin-ui/sessions.js';
import type { HeraldServer } from '../src/server.js';
import { CLI } from './helpers/paths.js';
import { runCli } from './helpers/cli.js';
import { API_KEY, makeToken, startTestServer, TestSocket } from './helpers/server.js';
import { waitForValue } from './helpers/wait.js';

const PASSWORD = 'correct-horse-battery-staple';
const READ_KEY = 'read-only-key-0123456789';
let HASH: string;

beforeAll(async () => {
  HASH = await hashPassword(PASSWORD);
});

describe('admin UI sessions', () => {
  const limits = { ttlMs: 10_000, idleMs: 3_000, maxSessions: 3 };

  it('finds a session by its id only, and ends it on delete', () => {
    const store = new SessionStore(limits, () => 0);
    const { id, session } = store.create('password');
    expect(store.get(id)).toBe(session);
    expect(store.get(`${id}x`)).toBeUndefined();
    expect(store.get(undefined)).toBeUndefined();
    expect(store.get('a'.repeat(500))).toBeUndefined();
    store.delete(id);
    expect(store.get(id)).toBeUndefined();
  });

  it('ends a session after idleMs without use and after ttlMs whatever its use', () => {
    let now = 0;
    const store = new SessionStore(limits, () => now);
    const idle = store.create('password');
    const busy = store.create('password');
    for (now = 2_000; now < 10_000; now += 2_000) expect(store.get(busy.id)).toBeDefined();
    expect(store.get(idle.id)).toBeUndefined();
    now = 10_000;
    expect(store.get(busy.id)).toBeUndefined();
  });

  it('holds at most maxSessions, evicting the least recently used', () => {
    let now = 0;
    const store = new SessionStore(limits, () => now);
    const a = store.create('password');
    const b = store.create('password');
    const c = store.create('password');
    now = 1;
    expect(store.get(a.id)).toBeDefined(); // a is now the most recently used; b the least
    const d = store.create('password');
    expect(store.size).toBe(3);
    expect(store.get(b.id)).toBeUndefined();
    for (const s of [a, c, d]) expect(store.get(s.id)).toBeDefined();
  });

  it('gives each session its own CSRF token, matched exactly', () => {
    const store = new SessionStore(limits);
    const one = store.create('password').session;
    const two = store.create('password').session;
    expect(one.csrf).not.toBe(two.csrf);
    expect(csrfMatches(one, one.csrf)).toBe(true);
    expect(csrfMatches(one, two.csrf)).toBe(false);
    expect(csrfMatches(one, undefined)).toBe(false);
    expect(csrfMatches(one, `${one.csrf}x`)).toBe(false);
  });

  it('reads the session cookie among others', () => {
    expect(cookieValue('a=1; herald_admin=xyz; b=2', 'herald_admin')).toBe('xyz');
    expect(cookieValue('herald_administrator=1', 'herald_admin')).toBeUndefined();
    expect(cookieValue(undefined, 'herald_admin')).toBeUndefined();
  });
});

describe('admin UI password and login', () => {
  it('verifies the password of a hash and nothing else', async () => {
    const parsed = parsePasswordHash(HASH);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(await verifyPassword(parsed, PASSWORD)).toBe(true);
    expect(await verifyPassword(parsed, `${PASSWORD} `)).toBe(false);
    expect(await hashPassword(PASSWORD)).not.toBe(HASH); // salted
  });

  it('says what is wrong with an unusable hash', () => {
    expect(parsePasswordHash('plain-text-password')).toMatch(/herald admin hash-password/);
    expect(parsePasswordHash(HASH.replace('$32768$', '$1000$'))).toMatch(/power of two/);
    expect(parsePasswordHash(HASH.replace('$32768$', '$4194304$'))).toMatch(/power of two/);
  });

  it('limits login attempts per address, right or wrong, and lets them through again as time passes', async () => {
    let now = 0;
    const ui = { ...resolveConfig({}).admin.ui, passwordHash: HASH, loginAttemptsPerMinute: 3 };
    const guard = new AdminGuard(ui, [API_KEY], () => now);
    for (let i = 0; i < 2; i++) await expect(guard.login('10.0.0.1', 'wrong')).rejects.toMatchObject({ code: ErrorCode.ADMIN_LOGIN_FAILED });
    expect(await guard.login('10.0.0.1', PASSWORD)).toBe('password');
    await expect(guard.login('10.0.0.1', PASSWORD)).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { limit: 'admin.ui.loginAttemptsPerMinute' } });
    // Another address has its own allowance.
    expect(await guard.login('10.0.0.2', API_KEY)).toBe('api-key');
    now += 20_000; // one attempt back at 3 a minute
    expect(await guard.login('10.0.0.1', PASSWORD)).toBe('password');
    await expect(guard.login('10.0.0.1', PASSWORD)).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED });
  });

  it('accepts only admin-scope API keys, and none with apiKeyLogin off', async () => {
    const base = resolveConfig({}).admin.ui;
    const keys = [API_KEY, { key: READ_KEY, scope: 'read' as const }];
    const guard = new AdminGuard({ ...base, enabled: true }, keys);
    expect(await guard.login('a', API_KEY)).toBe('api-key');
    await expect(guard.login('a', READ_KEY)).rejects.toMatchObject({ code: ErrorCode.ADMIN_LOGIN_FAILED });
    const off = new AdminGuard({ ...base, enabled: true, apiKeyLogin: false, passwordHash: HASH }, keys);
    await expect(off.login('a', API_KEY)).rejects.toMatchObject({ code: ErrorCode.ADMIN_LOGIN_FAILED });
  });

  it('refuses to start with the UI on and no credential, in one line naming the keys', () => {
    const on = { admin: { ui: { enabled: true } } };
    expect(() => resolveConfig(on)).toThrow(/^admin\.ui\.enabled: the admin UI needs a credential: set admin\.ui\.passwordHash .*api\.keys/);
    expect(() => resolveConfig(on, { api: { keys: [{ key: READ_KEY, scope: 'read' }] } })).toThrow(/admin\.ui\.enabled/);
    expect(() => resolveConfig(on, { api: { keys: [API_KEY] }, admin: { ui: { apiKeyLogin: false } } })).toThrow(/admin\.ui\.enabled/);
    expect(() => resolveConfig(on, { admin: { ui: { passwordHash: 'secret' } } })).toThrow(/admin\.ui\.passwordHash/);
    expect(resolveConfig(on, { api: { keys: [API_KEY] } }).admin.ui.enabled).toBe(true);
    expect(resolveConfig(on, { admin: { ui: { passwordHash: HASH } } }).admin.ui.enabled).toBe(true);
    expect(resolveConfig({}).admin.ui.enabled).toBe(false);
  });
});

describe('admin UI config advice', () => {
  it('warns when the UI is reachable from other machines without TLS in front', () => {
    const on = { api: { keys: [API_KEY] }, admin: { ui: { enabled: true } } };
    const warned = (extra: object) => configWarnings(resolveConfig(on, extra)).some((w) => w.startsWith('admin.ui.enabled and server.host'));
    expect(warned({ server: { host: '0.0.0.0' } })).toBe(true);
    expect(warned({ server: { host: '0.0.0.0', trustProxy: 1 } })).toBe(false);
    expect(warned({ server: { host: '127.0.0.1' } })).toBe(false);
    expect(configWarnings(resolveConfig({ server: { host: '0.0.0.0' }, api: { keys: [API_KEY] } })).some((w) => w.startsWith('admin.ui'))).toBe(false);
  });

  it('masks the password hash in the printed config', () => {
    const masked = maskSecrets(resolveConfig({ admin: { ui: { enabled: true, passwordHash: HASH } } })) as { admin: { ui: { passwordHash: string } } };
    expect(masked.admin.ui.passwordHash).toMatch(/^<masked/);
  });
});

describe('admin UI sampler', () => {
  it('interpolates quantiles within histogram buckets', () => {
    // 100 observations: 50 up to 1 ms, 40 more up to 2 ms, 10 more up to 5 ms.
    const buckets: Array<[number, number]> = [[0.001, 50], [0.002, 90], [0.005, 100], [Infinity, 100]];
    expect(quantileMs(buckets, 0.5)).toBe(1);
    expect(quantileMs(buckets, 0.7)).toBe(1.5);
    expect(quantileMs(buckets, 0.99)).toBe(4.7);
    expect(quantileMs([[0.001, 0], [Infinity, 0]], 0.5)).toBeUndefined();
    expect(quantileMs([[0.001, 0], [2.5, 0], [Infinity, 4]], 0.99)).toBe(2500);
  });

  it("turns the node's counters into per-second figures, reports them to the cluster, and keeps a bounded ring", async () => {
    const metrics = new Metrics({ connections: () => 0, subscriptions: () => 0, queuedBytes: () => 0 });
    // As the cluster's stats operation answers on one node: its connections and its own figures.
    const clusterStats = async () => ({ byNode: [{ node: 'n1', connections: 2, ...sampler.localFields() }] });
    const sampler: AdminSampler = new AdminSampler({ metrics, clusterStats, historySeconds: 3 });
    await sampler.tick(1000);
    metrics.publishes.inc({ target: 'channel' }, 4);
    metrics.publishes.inc({ target: 'user' }, 1);
    metrics.deliveries.inc(12);
    for (let i = 0; i < 10; i++) metrics.deliveryLatency.observe(0.0015);
    metrics.slowConsumerCloses.inc();
    await sampler.tick(2000);
    expect(sampler.localFields()).toMatchObject({ publishesPerSecond: 5, deliveriesPerSecond: 12, slowConsumerCloses: 1 });
    const last = sampler.samples().at(-1)!;
    expect(last).toMatchObject({ t: 2000, connections: 2, publishesPerSecond: 5, deliveriesPerSecond: 12, slowConsumerCloses: 1, nodes: 1 });
    // All ten observations in the 1–2 ms bucket.
    expect(last.deliveryP50Ms).toBe(1.5);
    expect(last.deliveryP99Ms).toBe(1.99);
    await sampler.tick(3000);
    expect(sampler.samples().at(-1)).toMatchObject({ publishesPerSecond: 0, deliveriesPerSecond: 0, deliveryP99Ms: null });
    for (let t = 4000; t <= 9000; t += 1000) await sampler.tick(t);
    expect(sampler.samples().map((x) => x.t)).toEqual([7000, 8000, 9000]);
    sampler.stop();
  });

  it('sums rates and connections over nodes, takes the worst p99 and lag', () => {
    const s = combine(1000, [
      { node: 'a', connections: 10, publishesPerSecond: 5, deliveriesPerSecond: 100, deliveryP50Ms: 1, deliveryP99Ms: 4, slowConsumerCloses: 1, eventLoopLagMs: 2 },
      { node: 'b', connections: 7, publishesPerSecond: 2, deliveriesPerSecond: 300, deliveryP50Ms: 3, deliveryP99Ms: 9, slowConsumerCloses: 0, eventLoopLagMs: 8 },
      { node: 'c', connections: 1 },
    ]);
    expect(s).toEqual({ t: 1000, connections: 18, publishesPerSecond: 7, deliveriesPerSecond: 400, deliveryP50Ms: 3, deliveryP99Ms: 9, slowConsumerCloses: 1, eventLoopLagMs: 8, nodes: 3 });
    expect(combine(0, [{ connections: 2 }]).deliveryP99Ms).toBeNull();
  });
});

async function adminFetch(server: HeraldServer, path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, init);
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* a page */ }
  return { status: res.status, body, headers: res.headers };
}

function login(server: HeraldServer, credential: string, headers: Record<string, string> = { 'x-herald-csrf': 'login' }) {
  return adminFetch(server, '/admin/api/login', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ credential }) });
}

describe('admin UI over HTTP', () => {
  let server: HeraldServer;
  let off: HeraldServer;

  beforeAll(async () => {
    server = await startTestServer({ admin: { ui: { enabled: true, passwordHash: HASH, loginAttemptsPerMinute: 5 } }, server: { trustProxy: 1 } });
    off = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
    await off?.close();
  });

  it('is not there when admin.ui.enabled is off: 404 not_found', async () => {
    for (const path of ['/admin', '/admin/assets/app.js', '/admin/api/overview']) {
      const r = await adminFetch(off, path);
      expect(r.status, path).toBe(404);
    }
    const r = await login(off, PASSWORD);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe(ErrorCode.NOT_FOUND);
  });

  it('serves the page and its assets with a strict CSP', async () => {
    const page = await adminFetch(server, '/admin');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const js = await adminFetch(server, '/admin/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    // Bundled: no import of anything the browser would fetch from elsewhere.
    expect(String(js.body)).not.toMatch(/from\s*["']https?:|import\(["']https?:/);
    expect((await adminFetch(server, '/admin/assets/app.css')).status).toBe(200);
    expect((await adminFetch(server, '/admin/assets/..%2Fsrc%2Fmain.ts')).status).toBe(404);
  });

  it('answers every /admin/api route without a session 401 admin_login_required', async () => {
    for (const [method, path] of [['GET', '/admin/api/overview'], ['GET', '/admin/api/session'], ['GET', '/admin/api/channels'], ['POST', '/admin/api/publish'], ['GET', '/admin/api/no-such-route']] as const) {
      const r = await adminFetch(server, path, { method, headers: { cookie: 'herald_admin=forged', 'content-type': 'application/json', 'x-herald-csrf': 'x' }, body: method === 'POST' ? '{}' : undefined });
      expect(r.status, path).toBe(401);
      expect(r.body.error.code, path).toBe(ErrorCode.ADMIN_LOGIN_REQUIRED);
    }
  });

  it('logs in with the password: HttpOnly, SameSite=Strict, Path=/admin cookie; Secure behind a TLS proxy', async () => {
    const wrong = await login(server, 'not-the-password', { 'x-herald-csrf': 'login', 'x-forwarded-for': '192.0.2.1' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe(ErrorCode.ADMIN_LOGIN_FAILED);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const ok = await login(server, PASSWORD, { 'x-herald-csrf': 'login', 'x-forwarded-for': '192.0.2.1' });
    expect(ok.status).toBe(200);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^herald_admin=[A-Za-z0-9_-]{43};/);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/admin');
    expect(cookie).toMatch(/Max-Age=28800/);
    expect(cookie).not.toContain('Secure');
    expect(ok.body).toMatchObject({ via: 'password', node: server.node.name });
    const tls = await login(server, PASSWORD, { 'x-herald-csrf': 'login', 'x-forwarded-for': '192.0.2.2', 'x-forwarded-proto': 'https' });
    expect(tls.headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  it('refuses a state-changing call without the session CSRF token, or from another origin: 403 admin_csrf', async () => {
    const ok = await login(server, PASSWORD, { 'x-herald-csrf': 'login', 'x-forwarded-for': '192.0.2.3' });
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    const csrf = ok.body.csrf as string;
    const body = JSON.stringify({ channel: 'admin-csrf', eventType: 'e', payload: 1 });
    const post = (headers: Record<string, string>) => adminFetch(server, '/admin/api/publish', { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body });
    for (const headers of <Array<Record<string, string>>>[{}, { 'x-herald-csrf': 'login' } as Record<string, string>, { 'x-herald-csrf': `${csrf}x` }, { 'x-herald-csrf': csrf, origin: 'https://evil.example' }, { 'x-herald-csrf': csrf, 'sec-fetch-site': 'cross-site' }]) {
      const r = await post(headers);
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(r.body.error.code).toBe(ErrorCode.ADMIN_CSRF);
    }
    const good = await post({ 'x-herald-csrf': csrf, origin: server.url, 'sec-fetch-site': 'same-origin' });
    expect(good.status).toBe(200);
    expect(good.body.msgId).toEqual(expect.any(String));
    // A login itself needs the custom header (a cross-site form cannot send it) and a same-site Origin.
    expect((await login(server, PASSWORD, { 'x-forwarded-for': '192.0.2.3' })).body.error.code).toBe(ErrorCode.ADMIN_CSRF);
    expect((await login(server, PASSWORD, { 'x-herald-csrf': 'login', origin: 'https://evil.example', 'x-forwarded-for': '192.0.2.3' })).body.error.code).toBe(ErrorCode.ADMIN_CSRF);
    // Reads need the session only.
    expect((await adminFetch(server, '/admin/api/session', { headers: { cookie } })).body.csrf).toBe(csrf);
  });

  it('logs out: the session is gone on the server, the cookie cleared', async () => {
    const ok = await login(server, PASSWORD, { 'x-herald-csrf': 'login', 'x-forwarded-for': '192.0.2.4' });
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    const out = await adminFetch(server, '/admin/api/logout', { method: 'POST', headers: { cookie, 'content-type': 'application/json', 'x-herald-csrf': ok.body.csrf }, body: '{}' });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/^herald_admin=; .*Max-Age=0/);
    const after = await adminFetch(server, '/admin/api/session', { headers: { cookie } });
    expect(after.status).toBe(401);
  });

  it('rate-limits login attempts from one address: 429 rate_limited with Retry-After', async () => {
    const from = { 'x-herald-csrf': 'login', 'x-forwarded-for': '198.51.100.7' };
    for (let i = 0; i < 5; i++) expect((await login(server, 'guess', from)).status).toBe(401);
    const limited = await login(server, PASSWORD, from);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe(ErrorCode.RATE_LIMITED);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('logs in with an admin API key when no password is set', async () => {
    const keyOnly = await startTestServer({ admin: { ui: { enabled: true } } });
    try {
      expect((await login(keyOnly, 'not-a-key')).status).toBe(401);
      const ok = await login(keyOnly, API_KEY);
      expect(ok.status).toBe(200);
      expect(ok.body.via).toBe('api-key');
    } finally {
      await keyOnly.close();
    }
  });
});

describe('herald admin hash-password', () => {
  function hashCli(stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [CLI, 'admin', 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d: Buffer) => (stdout += String(d)));
      proc.stderr.on('data', (d: Buffer) => (stderr += String(d)));
      proc.on('error', reject);
      proc.on('close', (code) => resolve({ code, stdout, stderr }));
      proc.stdin.end(stdin);
    });
  }

  it('prints a hash the server accepts for that password', async () => {
    const r = await hashCli(`${PASSWORD}\n`);
    expect(r.code).toBe(0);
    const hash = r.stdout.trim();
    const parsed = parsePasswordHash(hash);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(await verifyPassword(parsed, PASSWORD)).toBe(true);
    expect(resolveConfig({ admin: { ui: { enabled: true, passwordHash: hash } } }).admin.ui.passwordHash).toBe(hash);
  });

  it('herald serve with the UI on and no credential exits 2 with one line naming the keys', async () => {
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', '0'], { HERALD_ADMIN__UI__ENABLED: 'true' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('herald: admin.ui.enabled: the admin UI needs a credential: set admin.ui.passwordHash (from `herald admin hash-password`) or an admin-scope key in api.keys with admin.ui.apiKeyLogin on\n');
  });

  it('refuses a short password in one line, exit code 2', async () => {
    const r = await hashCli('short\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('herald admin hash-password: the password must be at least 12 characters\n');
    expect(r.stdout).toBe('');
  });
});

describe('admin UI routes on their narrow interfaces', () => {
  it('adds presence counts to the channels page once a PresenceCounts source is given', async () => {
    const config = resolveConfig({ api: { keys: [API_KEY] }, admin: { ui: { enabled: true } } });
    const unused = () => { throw new Error('not used by this test'); };
    const options = (presenceCounts?: AdminUiOptions['presenceCounts']): AdminUiOptions => ({
      config, nodeName: 'n1',
      admin: {
        channels: async () => ({ channels: [{ channel: 'b', subscribers: 1 }, { channel: 'a', subscribers: 5 }], nodes: { replied: ['n1'], missing: [] } }),
        userConnections: unused, disconnectConnection: unused, disconnectUser: unused, stats: unused, nodes: unused,
      },
      publishing: { publish: unused }, receipts: { get: () => undefined }, inbox: { list: unused, size: unused },
      sampler: { samples: () => [] }, log: { warn: () => undefined },
      ...(presenceCounts ? { presenceCounts } : {}),
    });
    const channels = async (presenceCounts?: AdminUiOptions['presenceCounts']) => {
      const app = Fastify();
      installErrorHandling(app);
      await app.register(adminUiRoutes, options(presenceCounts));
      const login = await app.inject({ method: 'POST', url: '/admin/api/login', headers: { 'x-herald-csrf': 'login' }, payload: { credential: API_KEY } });
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const r = await app.inject({ method: 'GET', url: '/admin/api/channels', headers: { cookie } });
      await app.close();
      return r.json() as { channels: unknown[]; presence: boolean };
    };
    expect(await channels()).toMatchObject({ presence: false, channels: [{ channel: 'a', subscribers: 5 }, { channel: 'b', subscribers: 1 }] });
    const withPresence = await channels(async (names) => new Map(names.map((n) => [n, n === 'a' ? 3 : 0])));
    expect(withPresence).toMatchObject({ presence: true, channels: [{ channel: 'a', subscribers: 5, presence: 3 }, { channel: 'b', subscribers: 1, presence: 0 }] });
  });
});

describe('admin UI presence column on a running node', () => {
  it('counts the users present in channels of a namespace with presence on', async () => {
    const server = await startTestServer({ admin: { ui: { enabled: true, passwordHash: HASH } }, channels: { namespaces: { room: { presence: true } } } });
    const sockets: TestSocket[] = [];
    try {
      for (const [user, channel] of [['ann', 'room:1'], ['bob', 'room:1'], ['ann', 'room:1'], ['cid', 'plain:1']] as const) {
        const s = await TestSocket.open(server.wsUrl);
        sockets.push(s);
        expect((await s.request({ type: 'connect', token: await makeToken({ sub: user }) })).type).toBe('connected');
        expect((await s.request({ type: 'subscribe', channel })).type).toBe('subscribed');
      }
      const ok = await login(server, PASSWORD);
      const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
      const page = await waitForValue(async () => {
        const r = await adminFetch(server, '/admin/api/channels', { headers: { cookie } });
        const room = r.body.channels?.find((c: { channel: string }) => c.channel === 'room:1');
        return room?.presence === 2 ? r.body : undefined;
      }, 5000, 'two users present in room:1');
      expect(page.presence).toBe(true);
      expect(page.channels).toEqual(expect.arrayContaining([
        { channel: 'room:1', subscribers: 3, presence: 2 },
        // Not a presence namespace: no count is read for it, and none is shown.
        { channel: 'plain:1', subscribers: 1 },
      ]));
    } finally {
      for (const s of sockets) s.close();
      await server.close();
    }
  });
});
