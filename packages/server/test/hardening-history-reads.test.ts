/**
 * Issue 11, M4: reading a channel that was never published writes nothing. 200 anonymous polls
 * (and WebSocket subscribes) of new channel names used to leave 200 permanent SQLite rows, each
 * with its own commit; the memory engine kept a stream per name read. A reader of such a channel
 * still recovers correctly once the channel is published.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const READS = 200;
// 200 reads from one client in a row are past the poll and subscribe rate limits, which are not
// what these tests are about (the reads of an attacker spread over many IPs are): they are off.
const open = { auth: { anonymous: true }, channels: { public: ['scan:*', 'news:*'] }, rateLimits: { enabled: false } };

async function pollNewNames(server: HeraldServer, tag: string): Promise<void> {
  for (let i = 0; i < READS; i++) {
    const res = await fetch(`${server.url}/poll/v1/channels/${encodeURIComponent(`scan:${tag}-${i}`)}/messages`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { position: { offset: number }; messages: unknown[] };
    expect(body.position.offset).toBe(0);
    expect(body.messages).toEqual([]);
  }
}

async function subscribeNewNames(server: HeraldServer, tag: string): Promise<void> {
  const s = await TestSocket.connect(server, null);
  try {
    for (let i = 0; i < READS; i++) {
      const channel = `scan:${tag}-ws-${i}`;
      const reply = await s.subscribe(channel);
      expect(reply.position.offset).toBe(0);
      expect((await s.request({ type: 'unsubscribe', channel })).type).toBe('unsubscribed');
    }
  } finally {
    s.close();
  }
}

describe('history reads of never-published channels leave nothing behind', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('SQLite: 200 anonymous polls and 200 subscribes of new names add no channel rows', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-m4-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const server = await startTestServer({ ...open, engine: { type: 'sqlite', sqlite: { dataDir, synchronous: 'normal' } } });
    cleanups.push(() => server.close());
    await api(server, 'POST', '/api/v1/publish', { channel: 'news:real', eventType: 'x', payload: 1 });
    const db = new Database(join(dataDir, 'herald.db'), { readonly: true });
    cleanups.push(() => void db.close());
    const channels = () => (db.prepare('SELECT COUNT(*) AS n FROM channels').get() as { n: number }).n;
    // The publish's commit is written by the group commit after the reply: wait for its row.
    await waitFor(() => channels() >= 1, 3000, 'the channel row');
    expect(channels()).toBe(1);
    await pollNewNames(server, 'sqlite');
    await subscribeNewNames(server, 'sqlite');
    expect(channels()).toBe(1);
  });

  it('memory: 200 anonymous polls and 200 subscribes of new names keep no streams', async () => {
    const server = await startTestServer(open);
    cleanups.push(() => server.close());
    const streams = () => (server.node.broker as unknown as { streams: Map<string, unknown> }).streams.size;
    await api(server, 'POST', '/api/v1/publish', { channel: 'news:real', eventType: 'x', payload: 1 });
    expect(streams()).toBe(1);
    await pollNewNames(server, 'memory');
    await subscribeNewNames(server, 'memory');
    expect(streams()).toBe(1);
  });

  it('a subscriber that saw a never-published channel empty recovers everything published after (SQLite)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-m4-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const server = await startTestServer({ ...open, engine: { type: 'sqlite', sqlite: { dataDir, synchronous: 'normal' } } });
    cleanups.push(() => server.close());
    const first = await TestSocket.connect(server, null);
    const empty = await first.subscribe('news:later');
    expect(empty.position.offset).toBe(0);
    first.close();
    for (let i = 1; i <= 3; i++) await api(server, 'POST', '/api/v1/publish', { channel: 'news:later', eventType: 'x', payload: i });
    const again = await TestSocket.connect(server, null);
    cleanups.push(() => again.close());
    const rec = await again.subscribe('news:later', empty.position);
    expect(rec.recovered).toBe(true);
    expect(rec.publications.map((p: { message: { payload: number } }) => p.message.payload)).toEqual([1, 2, 3]);
  });
});
