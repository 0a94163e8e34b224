import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer;
afterEach(async () => server?.close());

describe('channel history and recovery', () => {
  it('replays what was missed since a position, then continues live', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    const first = await s.subscribe('feed');
    expect(first.position.offset).toBe(0);
    for (let i = 1; i <= 3; i++) await server.publish({ channel: 'feed', eventType: 'n', payload: i });
    const seen = await s.waitMessages(3);
    const last = seen[2]!;
    s.close();
    for (let i = 4; i <= 6; i++) await server.publish({ channel: 'feed', eventType: 'n', payload: i });
    const t = await TestSocket.connect(server);
    const rec = await t.subscribe('feed', { offset: last.offset, epoch: last.epoch });
    expect(rec.recovered).toBe(true);
    expect(rec.publications.map((p: any) => p.message.payload)).toEqual([4, 5, 6]);
    expect(rec.position.offset).toBe(6);
    await server.publish({ channel: 'feed', eventType: 'n', payload: 7 });
    expect((await t.next((f) => f.type === 'message')).message.payload).toBe(7);
  });

  it('says recovered: false when the epoch differs or the position is too old', async () => {
    server = await startTestServer({ channels: { history: { size: 3, ttlMs: 60_000 } } });
    for (let i = 1; i <= 10; i++) await server.publish({ channel: 'h', eventType: 'n', payload: i });
    const s = await TestSocket.connect(server);
    const wrongEpoch = await s.subscribe('h', { offset: 5, epoch: 'not-the-epoch' });
    expect(wrongEpoch).toMatchObject({ recovered: false, publications: [], position: { offset: 10 } });
    const t = await TestSocket.connect(server);
    const tooOld = await t.subscribe('h', { offset: 2, epoch: wrongEpoch.position.epoch });
    expect(tooOld).toMatchObject({ recovered: false, publications: [] });
    const u = await TestSocket.connect(server);
    const fine = await u.subscribe('h', { offset: 7, epoch: wrongEpoch.position.epoch });
    expect(fine.recovered).toBe(true);
    expect(fine.publications.map((p: any) => p.offset)).toEqual([8, 9, 10]);
  });

  it('limits a replay to channels.maxRecover and says when it could not recover everything', async () => {
    server = await startTestServer({ channels: { maxRecover: 5 } });
    const s = await TestSocket.connect(server);
    const sub = await s.subscribe('big');
    for (let i = 1; i <= 8; i++) await server.publish({ channel: 'big', eventType: 'n', payload: i });
    const t = await TestSocket.connect(server);
    expect(await t.subscribe('big', sub.position)).toMatchObject({ recovered: false });
  });

  it('has no gap and no duplicate at the seam while publishes continue at full rate', async () => {
    server = await startTestServer({ channels: { history: { size: 10_000, ttlMs: 60_000 }, maxRecover: 10_000 } });
    const TOTAL = 3000;
    const watcher = await TestSocket.connect(server, { sub: 'w' });
    const start = await watcher.subscribe('seam');
    let published = 0;
    const publisher = (async () => {
      while (published < TOTAL) {
        await server.publish({ channel: 'seam', eventType: 'n', payload: ++published });
        if (published % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    // Clients join mid-stream, asking to recover from the start: each must see 1..TOTAL exactly once.
    const joiners: TestSocket[] = [];
    for (let j = 0; j < 5; j++) {
      const mark = Math.min(TOTAL, published + 50);
      await waitFor(() => published >= mark, 10_000, 'the publisher to move on', 1); // each joins at a different point
      const c = await TestSocket.connect(server, { sub: `j${j}` });
      const rec = await c.subscribe('seam', start.position);
      expect(rec.recovered).toBe(true);
      (c as any).replayed = rec.publications.map((p: any) => p.message.payload);
      joiners.push(c);
    }
    await publisher;
    for (const c of joiners) {
      const replayed: number[] = (c as any).replayed;
      const live = await c.waitMessages(TOTAL - replayed.length, 10_000);
      const all = [...replayed, ...live.map((m) => m.message.payload as number)];
      expect(all).toHaveLength(TOTAL);
      expect(all).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    }
  });
});

describe('slow consumers over a real socket', () => {
  it('closes a client that stops reading with 4003 and keeps serving the others', async () => {
    server = await startTestServer({ limits: { maxQueueBytes: 64 * 1024 } });
    const slow = await TestSocket.connect(server, { sub: 'slow' });
    const ok = await TestSocket.connect(server, { sub: 'ok' });
    await slow.subscribe('firehose');
    await ok.subscribe('firehose');
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const payload = 'y'.repeat(8 * 1024);
    const slowSession = [...server.node.hub.sessions.values()].find((s) => s.user === 'slow')!;
    let closedAt = -1;
    for (let i = 0; i < 2000 && closedAt < 0; i++) {
      await server.publish({ channel: 'firehose', eventType: 'big', payload });
      await ok.next((f) => f.type === 'message', 10_000); // the healthy client keeps up
      if (!slowSession.open) closedAt = i;
    }
    expect(closedAt).toBeGreaterThan(0);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await slow.closed).code).toBe(4003);
    await ok.waitMessages(closedAt + 1, 10_000);
    expect(ok.ws.readyState).toBe(1);
  });
});
