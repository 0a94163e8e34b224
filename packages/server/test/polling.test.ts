import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { makeToken, startTestServer } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

async function poll(path: string, token?: string, init: RequestInit = {}) {
  const res = await fetch(`${server.url}/poll/v1${path}`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  return { status: res.status, body: (await res.json()) as any };
}

describe('REST polling', () => {
  it('returns a channel\'s messages since a position, like recovery', async () => {
    server = await startTestServer();
    const token = await makeToken({ channels: ['news:*'] });
    const first = await poll('/channels/news:1/messages', token);
    expect(first.body).toMatchObject({ channel: 'news:1', recovered: true, messages: [], position: { offset: 0 } });
    for (let i = 1; i <= 3; i++) await server.publish({ channel: 'news:1', eventType: 'n', payload: i });
    const next = await poll(`/channels/news:1/messages?since=0&epoch=${first.body.position.epoch}`, token);
    expect(next.body.messages.map((m: any) => m.message.payload)).toEqual([1, 2, 3]);
    expect(next.body.messages[2]).toMatchObject({ type: 'message', channel: 'news:1', offset: 3 });
    const after = await poll(`/channels/news:1/messages?since=3&epoch=${first.body.position.epoch}`, token);
    expect(after.body.messages).toEqual([]);
    const stale = await poll('/channels/news:1/messages?since=1&epoch=wrong', token);
    expect(stale.body.recovered).toBe(false);
  });

  it('long-polls until a message arrives', async () => {
    server = await startTestServer();
    const token = await makeToken();
    const { body } = await poll('/channels/live/messages', token);
    const started = Date.now();
    const waiting = poll(`/channels/live/messages?since=${body.position.offset}&epoch=${body.position.epoch}&wait=5000`, token);
    setTimeout(() => void server.publish({ channel: 'live', eventType: 'x', payload: 'now' }), 150);
    const got = await waiting;
    expect(got.body.messages.map((m: any) => m.message.payload)).toEqual(['now']);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('serves and acknowledges the user inbox', async () => {
    server = await startTestServer();
    const token = await makeToken({ sub: 'pollster' });
    await server.publish({ user: 'pollster', eventType: 'x', payload: 1, delivery: 'at-least-once' });
    await server.publish({ user: 'pollster', eventType: 'x', payload: 2, delivery: 'at-least-once' });
    const box = await poll('/inbox', token);
    expect(box.body.messages.map((m: any) => m.message.payload)).toEqual([1, 2]);
    const ack = await poll('/inbox/ack', token, { method: 'POST', body: JSON.stringify({ msgIds: [box.body.messages[0].message.msgId] }) });
    expect(ack.body).toEqual({ removed: 1, refused: [] });
    expect((await poll('/inbox', token)).body.messages.map((m: any) => m.message.payload)).toEqual([2]);
  });

  it('authenticates like the socket and checks channel permissions', async () => {
    server = await startTestServer();
    expect(await poll('/channels/x/messages')).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(await poll('/channels/x/messages', 'garbage')).toMatchObject({ status: 401 });
    const limited = await makeToken({ channels: ['a:*'] });
    expect(await poll('/channels/b:1/messages', limited)).toMatchObject({ status: 403, body: { error: { code: 'permission_denied' } } });
    expect(await poll('/channels/a:1/messages?since=1', limited)).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });
  });
});
