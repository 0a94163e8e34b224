/**
 * Channel presence on one real server (memory engine): the presence frames and routes, join/leave
 * frames to the subscribers that asked, the permission checks, and refusals of bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, makeToken, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  server = await startTestServer({
    channels: { namespaces: { chat: { presence: true }, lobby: { presence: true, joinLeave: true }, plain: {} } },
    api: { keys: ['test-api-key-123', { key: 'read-only-key-0001', scope: 'read' }] },
  });
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await server.close();
});

async function client(sub: string, extra: Record<string, unknown> = {}): Promise<TestSocket> {
  const s = await TestSocket.connect(server, { sub, ...extra });
  sockets.push(s);
  return s;
}

const events = (s: TestSocket, channel: string): string[] =>
  s.frames.filter((f) => (f.type === 'join' || f.type === 'leave') && f.channel === channel).map((f) => `${f.type}:${f.member.user}`);

describe('channel presence on one node', () => {
  it('members with their info, counts, join/leave to the subscriber that asked and to nobody else', async () => {
    const ch = 'chat:room-1';
    const watcher = await client('watcher');
    const quiet = await client('quiet');
    expect((await watcher.request({ type: 'subscribe', channel: ch, presence: true })).type).toBe('subscribed');
    await quiet.subscribe(ch);
    const ann = await client('ann', { info: { name: 'Ann' } });
    const ann2 = await client('ann');
    await ann.subscribe(ch);
    await ann2.subscribe(ch);
    // The subscriber's own join comes first: it is a member like the others.
    await waitFor(() => events(watcher, ch).length === 4, 3000, 'joins');
    expect(events(watcher, ch)).toEqual(['join:watcher', 'join:quiet', 'join:ann', 'join:ann']);
    const join = watcher.frames.find((f) => f.type === 'join' && f.member.user === 'ann')!;
    expect(join).toEqual({ type: 'join', channel: ch, member: { client: ann.info.connectionId, user: 'ann', info: { name: 'Ann' } } });

    const stats = await quiet.request({ type: 'presence_stats', channel: ch });
    expect(stats).toMatchObject({ type: 'presence_stats', channel: ch, connections: 4, users: 3 });
    const page = await quiet.request({ type: 'presence', channel: ch, limit: 3 });
    expect(page.members).toHaveLength(3);
    const rest = await quiet.request({ type: 'presence', channel: ch, cursor: page.next });
    expect(rest.next).toBeUndefined();
    const ids = [...page.members, ...rest.members].map((m: Frame) => m.client);
    expect(ids).toEqual([watcher, quiet, ann, ann2].map((s) => s.info.connectionId).sort());

    ann.close();
    await ann.closed;
    expect((await ann2.request({ type: 'unsubscribe', channel: ch })).type).toBe('unsubscribed');
    await waitFor(() => events(watcher, ch).length === 6, 3000, 'leaves');
    expect(events(watcher, ch).slice(4)).toEqual(['leave:ann', 'leave:ann']);
    expect(quiet.frames.filter((f) => f.type === 'join' || f.type === 'leave')).toEqual([]);
    expect(await api(server, 'GET', `/api/v1/channels/${ch}/presence-stats`)).toMatchObject({ status: 200, body: { channel: ch, connections: 2, users: 2 } });
  });

  it('joinLeave namespaces send events to every subscriber unless it declines them', async () => {
    const ch = 'lobby:main';
    const a = await client('a');
    const declines = await client('d');
    await a.subscribe(ch);
    expect((await declines.request({ type: 'subscribe', channel: ch, presence: false })).type).toBe('subscribed');
    const b = await client('b');
    await b.subscribe(ch);
    await waitFor(() => events(a, ch).includes('join:b'), 3000, 'join of b');
    b.close();
    await waitFor(() => events(a, ch).includes('leave:b'), 3000, 'leave of b');
    expect(events(a, ch)).toEqual(['join:a', 'join:d', 'join:b', 'leave:b']);
    expect(events(declines, ch)).toEqual([]);
  });

  it('HTTP: pages and counts with a read-scoped key; bad limit, cursor or channel is a 400 with a stable code', async () => {
    const ch = 'chat:http';
    const subs = await Promise.all(['x', 'y', 'z'].map((u) => client(u)));
    for (const s of subs) await s.subscribe(ch);
    const first = await api(server, 'GET', `/api/v1/channels/${ch}/presence?limit=2`, undefined, 'read-only-key-0001');
    expect(first.body).toMatchObject({ channel: ch });
    expect(first.body.members).toHaveLength(2);
    expect(first.body.members[0]).toMatchObject({ user: expect.any(String), client: expect.any(String), node: expect.any(String) });
    const second = await api(server, 'GET', `/api/v1/channels/${ch}/presence?limit=2&cursor=${encodeURIComponent(first.body.next)}`, undefined, 'read-only-key-0001');
    expect(second.body.members).toHaveLength(1);
    expect(second.body.next).toBeUndefined();
    expect((await api(server, 'GET', `/api/v1/channels/${ch}/presence-stats`, undefined, 'read-only-key-0001')).body).toEqual({ channel: ch, connections: 3, users: 3 });
    for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', `cursor=${'x'.repeat(600)}`, 'cursor=', 'extra=1']) {
      const r = await api(server, 'GET', `/api/v1/channels/${ch}/presence?${q}`);
      expect([q, r.status, r.body.error?.code]).toEqual([q, 400, 'bad_request']);
    }
    const bad = await api(server, 'GET', `/api/v1/channels/${encodeURIComponent('bad channel!')}/presence`);
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_channel']);
    const off = await api(server, 'GET', '/api/v1/channels/plain:x/presence-stats');
    expect([off.status, off.body.error.code]).toEqual([400, 'presence_not_enabled']);
    expect((await api(server, 'GET', `/api/v1/channels/${ch}/presence`, undefined, null)).status).toBe(401);
  });

  it('refuses: a channel the token does not allow, presence where it is off, bad frames, a huge info claim', async () => {
    const limited = await client('limited', { channels: ['chat:mine'] });
    const denied = await limited.request({ type: 'presence', channel: 'chat:secret' });
    expect(denied).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
    expect(await limited.request({ type: 'presence_stats', channel: 'chat:secret' })).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
    expect(await limited.request({ type: 'presence_stats', channel: 'chat:mine' })).toMatchObject({ type: 'presence_stats', connections: 0, users: 0 });
    expect(await limited.request({ type: 'presence', channel: 'plain:x' })).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
    const any = await client('any');
    expect(await any.request({ type: 'presence', channel: 'plain:x' })).toMatchObject({ type: 'error', error: { code: 'presence_not_enabled' } });
    expect(await any.request({ type: 'subscribe', channel: 'plain:x', presence: true })).toMatchObject({ type: 'error', error: { code: 'presence_not_enabled' } });
    expect(await any.request({ type: 'presence', channel: 'chat:a', limit: 0 })).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    expect(await any.request({ type: 'presence', channel: 'chat:a', limit: 5000 })).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    expect(await any.request({ type: 'presence', channel: 'chat:a', cursor: 7 })).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    expect(await any.request({ type: 'presence', channel: 'bad channel' })).toMatchObject({ type: 'error', error: { code: 'invalid_channel' } });
    // A subscriber of the channel may read it whatever its token's patterns say (public channels).
    const s = await TestSocket.open(server.wsUrl);
    sockets.push(s);
    const token = await makeToken({ sub: 'huge', info: { blob: 'x'.repeat(5000) } });
    const reply = await s.request({ type: 'connect', token });
    expect(reply).toMatchObject({ type: 'error', error: { code: 'unauthorized' } });
    expect(reply.error.message).toContain('maxInfoBytes');
    expect((await s.closed).code).toBe(4501);
  });
});

describe('channel presence through the SDKs', () => {
  it('@herald/client: subscription.presence(), presenceStats(), on(join|leave); @herald/server: presence(), presenceStats()', async () => {
    const { HeraldClient } = await import('@herald/client');
    const { HeraldServerClient } = await import('@herald/server');
    const { WebSocket } = await import('ws');
    const ch = 'chat:sdk';
    const open = async (sub: string, info?: unknown) => {
      const token = await makeToken({ sub, ...(info !== undefined ? { info } : {}) });
      const c = new HeraldClient({ url: server.wsUrl, token, WebSocket: WebSocket as never });
      await c.connect();
      return c;
    };
    const watcher = await open('w');
    const room = watcher.subscribe(ch, { presence: true });
    const seen: string[] = [];
    const offJoin = room.on('join', (m) => seen.push(`join:${m.user}:${JSON.stringify(m.info ?? null)}`));
    const offLeave = room.on('leave', (m) => seen.push(`leave:${m.user}`));
    await room.ready();
    const other = await open('o', { avatar: 'o.png' });
    const theirs = other.subscribe(ch);
    await theirs.ready();
    await waitFor(() => seen.includes('join:o:{"avatar":"o.png"}'), 3000, 'join through the SDK');
    const page = await room.presence({ limit: 1 });
    expect(page.members).toHaveLength(1);
    const rest = await room.presence({ cursor: page.next! });
    expect([...page.members, ...rest.members].map((m) => m.user).sort()).toEqual(['o', 'w']);
    expect(await room.presenceStats()).toEqual({ connections: 2, users: 2 });
    const backend = new HeraldServerClient({ url: server.url, apiKey: 'read-only-key-0001' });
    expect(await backend.presenceStats(ch)).toEqual({ channel: ch, connections: 2, users: 2 });
    const all = await backend.presence(ch, { limit: 10 });
    expect(all.members.map((m) => m.user).sort()).toEqual(['o', 'w']);
    await expect(backend.presence('plain:x')).rejects.toMatchObject({ code: 'presence_not_enabled' });
    await other.close();
    await waitFor(() => seen.includes('leave:o'), 3000, 'leave through the SDK');
    offJoin();
    offLeave();
    expect(seen).toEqual(['join:w:null', 'join:o:{"avatar":"o.png"}', 'leave:o']);
    await watcher.close();
  });
});

describe('onPresenceEvent', () => {
  it('hears each join and leave written by this node, with the member, once; the disposer stops it', async () => {
    const heard: string[] = [];
    // Only this test's channels: earlier tests' connections may still be closing.
    const off = server.node.onPresenceEvent((e) => e.channel.endsWith('hooks') && heard.push(`${e.type}:${e.channel}:${e.member.user}:${JSON.stringify(e.member.info ?? null)}`));
    const s = await client('hooked', { info: { n: 1 } });
    await s.subscribe('chat:hooks');
    await s.request({ type: 'unsubscribe', channel: 'chat:hooks' });
    await s.subscribe('plain:nohooks');
    await waitFor(() => heard.length >= 2, 3000, 'join and leave').catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(heard)}`);
    });
    expect(heard).toEqual(['join:chat:hooks:hooked:{"n":1}', 'leave:chat:hooks:hooked:{"n":1}']);
    off();
    await s.subscribe('chat:hooks');
    const stats = await s.request({ type: 'presence_stats', channel: 'chat:hooks' });
    expect(stats.connections).toBe(1);
    expect(heard).toHaveLength(2);
  });
});
