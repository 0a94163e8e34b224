/**
 * End to end in headless Chromium: a page loads the SDK from the built browser bundle
 * (packages/client/dist/herald-client.js), subscribes, and must receive every message exactly once, in
 * order, while the Herald server is killed and brought back, while the browser goes offline and
 * online again, and — through the localStorage outbox — across a page reload.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HeraldClient } from '@herald/client';
import type { HeraldServer } from '../../src/index.js';
import { MemoryBroker, startServer } from '../client-support.js';
import { API_KEY, makeToken, publish } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';
import { REPO_ROOT } from '../helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const CLIENT_SCRIPTS = join(REPO_ROOT, 'packages', 'client', 'scripts');
/** Built for this test run into a private directory (parallel test files never race on it). */
let OUTDIR = '';
let BUNDLE = '';

const PAGE = `<!doctype html><meta charset="utf-8"><title>herald e2e</title>
<script type="module">
  import * as herald from '/herald-client.js';
  window.herald = herald;
  window.ready = true;
</script>`;

/** Serves the test page and the bundle; stays up while the Herald server goes down. */
async function staticServer(): Promise<{ url: string; close(): Promise<void> }> {
  const srv = http.createServer((req, res) => {
    if (req.url === '/herald-client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(BUNDLE));
    } else if (req.url?.startsWith('/page')) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

const PAGE_CLIENT = `
  window.startClient = (opts) => {
    const { HeraldClient } = window.herald;
    window.got = [];
    window.events = [];
    window.client = new HeraldClient({ reconnect: { strategy: 'exponential', initialDelay: 100, maxDelay: 500 }, ...opts });
    const c = window.client;
    for (const e of ['connected', 'disconnected', 'reconnecting', 'recoveryFailed']) c.on(e, () => window.events.push(e));
    const sub = c.subscribe('chat:e2e');
    sub.on('message', (m) => { window.got.push(m.payload.n); });
    return c.connect().then(() => sub.ready());
  };
`;

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const message = `Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing instead of skipping)`);
  console.warn(`\n${'!'.repeat(100)}\n!!! SKIPPING BROWSER TESTS — ${message}\n${'!'.repeat(100)}\n`);
}

describe.skipIf(!haveChromium)('client in headless Chromium', () => {
  let context: BrowserContext;
  let page: Page;
  let site: { url: string; close(): Promise<void> };
  let userDataDir: string;
  let herald: HeraldServer | undefined;
  let port = 0;
  let broker: MemoryBroker;

  beforeAll(async () => {
    OUTDIR = mkdtempSync(join(tmpdir(), 'herald-e2e-bundle-'));
    BUNDLE = join(OUTDIR, 'herald-client.js');
    execFileSync(process.execPath, [join(CLIENT_SCRIPTS, 'build-client.mjs'), '--no-types', '--outdir', OUTDIR], { stdio: 'ignore' });
    site = await staticServer();
    userDataDir = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
    // A persistent context is how Playwright takes a fresh --user-data-dir of our choosing.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await site?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (OUTDIR) rmSync(OUTDIR, { recursive: true, force: true });
  });

  async function openPage(): Promise<void> {
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
    await page.goto(`${site.url}/page`);
    await page.waitForFunction(() => (window as any).ready === true);
    await page.evaluate(PAGE_CLIENT);
  }

  async function up(): Promise<HeraldServer> {
    herald = await startServer({ broker, port, heartbeat: { intervalMs: 1000, pongTimeoutMs: 500 } });
    port = herald.port;
    return herald;
  }

  afterEach(async () => {
    await context.setOffline(false);
    await page?.evaluate(() => {
      (window as any).client?.close();
      localStorage.clear();
    });
    await page?.close();
    await herald?.close();
    herald = undefined;
    port = 0;
  });

  const got = (): Promise<number[]> => page.evaluate(() => (window as any).got as number[]);

  it('loads the bundle, and gets every message exactly once, in order, across a server kill and restart', async () => {
    broker = new MemoryBroker();
    const s = await up();
    await openPage();
    const jwt = await makeToken({ sub: 'web', channels: ['chat:*'] });
    await page.evaluate(([url, t]) => (window as any).startClient({ url, token: t }), [s.wsUrl, jwt]);

    for (let n = 1; n <= 30; n++) await publish(s, { channel: 'chat:e2e', payload: { n } });
    await s.close(); // drop the server: the page sees 4001 and starts reconnecting
    herald = undefined;
    await page.waitForFunction(() => (window as any).client.state.status === 'reconnecting');
    const s2 = await up(); // same port, same history
    for (let n = 31; n <= 60; n++) await publish(s2, { channel: 'chat:e2e', payload: { n } });
    await page.waitForFunction(() => (window as any).got.length >= 60, undefined, { timeout: 10_000 });
    await publish(s2, { channel: 'chat:e2e', payload: { n: 61 } }); // a marker: a duplicate would precede it
    await page.waitForFunction(() => (window as any).got.includes(61));
    expect(await got()).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
    const events = await page.evaluate(() => (window as any).events as string[]);
    expect(events.filter((e) => e === 'connected').length).toBe(2);
    expect(events).not.toContain('recoveryFailed');
  });

  it('reacts to offline/online: drops the connection when offline, reconnects at once when online, recovers', async () => {
    broker = new MemoryBroker();
    const s = await up();
    await openPage();
    const jwt = await makeToken({ sub: 'web', channels: ['chat:*'] });
    await page.evaluate(([url, t]) => (window as any).startClient({ url, token: t, reconnect: { strategy: 'fixed', delay: 60_000 } }), [s.wsUrl, jwt]);
    await publish(s, { channel: 'chat:e2e', payload: { n: 1 } });
    await page.waitForFunction(() => (window as any).got.length === 1);

    await context.setOffline(true);
    // Disconnected and waiting out its minute, not dialling: what arrives next is the online event's doing.
    await page.waitForFunction(() => (window as any).client.state.status === 'reconnecting');
    for (let n = 2; n <= 10; n++) await publish(s, { channel: 'chat:e2e', payload: { n } });
    expect(await got()).toEqual([1]);
    const t0 = Date.now();
    await context.setOffline(false); // `online` wakes the 60 s reconnect wait
    await page.waitForFunction(() => (window as any).got.length >= 10, undefined, { timeout: 5000 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await got()).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('reconnects at once when the page becomes visible again, and recovers', async () => {
    broker = new MemoryBroker();
    const s = await up();
    await openPage();
    const jwt = await makeToken({ sub: 'web', channels: ['chat:*'] });
    await page.evaluate(([url, t]) => (window as any).startClient({ url, token: t, reconnect: { strategy: 'fixed', delay: 60_000 } }), [s.wsUrl, jwt]);
    await publish(s, { channel: 'chat:e2e', payload: { n: 1 } });
    await page.waitForFunction(() => (window as any).got.length === 1);
    // The server asks the client to reconnect; its policy says wait a minute.
    const connectionId = await page.evaluate(() => (window as any).client.connectionId as string);
    const res = await fetch(`${s.url}/api/v1/connections/${connectionId}/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ reconnect: true }),
    });
    expect(res.status).toBe(200);
    await page.waitForFunction(() => (window as any).client.state.status === 'reconnecting');
    for (let n = 2; n <= 5; n++) await publish(s, { channel: 'chat:e2e', payload: { n } });
    expect(await got()).toEqual([1]);
    const t0 = Date.now();
    // The user comes back to the tab.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.waitForFunction(() => (window as any).got.length >= 5, undefined, { timeout: 5000 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await got()).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps publishes made while the server is down in localStorage across a reload, and delivers them once', async () => {
    broker = new MemoryBroker();
    const s = await up();
    const reader = new HeraldClient({ url: s.wsUrl, WebSocket, token: await makeToken({ sub: 'reader', channels: ['chat:*'] }) });
    const seen: string[] = [];
    try {
      await reader.connect();
      const rsub = reader.subscribe<{ text: string }>('chat:outbox');
      rsub.on('message', (m) => void seen.push(m.payload.text));
      await rsub.ready();

      await openPage();
      const jwt = await makeToken({ sub: 'web', channels: ['chat:*'], publish: ['chat:*'] });
      const start = `(([url, t]) => {
        const { HeraldClient } = window.herald;
        window.client = new HeraldClient({ url, token: t, outbox: { persist: 'localStorage' }, reconnect: { strategy: 'fixed', delay: 100 } });
      })`;
      await page.evaluate(`${start}(${JSON.stringify([s.wsUrl, jwt])})`);
      await page.evaluate(() => (window as any).client.connect());
      await s.close(); // the server goes down
      herald = undefined;
      await page.waitForFunction(() => (window as any).client.state.status !== 'connected');
      // The publishes wait in the persisted outbox.
      await page.evaluate(() => {
        const c = (window as any).client;
        for (const text of ['a', 'b', 'c']) c.publish('chat:outbox', 'say', { text }).catch(() => {});
      });
      expect(await page.evaluate(() => localStorage.length)).toBe(1);

      await page.reload(); // the page reloads while the server is still down
      await page.waitForFunction(() => (window as any).ready === true);
      await page.evaluate(`${start}(${JSON.stringify([s.wsUrl, jwt])})`);
      expect(await page.evaluate(() => (window as any).client.outboxSize)).toBe(3);
      void page.evaluate(() => (window as any).client.connect());
      // Its first dial fails (the server is still down) before the server comes back.
      await page.waitForFunction(() => (window as any).client.state.status === 'reconnecting');
      await up(); // back on the same port
      await page.waitForFunction(() => (window as any).client.outboxSize === 0);
      await waitFor(() => seen.length >= 3);
      // A marker published after them: a second delivery of a, b or c would have come first.
      await page.evaluate(() => (window as any).client.publish('chat:outbox', 'say', { text: 'd' }));
      await waitFor(() => seen.includes('d'));
      expect(seen).toEqual(['a', 'b', 'c', 'd']);
      expect(await page.evaluate(() => localStorage.length)).toBe(0);
    } finally {
      reader.close();
    }
  });
});
