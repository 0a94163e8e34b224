/**
 * The demo page tells its user why it cannot connect. Served from configs/dev.json on a port
 * other than 8080 it connects (same origin, under 127.0.0.1 and localhost alike); refused for
 * its origin it shows that reason and the setting to change; closed by the server it shows the
 * close code and reason; a message typed meanwhile is shown waiting in the outbox.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mergeConfig, readConfigFile } from '../../src/config.js';
import { startHerald, type HeraldServer } from '../../src/server.js';
import { serverFile } from '../helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`Chromium is not installed at ${CHROMIUM} (CI=true: failing instead of skipping)`);

/** configs/dev.json as `npm start` runs it, but on an ephemeral port and in memory. */
function devServer(extra: Record<string, unknown> = {}): Promise<HeraldServer> {
  const dev = readConfigFile(serverFile('configs/dev.json'));
  return startHerald({ overrides: mergeConfig(mergeConfig(dev, { server: { port: 0 }, engine: { type: 'memory' }, log: { level: 'silent' } }), extra) });
}

describe.skipIf(!haveChromium)('demo page: connecting, and why not', () => {
  let context: BrowserContext;
  let userDataDir: string;
  const servers: HeraldServer[] = [];

  beforeAll(async () => {
    userDataDir = mkdtempSync(join(tmpdir(), 'herald-demo-connect-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  });

  afterEach(async () => {
    for (const p of context.pages()) await p.close();
    for (const s of servers.splice(0)) await s.close();
  });

  afterAll(async () => {
    await context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  const problem = (page: Page) => page.evaluate(() => {
    const box = document.getElementById('problem')!;
    return { hidden: box.hidden, kind: box.dataset.kind, text: box.textContent ?? '' };
  });

  it('configs/dev.json on a port other than 8080: the page connects under 127.0.0.1 and under localhost', async () => {
    const server = await devServer();
    servers.push(server);
    expect(server.port).not.toBe(8080);
    for (const host of ['127.0.0.1', 'localhost']) {
      const page = await context.newPage();
      await page.goto(`http://${host}:${server.port}/`);
      await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 10_000 });
      await page.waitForFunction(() => (window as any).heraldDemo.client.subscriptions().some((s: any) => s.state === 'subscribed'), undefined, { timeout: 10_000 });
      await page.fill('#text', `hello from ${host}`);
      await page.click('#pub button');
      await page.waitForFunction((t) => (window as any).heraldDemo.received.some((m: any) => m.payload.text === t), `hello from ${host}`, { timeout: 5000 });
      expect((await problem(page)).hidden).toBe(true);
      await page.close();
    }
  });

  it('refused for its origin: shows the reason and the setting, and the message waiting in the outbox', async () => {
    const server = await devServer({ origins: { allowed: ['https://app.example.com'] } });
    servers.push(server);
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('problem')?.dataset.kind === 'refused', undefined, { timeout: 10_000 });
    const shown = await problem(page);
    expect(shown.hidden).toBe(false);
    expect(shown.text).toContain(`this page's origin, ${server.url}, is not in the server's origins.allowed`);
    expect(await page.isVisible('#problem')).toBe(true);
    await page.fill('#text', 'typed while refused');
    await page.click('#pub button');
    await page.waitForFunction(() => !document.getElementById('outbox')!.hidden, undefined, { timeout: 5000 });
    expect(await page.textContent('#outbox')).toBe('outbox: 1 message waiting to be sent');
    expect(await page.textContent('#log')).toContain('queued until connected: typed while refused');
    expect(await page.textContent('#state')).not.toBe('connected');
  });

  it('closed by the server: shows the close code and reason', async () => {
    // No anonymous access and no token: the server answers `connect` by closing with 4501.
    const server = await devServer({ auth: { anonymous: false } });
    servers.push(server);
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('problem')?.dataset.kind === 'closed', undefined, { timeout: 10_000 });
    const shown = await problem(page);
    expect(shown.text).toContain('The server closed the connection: 4501 unauthorized.');
    expect(shown.text).toContain('Not retrying');
  });
});
