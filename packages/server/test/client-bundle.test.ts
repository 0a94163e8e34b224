/**
 * The built package, not the sources: the esbuild bundle (packages/client/dist/herald-client.js) imports
 * and works in Node 20 with `ws` against a real server, and stays within the 15 KB
 * minified+gzipped budget (checked by packages/client/scripts/client-size.mjs).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Sdk from '@herald/client';
import type { HeraldServer } from '../src/index.js';
import { startServer } from './client-support.js';
import { makeToken, publish } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';
import { REPO_ROOT } from './helpers/paths.js';

const CLIENT_SCRIPTS = join(REPO_ROOT, 'packages', 'client', 'scripts');

describe('client bundle', () => {
  let sdk: typeof Sdk;
  let server: HeraldServer;
  const outdir = mkdtempSync(join(tmpdir(), 'herald-bundle-'));
  const bundle = join(outdir, 'herald-client.js');

  beforeAll(async () => {
    execFileSync(process.execPath, [join(CLIENT_SCRIPTS, 'build-client.mjs'), '--no-types', '--outdir', outdir], { stdio: 'ignore' });
    sdk = (await import(pathToFileURL(bundle).href)) as typeof Sdk;
    server = await startServer();
  });
  afterAll(async () => {
    await server?.close();
    rmSync(outdir, { recursive: true, force: true });
  });

  it('exports the public API only', () => {
    expect(Object.keys(sdk).sort()).toEqual(
      ['ClientErrorCode', 'CloseCode', 'DEFAULT_RECONNECT', 'ErrorCode', 'HeraldClient', 'HeraldError', 'PROTOCOL_VERSION', 'Subscription', 'createBackoff', 'shouldReconnect'].sort(),
    );
  });

  it('runs in Node with the ws WebSocket', async () => {
    const c = new sdk.HeraldClient({ url: server.wsUrl, WebSocket, token: await makeToken({ sub: 'n', channels: ['chat:*'] }) });
    try {
      await c.connect();
      const sub = c.subscribe<{ n: number }>('chat:bundle');
      const got: number[] = [];
      sub.on('message', (m) => void got.push(m.payload.n));
      await sub.ready();
      await publish(server, { channel: 'chat:bundle', payload: { n: 7 } });
      await waitFor(() => got.length === 1);
      expect(got).toEqual([7]);
      expect(await c.request('echo', 'hi')).toBe('hi');
    } finally {
      c.close();
    }
  });

  it('fits the 15 KB minified+gzipped budget', () => {
    const out = execFileSync(process.execPath, [join(CLIENT_SCRIPTS, 'client-size.mjs'), '--no-build', '--file', bundle], { encoding: 'utf8' });
    const gz = Number(/(\d+) B minified\+gzipped/.exec(out)?.[1]);
    expect(gz).toBeGreaterThan(1000);
    expect(gz).toBeLessThanOrEqual(15 * 1024);
  });
});
