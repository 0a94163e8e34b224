/**
 * The admin web UI in a real headless Chromium against a running Herald with live clients: login
 * (a wrong password refused, the right one accepted; the cookie's flags), each page showing the
 * numbers the server has (connections, channel counts, rates, a receipt, an inbox), a disconnect
 * from the UI closing a real client with the chosen code, a publish from the console reaching a
 * subscribed client, and a state-changing call without the CSRF token refused.
 *
 * With HERALD_ADMIN_SCREENSHOTS=<dir> it also writes a PNG of each page there
 * (`npm run -w herald screenshots:admin` writes docs/img/admin-*.png).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '@herald/protocol';
import { hashPassword } from '../../src/http/admin-ui/password.js';
import type { HeraldServer } from '../../src/server.js';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from '../engine/services.js';
import { api, API_KEY, startTestServer, TestSocket } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`Chromium is not installed at ${CHROMIUM} (CI=true: failing instead of skipping)`);
if (!haveChromium) console.warn(`SKIPPED admin UI browser test: no Chromium at ${CHROMIUM}`);

const PASSWORD = 'admin-password-for-tests';
const redisUp = await requireRedis();
const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1360, height: 860 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
};
const SHOTS = process.env.HERALD_ADMIN_SCREENSHOTS;

describe.skipIf(!haveChromium)('admin UI in headless Chromium', () => {
  let server: HeraldServer;
  let context: BrowserContext;
  let userDataDir: string;
  let page: Page;
  const sockets: TestSocket[] = [];
  let alice1: TestSocket, alice2: TestSocket, alice3: TestSocket, bob: TestSocket;
  let load: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    server = await startTestServer({ admin: { ui: { enabled: true, passwordHash: await hashPassword(PASSWORD) } }, channels: { namespaces: { room: { presence: true } } } });
    alice1 = await TestSocket.connect(server, { sub: 'alice', tags: { plan: 'pro' } });
    alice2 = await TestSocket.connect(server, { sub: 'alice', tags: { plan: 'pro' } });
    bob = await TestSocket.connect(server, { sub: 'bob', tags: { plan: 'free' } });
    for (const s of [alice1, alice2, bob]) await s.subscribe('room:lobby');
    // A third device of alice's, subscribed to nothing, for the reconnect-mode disconnect.
    alice3 = await TestSocket.connect(server, { sub: 'alice' });
    sockets.push(alice1, alice2, alice3, bob);
    await bob.subscribe('news');
    userDataDir = mkdtempSync(join(tmpdir(), 'herald-admin-'));
    context = await chromium.launchPersistentContext(userDataDir, LAUNCH);
    page = await context.newPage();
    // A missing element fails the test in seconds, with the step named, rather than at the test timeout.
    page.setDefaultTimeout(10_000);
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    clearInterval(load);
    for (const s of sockets) s.close();
    await context?.close();
    await server?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  const text = (testId: string) => page.getByTestId(testId).first().innerText();
  const shot = async (name: string) => {
    if (SHOTS) await page.screenshot({ path: join(SHOTS, `admin-${name}.png`) });
  };
  const go = async (name: string) => {
    await page.getByTestId(`nav-${name}`).click();
    await page.getByRole('heading', { level: 2 }).first().waitFor();
  };

  it('refuses a wrong password, accepts the right one, and sets a HttpOnly SameSite=Strict cookie on /admin', async () => {
    await page.goto(`${server.url}/admin`);
    await page.getByTestId('credential').fill('not-the-password');
    await page.getByTestId('login').click();
    await page.getByTestId('error').waitFor();
    expect(await text('error')).toContain(ErrorCode.ADMIN_LOGIN_FAILED);
    expect(await context.cookies(server.url)).toEqual([]);
    await shot('login');
    await page.getByTestId('credential').fill(PASSWORD);
    await page.getByTestId('login').click();
    await page.getByTestId('nav-overview').waitFor();
    const cookies = await context.cookies(`${server.url}/admin`);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'herald_admin', httpOnly: true, sameSite: 'Strict', path: '/admin', secure: false });
    // Not readable from the page's script.
    expect(await page.evaluate(() => document.cookie)).toBe('');
  });

  it('overview: live connections, publish and delivery rates and latency from the running server', async () => {
    // Steady traffic: each publish reaches the three lobby subscribers.
    load = setInterval(() => void server.publish({ channel: 'room:lobby', eventType: 'tick', payload: { at: Date.now() } }).catch(() => undefined), 50);
    await go('overview');
    await page.waitForFunction(() => {
      const v = (id: string) => document.querySelector(`[data-testid="stat-${id}"]`)?.textContent ?? '';
      return v('connections') === '4' && Number(v('deliveries')) > 0 && Number(v('publishes')) > 0 && v('p99') !== '—';
    }, undefined, { timeout: 15_000 });
    expect(await text('stat-users')).toBe('2');
    const publishes = Number(await text('stat-publishes'));
    const deliveries = Number(await text('stat-deliveries'));
    // Every tick reaches three connections: deliveries are about three times the publishes.
    expect(deliveries).toBeGreaterThanOrEqual(publishes);
    expect(Number(await text('stat-p99'))).toBeGreaterThanOrEqual(Number(await text('stat-p50')));
    // Four uPlot charts drawn with at least two seconds of samples.
    await page.waitForFunction(() => document.querySelectorAll('.uplot canvas').length === 4, undefined, { timeout: 5000 });
    if (SHOTS) {
      // For the picture: half a minute of history in the charts.
      await page.waitForFunction(() => Number(/last (\d+) s/.exec(document.querySelector('main p.muted')?.textContent ?? '')?.[1]) >= 30, undefined, { timeout: 60_000 });
    }
    await shot('overview');
  }, SHOTS ? 90_000 : undefined);

  it('nodes: this node with its connection count', async () => {
    await go('nodes');
    const row = page.locator(`tr[data-node="${server.node.name}"]`);
    await row.waitFor();
    await waitFor(async () => (await row.getByTestId('node-connections').innerText()) === '4', 5000, 'node connections 4');
    // The screenshot of this page is the two-node one below.
  });

  it('channels: subscriber counts of each channel, and present users where presence is on', async () => {
    await go('channels');
    const count = (channel: string, id = 'subscribers') => page.locator(`tr[data-channel="${channel}"] [data-testid="${id}"]`).innerText();
    await page.locator('tr[data-channel="news"]').waitFor();
    expect(await count('room:lobby')).toBe('3');
    expect(await count('news')).toBe('1');
    // alice (two devices) and bob: two users present in room:lobby; news keeps no presence.
    await waitFor(async () => (await count('room:lobby', 'present')) === '2', 5000, 'two users present in room:lobby');
    expect(await count('news', 'present')).toBe('—');
    await page.getByTestId('channel-prefix').fill('news');
    await waitFor(async () => (await page.locator('tr[data-channel]').count()) === 1, 5000, 'only news listed');
    await page.getByTestId('channel-prefix').fill('');
    await page.locator('tr[data-channel="room:lobby"]').waitFor();
    await shot('channels');
  });

  it("connections: finds a user's connections; a terminal disconnect closes that client with 4502, a reconnect one with 4005", async () => {
    await go('connections');
    await page.getByTestId('conn-user').fill('alice');
    await page.getByTestId('conn-search').click();
    await page.getByTestId('conn-count').waitFor();
    expect(await text('conn-count')).toBe('3 connection(s) of alice');
    for (const s of [alice1, alice2, alice3]) await page.locator(`tr[data-connection="${s.info.connectionId as string}"]`).waitFor();
    await shot('connections');
    await page.getByTestId('mode-terminal').check();
    await page.locator(`tr[data-connection="${alice1.info.connectionId as string}"] [data-testid="disconnect"]`).click();
    const closed = await alice1.closed;
    expect(closed.code).toBe(CloseCode.FORCE_DISCONNECT);
    expect(await text('note')).toContain('Disconnected 1 connection(s)');
    // The server forgets the connection once its close completes: searching again shows the other one only.
    await waitFor(async () => {
      await page.getByTestId('conn-search').click();
      return (await page.locator('tr[data-connection]').count()) === 2 && (await text('conn-count')) === '2 connection(s) of alice';
    }, 5000, 'two alice connections left');
    await page.getByTestId('mode-reconnect').check();
    await page.locator(`tr[data-connection="${alice3.info.connectionId as string}"] [data-testid="disconnect"]`).click();
    expect((await alice3.closed).code).toBe(CloseCode.FORCE_RECONNECT);
    await waitFor(async () => {
      await page.getByTestId('conn-search').click();
      return (await page.locator('tr[data-connection]').count()) === 1;
    }, 5000, 'one alice connection left');
    await page.locator(`tr[data-connection="${alice2.info.connectionId as string}"]`).waitFor();
  });

  it('publish console: a message to a channel with a tag filter reaches the subscribed client', async () => {
    await go('publish');
    await page.getByTestId('pub-target').fill('news');
    await page.getByTestId('pub-event').fill('console.test');
    await page.getByTestId('pub-payload').fill('{"text": "from the admin console"}');
    await page.getByTestId('pub-filter').fill('{"tag": "plan", "op": "eq", "value": "free"}');
    await page.getByTestId('pub-send').click();
    await page.getByTestId('pub-result').waitFor();
    const result = JSON.parse(await text('pub-result')) as { msgId: string };
    const got = await bob.next((f) => f.type === 'message' && f.message?.eventType === 'console.test', 5000);
    expect(got.message.payload).toEqual({ text: 'from the admin console' });
    expect(got.message.msgId).toBe(result.msgId);
    await shot('publish');
  });

  it('messages: the receipt of an at-least-once message published from the console', async () => {
    await page.getByTestId('pub-kind').selectOption('user');
    await page.getByTestId('pub-target').fill('alice');
    await page.getByTestId('pub-filter').fill('');
    await page.getByTestId('pub-delivery').selectOption('at-least-once');
    await page.getByTestId('pub-msgid').fill('admin-ui-receipt-1');
    await page.getByTestId('pub-send').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="pub-result"]')?.textContent?.includes('admin-ui-receipt-1'), undefined, { timeout: 5000 });
    await alice2.next((f) => f.type === 'message' && f.message?.msgId === 'admin-ui-receipt-1', 5000);
    const fromApi = await waitForDelivered();
    await go('messages');
    await page.getByTestId('msg-id').fill('admin-ui-receipt-1');
    await page.getByTestId('msg-lookup').click();
    await page.getByTestId('msg-state').waitFor();
    expect(await text('msg-state')).toBe(fromApi.state);
    expect(await page.locator('[data-count="delivered"]').innerText()).toBe(String(fromApi.counts.delivered));
    await shot('messages');
    await page.getByTestId('msg-id').fill('no-such-message');
    await page.getByTestId('msg-lookup').click();
    await page.getByTestId('error').waitFor();
    expect(await text('error')).toContain(ErrorCode.NOT_FOUND);

    async function waitForDelivered(): Promise<{ state: string; counts: { delivered: number } }> {
      let body: any;
      await waitFor(async () => {
        body = (await api(server, 'GET', '/api/v1/messages/admin-ui-receipt-1')).body;
        return body?.counts?.delivered === 1;
      }, 5000, 'receipt delivered to alice2');
      return body;
    }
  });

  it("inbox: a user's waiting at-least-once messages", async () => {
    for (const n of [1, 2]) {
      const r = await api(server, 'POST', '/api/v1/publish', { user: 'carol', eventType: 'offline.note', payload: { n }, delivery: 'at-least-once', msgId: `carol-${n}` });
      expect(r.status).toBe(200);
    }
    await go('inbox');
    await page.getByTestId('inbox-user').fill('carol');
    await page.getByTestId('inbox-lookup').click();
    await page.getByTestId('inbox-size').waitFor();
    expect(await text('inbox-size')).toBe('2 message(s) waiting');
    for (const id of ['carol-1', 'carol-2']) await page.locator(`tr[data-msgid="${id}"]`).waitFor();
    await shot('inbox');
  });

  it('refuses a state-changing call from the page without the CSRF token; a session ended elsewhere returns to the login form; after logout every call is refused', async () => {
    const status = await page.evaluate(async () => {
      const r = await fetch('/admin/api/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'news', eventType: 'csrf', payload: 1 }) });
      return { status: r.status, body: await r.json() };
    });
    expect(status).toEqual({ status: 403, body: { error: expect.objectContaining({ code: ErrorCode.ADMIN_CSRF }) } });
    // The session ended on the server (here: a logout from another tab): the polling overview
    // notices and returns to the login form.
    await go('overview');
    await page.evaluate(async () => {
      const { csrf } = (await (await fetch('/admin/api/session')).json()) as { csrf: string };
      await fetch('/admin/api/logout', { method: 'POST', headers: { 'content-type': 'application/json', 'x-herald-csrf': csrf }, body: '{}' });
    });
    await page.getByTestId('credential').waitFor();
    await page.getByTestId('credential').fill(PASSWORD);
    await page.getByTestId('login').click();
    await page.getByTestId('logout').click();
    await page.getByTestId('credential').waitFor();
    const after = await page.evaluate(async () => (await fetch('/admin/api/overview')).status);
    expect(after).toBe(401);
  });
});

describe.skipIf(!haveChromium || !redisUp)('admin UI of a two-node Redis cluster in headless Chromium', () => {
  const prefix = uniquePrefix('herald-adminui-browser-');
  let a: HeraldServer;
  let b: HeraldServer;
  let context: BrowserContext;
  let userDataDir: string;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    const engine = { type: 'redis', redis: { url: REDIS_URL, prefix } };
    const cluster = { controlTimeoutMs: 800, heartbeatIntervalMs: 200, nodeTtlMs: 1500 };
    [a, b] = await Promise.all(['node-a', 'node-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, cluster, admin: { ui: { enabled: true } } }))) as [HeraldServer, HeraldServer];
    for (const [server, n] of [[a, 1], [b, 2]] as const) {
      for (let i = 0; i < n; i++) sockets.push(await TestSocket.connect(server, { sub: `${server.node.name}-user-${i}` }));
    }
    userDataDir = mkdtempSync(join(tmpdir(), 'herald-admin-cluster-'));
    context = await chromium.launchPersistentContext(userDataDir, LAUNCH);
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await context?.close();
    await Promise.all([a, b].map((s) => s?.close()));
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await dropRedisKeys(prefix);
  });

  it('logs in with an admin API key and shows both nodes with their own connection counts, and their sum', async () => {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(`${a.url}/admin#/nodes`);
    await page.getByTestId('credential').fill(API_KEY);
    await page.getByTestId('login').click();
    const count = (node: string) => page.locator(`tr[data-node="${node}"] [data-testid="node-connections"]`).innerText();
    await waitFor(async () => (await page.locator('tr[data-node]').count()) === 2, 10_000, 'two node rows');
    await waitFor(async () => (await count('node-a')) === '1' && (await count('node-b')) === '2', 5000, 'per-node connection counts');
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'admin-nodes.png') });
    await page.getByTestId('nav-overview').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="stat-connections"]')?.textContent === '3', undefined, { timeout: 10_000 });
    expect(await page.locator('main p.muted').first().innerText()).toContain('summed over 2 node(s)');
    await page.close();
  });
});
