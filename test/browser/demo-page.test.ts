/**
 * The demo page served at `/` by `npm start`, in a real headless Chromium: it connects, subscribes
 * to demo:lobby, shows a message a backend publishes, and publishes from its own form.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../../src/server/server.js';
import { api, startTestServer } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`Chromium is not installed at ${CHROMIUM} (CI=true: failing instead of skipping)`);

describe.skipIf(!haveChromium)('demo page in headless Chromium', () => {
  let server: HeraldServer;
  let context: BrowserContext;
  let userDataDir: string;

  beforeAll(async () => {
    server = await startTestServer({
      server: { demoPage: true },
      auth: { anonymous: true },
      channels: { public: ['demo:*'], clientPublish: ['demo:*'] },
    });
    userDataDir = mkdtempSync(join(tmpdir(), 'herald-demo-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('connects, shows a backend publish, and publishes from the form', async () => {
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 10_000 });
    await page.waitForFunction(() => (window as any).heraldDemo.client.subscriptions().some((s: any) => s.state === 'subscribed'), undefined, { timeout: 10_000 });
    const res = await api(server, 'POST', '/api/v1/publish', { channel: 'demo:lobby', eventType: 'hello', payload: { text: 'from the backend' } });
    expect(res.status).toBe(200);
    await page.waitForFunction(() => document.getElementById('log')!.textContent!.includes('from the backend'), undefined, { timeout: 5000 });
    await page.fill('#text', 'typed in the page');
    await page.click('#pub button');
    await page.waitForFunction(() => (window as any).heraldDemo.received.some((m: any) => m.payload.text === 'typed in the page'), undefined, { timeout: 5000 });
    await page.screenshot({ path: join(tmpdir(), 'herald-demo.png') });
    await page.close();
  });
});
