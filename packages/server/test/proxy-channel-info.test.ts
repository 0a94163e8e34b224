/**
 * The subscribe hook's per-channel `info`: kept with the subscription and shown to the channel's
 * members through presence as `channelInfo` (presence frames, join frames, the HTTP list), beside
 * the token's own `info`; gone with the subscription; an oversized one refused as backend_error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { TestBackend } from './helpers/backend.js';
import { api, makeToken, startTestServer, TestSocket } from './helpers/server.js';

let backend: TestBackend;
let server: HeraldServer;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  backend = await TestBackend.start();
  backend.on('subscribe', (body: { user: string; channel: string }) =>
    body.channel === 'room:huge' ? { result: { info: { pad: 'x'.repeat(600) } } } : { result: body.user === 'mod' ? { info: { role: 'moderator' } } : {} },
  );
  server = await startTestServer({
    proxy: { subscribe: { url: `${backend.url}/subscribe`, timeoutMs: 2000 } },
    auth: { jwt: { maxInfoBytes: 256 } },
    channels: { namespaces: { room: { presence: true } } },
  });
});

afterAll(async () => {
  for (const s of sockets) s.close();
  await server?.close();
  await backend?.close();
});

/** A connection whose token grants nothing: every subscription goes to the hook. */
async function member(user: string, info?: unknown): Promise<TestSocket> {
  const s = await TestSocket.open(server.wsUrl);
  sockets.push(s);
  const token = await makeToken({ sub: user, channels: [], ...(info !== undefined ? { info } : {}) } as never);
  expect((await s.request({ type: 'connect', token })).type).toBe('connected');
  return s;
}

describe('the subscribe hook\'s channel info', () => {
  it('is shown to the channel\'s members beside the token\'s info, and leaves with the subscription', async () => {
    const watcher = await member('watcher');
    expect((await watcher.request({ type: 'subscribe', channel: 'room:1', presence: true })).type).toBe('subscribed');

    const mod = await member('mod', { name: 'Mo' });
    expect((await mod.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
    const join = await watcher.next((f) => f.type === 'join' && f.member.user === 'mod');
    expect(join.member).toEqual({ client: expect.any(String), user: 'mod', info: { name: 'Mo' }, channelInfo: { role: 'moderator' } });

    const page = await watcher.request({ type: 'presence', channel: 'room:1' });
    expect(page.members.find((m: { user: string }) => m.user === 'mod')).toMatchObject({ info: { name: 'Mo' }, channelInfo: { role: 'moderator' } });
    expect(page.members.find((m: { user: string }) => m.user === 'watcher').channelInfo).toBeUndefined();
    const http = await api(server, 'GET', '/api/v1/channels/room:1/presence');
    expect(http.body.members.find((m: { user: string }) => m.user === 'mod')).toMatchObject({ channelInfo: { role: 'moderator' } });

    // Unsubscribed and subscribed again: the hook is asked again and its answer is what shows.
    expect((await mod.request({ type: 'unsubscribe', channel: 'room:1' })).type).toBe('unsubscribed');
    backend.on('subscribe', () => ({ result: {} }));
    try {
      expect((await mod.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
      const again = await watcher.next((f) => f.type === 'join' && f.member.user === 'mod' && f.member.client === join.member.client && f !== join);
      expect(again.member.channelInfo).toBeUndefined();
    } finally {
      backend.on('subscribe', (body: { user: string; channel: string }) =>
        body.channel === 'room:huge' ? { result: { info: { pad: 'x'.repeat(600) } } } : { result: body.user === 'mod' ? { info: { role: 'moderator' } } : {} },
      );
    }
  });

  it('refuses an info larger than auth.jwt.maxInfoBytes as backend_error', async () => {
    const s = await member('someone');
    const reply = await s.request({ type: 'subscribe', channel: 'room:huge' });
    expect(reply.type).toBe('error');
    expect(reply.error).toMatchObject({ code: 'backend_error', temporary: true });
    expect(reply.error.message).toMatch(/maxInfoBytes/);
  });
});
