import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

describe('fan-out', () => {
  it('delivers a channel publish to every subscriber, with envelope, offset and epoch', async () => {
    server = await startTestServer();
    const subs = await Promise.all([1, 2, 3].map((i) => TestSocket.connect(server, { sub: `u${i}` })));
    const other = await TestSocket.connect(server, { sub: 'x' });
    for (const s of subs) await s.subscribe('chat:room-1');
    await other.subscribe('chat:room-2');
    const res = await api(server, 'POST', '/api/v1/publish', { channel: 'chat:room-1', eventType: 'chat.message', payload: { text: 'hi' }, source: 'test-svc' });
    expect(res.status).toBe(200);
    expect(res.body.position.offset).toBe(1);
    for (const s of subs) {
      const m = await s.next((f) => f.type === 'message');
      expect(m).toMatchObject({ target: 'channel', channel: 'chat:room-1', offset: 1, epoch: res.body.position.epoch });
      expect(m.message).toEqual({ msgId: res.body.msgId, timestamp: res.body.timestamp, source: 'test-svc', eventType: 'chat.message', version: '1.0', payload: { text: 'hi' } });
    }
    // Published after it, to the socket that must not have room-1: had room-1 reached it, that came first.
    await server.publish({ channel: 'chat:room-2', eventType: 'marker', payload: 0 });
    expect(await other.next((f) => f.type === 'message')).toMatchObject({ channel: 'chat:room-2' });
    expect(other.messages()).toHaveLength(1);
  });

  it('delivers user messages to every device of that user only', async () => {
    server = await startTestServer();
    const phone = await TestSocket.connect(server, { sub: 'alice' });
    const laptop = await TestSocket.connect(server, { sub: 'alice' });
    const bob = await TestSocket.connect(server, { sub: 'bob' });
    await api(server, 'POST', '/api/v1/publish', { user: 'alice', eventType: 'notify', payload: { n: 1 } });
    for (const s of [phone, laptop]) expect(await s.next((f) => f.type === 'message')).toMatchObject({ target: 'user', message: { payload: { n: 1 } } });
    await api(server, 'POST', '/api/v1/publish', { user: 'bob', eventType: 'marker', payload: {} }); // would have followed alice's
    expect(await bob.next((f) => f.type === 'message')).toMatchObject({ message: { eventType: 'marker' } });
    expect(bob.messages()).toHaveLength(1);
  });

  it('broadcasts to every connection', async () => {
    server = await startTestServer();
    const all = await Promise.all(['a', 'b', 'c'].map((u) => TestSocket.connect(server, { sub: u })));
    await api(server, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'maintenance', payload: {} });
    for (const s of all) expect(await s.next((f) => f.type === 'message')).toMatchObject({ target: 'broadcast' });
  });

  it('keeps publish order per channel', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('seq');
    for (let i = 0; i < 50; i++) void server.publish({ channel: 'seq', eventType: 'n', payload: i });
    const msgs = await s.waitMessages(50);
    expect(msgs.map((m) => m.message.payload)).toEqual([...Array(50).keys()]);
    expect(msgs.map((m) => m.offset)).toEqual([...Array(50).keys()].map((i) => i + 1));
  });

  it('stops delivering after unsubscribe', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('news');
    await s.subscribe('marker');
    expect(await s.request({ type: 'unsubscribe', channel: 'news' })).toMatchObject({ type: 'unsubscribed', channel: 'news' });
    await server.publish({ channel: 'news', eventType: 'x', payload: 1 });
    await server.publish({ channel: 'marker', eventType: 'marker', payload: 0 }); // news would have come first
    await s.next((f) => f.type === 'message');
    expect(s.messages().map((m) => m.channel)).toEqual(['marker']);
    expect(await s.request({ type: 'unsubscribe', channel: 'news' })).toMatchObject({ type: 'error', error: { code: 'not_subscribed' } });
  });

  it('lets clients publish where the token allows, and refuses elsewhere', async () => {
    server = await startTestServer();
    const pub = await TestSocket.connect(server, { sub: 'writer', publish: ['chat:*'] });
    const sub = await TestSocket.connect(server, { sub: 'reader' });
    await sub.subscribe('chat:1');
    const ok = await pub.request({ type: 'publish', channel: 'chat:1', eventType: 'chat.message', payload: { t: 'yo' }, msgId: 'client-msg-1' });
    expect(ok).toMatchObject({ type: 'published', msgId: 'client-msg-1', position: { offset: 1 } });
    expect(await sub.next((f) => f.type === 'message')).toMatchObject({ message: { source: 'client:writer', msgId: 'client-msg-1' } });
    // A resend of the same msgId is acknowledged again but not delivered twice.
    expect(await pub.request({ type: 'publish', channel: 'chat:1', eventType: 'chat.message', payload: { t: 'yo' }, msgId: 'client-msg-1' })).toMatchObject({ type: 'published', duplicate: true });
    expect(await pub.request({ type: 'publish', channel: 'admin:1', eventType: 'x', payload: 1 })).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
    // A new message after the resend: a second copy of the first would have arrived before it.
    expect(await pub.request({ type: 'publish', channel: 'chat:1', eventType: 'chat.message', payload: { t: 'next' }, msgId: 'client-msg-2' })).toMatchObject({ type: 'published' });
    await sub.waitMessages(2);
    expect(sub.messages().map((m) => m.message.msgId)).toEqual(['client-msg-1', 'client-msg-2']);
  });
});

describe('tag filters', () => {
  async function audience() {
    const specs: Array<{ sub: string; tags?: Record<string, string | number> }> = [
      { sub: 'eu-pro-ios', tags: { region: 'eu', plan: 'pro', device: 'ios', appVersion: '2.10.1', score: 7 } },
      { sub: 'eu-free-web', tags: { region: 'eu', plan: 'free', device: 'web', appVersion: '2.3.0', score: 2 } },
      { sub: 'us-team-android', tags: { region: 'us', plan: 'team', device: 'android', appVersion: '1.9.9' } },
      { sub: 'untagged' },
    ];
    const sockets = await Promise.all(specs.map((s) => TestSocket.connect(server, s)));
    return Object.fromEntries(specs.map((s, i) => [s.sub, sockets[i]!])) as Record<string, TestSocket>;
  }

  /**
   * Publishes with the filter, then an unfiltered broadcast marker that every socket waits for:
   * whoever the filtered message was for has it by then. Returns the filtered message's msgId.
   */
  async function reached(sockets: Record<string, TestSocket>, filter: unknown, extra: Record<string, unknown> = { broadcast: true }): Promise<string> {
    const res = await api(server, 'POST', '/api/v1/publish', { ...extra, filter, eventType: 'f', payload: JSON.stringify(filter) });
    expect(res.status).toBe(200);
    await api(server, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'marker', payload: 0 });
    for (const s of Object.values(sockets)) await s.next((f) => f.type === 'message' && f.message.eventType === 'marker');
    return res.body.msgId;
  }

  it.each([
    [{ tag: 'region', op: 'eq', value: 'eu' }, ['eu-pro-ios', 'eu-free-web']],
    [{ tag: 'plan', op: 'in', value: ['pro', 'team'] }, ['eu-pro-ios', 'us-team-android']],
    [{ not: { tag: 'region', op: 'eq', value: 'eu' } }, ['us-team-android', 'untagged']],
    [{ tag: 'region', op: 'ne', value: 'eu' }, ['us-team-android', 'untagged']],
    [{ tag: 'score', op: 'exists', value: true }, ['eu-pro-ios', 'eu-free-web']],
    [{ tag: 'score', op: 'gte', value: 5 }, ['eu-pro-ios']],
    [{ tag: 'appVersion', op: 'vgte', value: '2.4' }, ['eu-pro-ios']],
    [{ tag: 'appVersion', op: 'vlt', value: '2.3.0' }, ['us-team-android']],
    [{ and: [{ tag: 'region', op: 'eq', value: 'eu' }, { tag: 'device', op: 'in', value: ['web', 'android'] }] }, ['eu-free-web']],
    [{ or: [{ tag: 'plan', op: 'eq', value: 'team' }, { tag: 'score', op: 'lt', value: 3 }] }, ['eu-free-web', 'us-team-android']],
  ])('broadcast with filter %j reaches %j', async (filter, expected) => {
    server = await startTestServer();
    const sockets = await audience();
    const msgId = await reached(sockets, filter);
    const got = Object.entries(sockets).filter(([, s]) => s.messages().some((m) => m.message.msgId === msgId)).map(([name]) => name).sort();
    expect(got).toEqual([...expected].sort());
    for (const s of Object.values(sockets)) for (const m of s.messages()) expect(m.target).toBe(m.message.eventType === 'marker' ? 'broadcast' : 'filter');
  });

  it('combines a filter with a channel', async () => {
    server = await startTestServer();
    const sockets = await audience();
    await sockets['eu-pro-ios']!.subscribe('prices');
    await sockets['us-team-android']!.subscribe('prices');
    const msgId = await reached(sockets, { tag: 'region', op: 'eq', value: 'eu' }, { channel: 'prices' });
    const got = Object.entries(sockets).filter(([, s]) => s.messages().some((m) => m.message.msgId === msgId)).map(([n]) => n);
    expect(got).toEqual(['eu-pro-ios']);
  });

  it('combines a filter with a user', async () => {
    server = await startTestServer();
    const ios = await TestSocket.connect(server, { sub: 'dana', tags: { device: 'ios' } });
    const web = await TestSocket.connect(server, { sub: 'dana', tags: { device: 'web' } });
    await api(server, 'POST', '/api/v1/publish', { user: 'dana', filter: { tag: 'device', op: 'eq', value: 'ios' }, eventType: 'push', payload: 1 });
    await ios.next((f) => f.type === 'message');
    await api(server, 'POST', '/api/v1/publish', { user: 'dana', eventType: 'marker', payload: 2 }); // unfiltered, after it
    await web.next((f) => f.type === 'message');
    expect(web.messages().map((m) => m.message.eventType)).toEqual(['marker']);
  });

  it.each([
    [{ tag: 'x', op: 'regex', value: '.*' }],
    [{ tag: 'x', op: 'in', value: [] }],
    [{ tag: 'x', op: 'gt', value: 'high' }],
    [{ tag: 'x', op: 'vgte', value: 'latest' }],
    [{ and: [] }],
    [{ tag: '', op: 'eq', value: 1 }],
    [{ tag: 'x', op: 'eq', value: 1, extra: true }],
  ])('refuses the invalid filter %j with invalid_filter', async (filter) => {
    server = await startTestServer();
    const res = await api(server, 'POST', '/api/v1/publish', { broadcast: true, filter, eventType: 'f', payload: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_filter');
  });

  it('answers equality filters from the tag index without scanning everyone', async () => {
    server = await startTestServer();
    await audience();
    const { compileFilter } = await import('../src/tag-filter.js');
    const eq = [...server.node.hub.candidates(compileFilter({ tag: 'region', op: 'eq', value: 'us' }))];
    expect(eq.map((s) => s.user)).toEqual(['us-team-android']);
    const andPlan = [...server.node.hub.candidates(compileFilter({ and: [{ tag: 'plan', op: 'eq', value: 'pro' }, { tag: 'score', op: 'gt', value: 1 }] }))];
    expect(andPlan.map((s) => s.user)).toEqual(['eu-pro-ios']);
    const scan = [...server.node.hub.candidates(compileFilter({ tag: 'score', op: 'gt', value: 1 }))];
    expect(scan).toHaveLength(4);
  });
});
