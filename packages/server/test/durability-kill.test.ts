/**
 * The reliability promise, end to end: a Herald with the SQLite store is killed with SIGKILL in
 * the middle of a stream of at-least-once messages to a channel, to an online user and to an
 * offline user; it is restarted on the same port and clients reconnect through the SDK. Every
 * message the HTTP API acknowledged must reach each application exactly once, in order.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '@herald/client';
import { freePort, startCliNode } from './helpers/processes.js';
import { API_KEY, makeToken, SECRET } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const N = 300;
const KILL_AT = 150;
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});


const startServer = (configFile: string): Promise<ChildProcess> => startCliNode(configFile, children);

/** Publishes with a fixed msgId until the API acknowledges it (a retry is idempotent). */
async function publishUntilAccepted(base: string, body: object): Promise<void> {
  let refused: string | undefined;
  // Retried every 50 ms while the server restarts (refused connections, 5xx); a 4xx is final.
  await waitFor(async () => {
    const res = await fetch(`${base}/api/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify(body),
    }).catch(() => undefined);
    if (res && res.status < 500 && !res.ok) refused = `refused: ${res.status} ${await res.text()}`;
    return res?.ok === true || refused !== undefined;
  }, 10_000, `the publish of ${JSON.stringify(body)} to be accepted`, 50);
  if (refused) throw new Error(refused);
}

describe('SIGKILL in the middle of an at-least-once stream', () => {
  it('delivers every acknowledged message exactly once, in order, to online and offline users', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'herald-kill-'));
    const configFile = join(dir, 'herald.json');
    writeFileSync(configFile, JSON.stringify({
      server: { host: '127.0.0.1', port },
      auth: { jwt: { hmacSecret: SECRET } },
      api: { keys: [API_KEY] },
      engine: { type: 'sqlite', sqlite: { dataDir: join(dir, 'data'), synchronous: 'full' } },
      channels: { namespaces: { orders: { delivery: 'at-least-once' } }, history: { size: 10_000, ttlMs: 600_000 }, maxRecover: 10_000 },
      log: { level: 'info' },
    }));
    const base = `http://127.0.0.1:${port}`;
    let server = await startServer(configFile);

    const channelSeen: number[] = [];
    const onlineSeen: number[] = [];
    const offlineSeen: number[] = [];
    const online = new HeraldClient({
      url: `ws://127.0.0.1:${port}/ws`,
      WebSocket: WebSocket as never,
      token: await makeToken({ sub: 'online', channels: ['orders:*'] }),
      reconnect: { strategy: 'fixed', delay: 100, maxAttempts: 1000 },
    });
    online.subscribe<{ i: number }>('orders:stream').on('message', (m) => void channelSeen.push(m.payload.i));
    online.on('message', (m) => void onlineSeen.push((m.payload as { i: number }).i));
    let disconnects = 0;
    online.on('disconnected', () => void disconnects++);
    await online.connect();

    for (let i = 1; i <= N; i++) {
      if (i === KILL_AT) {
        server.kill('SIGKILL');
        await new Promise((r) => server.once('exit', r));
        // Publishes during the outage fail and are retried with the same msgId below.
        setTimeout(() => void startServer(configFile).then((p) => (server = p)), 300);
      }
      await publishUntilAccepted(base, { channel: 'orders:stream', eventType: 'order', payload: { i }, msgId: `ch-${i}` });
      await publishUntilAccepted(base, { user: 'online', eventType: 'dm', payload: { i }, msgId: `on-${i}`, delivery: 'at-least-once' });
      await publishUntilAccepted(base, { user: 'offline', eventType: 'dm', payload: { i }, msgId: `off-${i}`, delivery: 'at-least-once' });
    }

    const offline = new HeraldClient({
      url: `ws://127.0.0.1:${port}/ws`,
      WebSocket: WebSocket as never,
      token: await makeToken({ sub: 'offline' }),
      reconnect: { strategy: 'fixed', delay: 100 },
    });
    offline.on('message', (m) => void offlineSeen.push((m.payload as { i: number }).i));
    await offline.connect();

    const all = (): boolean => channelSeen.length >= N && onlineSeen.length >= N && offlineSeen.length >= N;
    await waitFor(all, 20_000, `${N} messages on each path`, 50);
    // One more on each path: a duplicate of anything before it would have arrived first.
    await publishUntilAccepted(base, { channel: 'orders:stream', eventType: 'order', payload: { i: N + 1 }, msgId: `ch-${N + 1}` });
    await publishUntilAccepted(base, { user: 'online', eventType: 'dm', payload: { i: N + 1 }, msgId: `on-${N + 1}`, delivery: 'at-least-once' });
    await publishUntilAccepted(base, { user: 'offline', eventType: 'dm', payload: { i: N + 1 }, msgId: `off-${N + 1}`, delivery: 'at-least-once' });
    await waitFor(() => [channelSeen, onlineSeen, offlineSeen].every((seen) => seen.includes(N + 1)), 10_000, 'the last message on each path');
    expect(disconnects).toBeGreaterThanOrEqual(1); // the kill really cut the stream
    expect(onlineSeen.length).toBe(N + 1);
    const expected = Array.from({ length: N + 1 }, (_, k) => k + 1);
    expect(channelSeen).toEqual(expected);
    expect(onlineSeen).toEqual(expected);
    expect(offlineSeen).toEqual(expected);
    online.close();
    offline.close();
    server.kill('SIGTERM');
  }, 60_000);
});
