/**
 * Presence reads are engine reads: a flood of `presence` / `presence_stats` frames is held to the
 * RPC limits (`rateLimits.connection.rpc`), refused with `rate_limited` on the frame's id, and the
 * connection and server stay up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { makeToken, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
beforeAll(async () => {
  server = await startTestServer({
    channels: { namespaces: { room: { presence: true } } },
    rateLimits: { connection: { rpc: { perSecond: 1, burst: 3 } } },
  });
});
afterAll(async () => {
  await server?.close();
});

describe('presence read floods', () => {
  it('are refused past rateLimits.connection.rpc with rate_limited, the connection still answering', async () => {
    const s = await TestSocket.open(server.wsUrl);
    try {
      expect((await s.request({ type: 'connect', token: await makeToken({ sub: 'flooder' }) })).type).toBe('connected');
      expect((await s.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
      const replies = [];
      for (let i = 0; i < 10; i++) replies.push(await s.request({ type: i % 2 ? 'presence' : 'presence_stats', channel: 'room:1' }));
      const limited = replies.filter((r) => r.type === 'error' && r.error?.code === 'rate_limited');
      const answered = replies.filter((r) => r.type === 'presence' || r.type === 'presence_stats');
      expect(answered.length).toBeGreaterThanOrEqual(3);
      expect(limited.length).toBeGreaterThan(0);
      expect(answered.length + limited.length).toBe(10);
      // Other frames are not held back by the presence limit.
      expect((await s.request({ type: 'unsubscribe', channel: 'room:1' })).type).toBe('unsubscribed');
    } finally {
      s.close();
    }
  });
});
