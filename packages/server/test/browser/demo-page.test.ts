/**
 * The demo page served at `/` by `npm start`, in a real headless Chromium: it connects, subscribes
 * to demo:lobby, shows a message a backend publishes, and publishes from its own form; whatever
 * anyone publishes is shown as text, never run as HTML.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../../src/server.js';
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

  it('shows published HTML and script as text and runs none of it', async () => {
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => (window as any).heraldDemo.client.subscriptions().some((s: any) => s.state === 'subscribed'), undefined, { timeout: 10_000 });
    // Each would set a flag on the page if it were parsed as HTML.
    const img = (flag: string) => `<img src=x onerror="window.${flag}=1">`;
    const svg = '<svg onload="window.pwnedSvg=1"></svg>';
    const script = '<script>window.pwnedScript=1</script>';
    // The HTTP API validates eventType and msgId; the in-process API (`server.publish`, what an
    // embedding backend calls) does not, so the page must not trust them either.
    await server.publish({ channel: 'demo:lobby', eventType: img('pwnedEventType'), msgId: img('pwnedMsgId'), source: img('pwnedSource'), payload: { text: img('pwnedPayload') } });
    const res = await api(server, 'POST', '/api/v1/publish', { channel: 'demo:lobby', eventType: 'chat.message', payload: { text: `${svg}${script}`, [img('pwnedKey')]: 1 } });
    expect(res.status).toBe(200);
    await page.waitForFunction(() => (window as any).heraldDemo.received.length >= 2, undefined, { timeout: 5000 });
    // Another publish through the page's own form, after both, so everything above had its turn to run.
    await page.fill('#text', img('pwnedForm'));
    await page.click('#pub button');
    await page.waitForFunction(() => (window as any).heraldDemo.received.length >= 3, undefined, { timeout: 5000 });
    const seen = await page.evaluate(() => ({
      flags: Object.keys(window).filter((k) => k.startsWith('pwned')),
      injected: document.querySelectorAll('#log img, #log svg, #log script').length,
      text: document.getElementById('log')!.textContent,
    }));
    expect(seen.flags).toEqual([]);
    expect(seen.injected).toBe(0);
    expect(seen.text).toContain(`demo:lobby · ${img('pwnedEventType')}`);
    expect(seen.text).toContain(JSON.stringify({ text: img('pwnedPayload') }));
    expect(seen.text).toContain(JSON.stringify(`${svg}${script}`));
    expect(seen.text).toContain(JSON.stringify(img('pwnedForm')));
    await page.close();
  });
});
