import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

/** Every bad-input test also checks that a bystander keeps receiving. */
async function withBystander(fn: (s: TestSocket) => Promise<void>): Promise<void> {
  const bystander = await TestSocket.connect(server, { sub: 'bystander' });
  await bystander.subscribe('live');
  const s = await TestSocket.connect(server, { sub: 'offender' });
  await fn(s);
  await server.publish({ channel: 'live', eventType: 'still-here', payload: 1 });
  expect(await bystander.next((f) => f.type === 'message')).toMatchObject({ message: { eventType: 'still-here' } });
}

describe('bad client input', () => {
  it.each([
    ['malformed JSON', '{"type": "subscribe", ', 'invalid_json'],
    ['a JSON array', '[1,2]', 'invalid_frame'],
    ['an unknown frame type', '{"type":"teleport","id":3}', 'unknown_frame_type'],
    ['a frame without type', '{"id":3}', 'unknown_frame_type'],
    ['a subscribe without channel', '{"type":"subscribe","id":4}', 'invalid_frame'],
    ['an unknown field', '{"type":"subscribe","id":5,"channel":"a","sneaky":true}', 'invalid_frame'],
    ['a publish envelope that fails the schema', '{"type":"publish","id":6,"channel":"a","eventType":"bad type!","payload":1}', 'invalid_frame'],
    ['a wrong id type', '{"type":"subscribe","id":"x","channel":"a"}', 'invalid_frame'],
    ['an ack with an unknown field', '{"type":"ack","msgIds":["a"],"extra":1}', 'invalid_frame'],
    ['an ack without ids', '{"type":"ack","msgIds":[]}', 'invalid_frame'],
    ['an ack with a non-string id', '{"type":"ack","msgIds":[42]}', 'invalid_frame'],
    ['an ack with trailing garbage', '{"type":"ack","msgIds":["a"]}x]}', 'invalid_json'],
  ])('answers %s with an error frame and keeps the connection', async (_name, raw, code) => {
    server = await startTestServer();
    await withBystander(async (s) => {
      s.ws.send(raw);
      const err = await s.next((f) => f.type === 'error');
      expect(err.error.code).toBe(code);
      expect(typeof err.error.message).toBe('string');
      expect(s.ws.readyState).toBe(1);
      expect(await s.request({ type: 'subscribe', channel: 'ok' })).toMatchObject({ type: 'subscribed' });
    });
  });

  it('echoes the id of a frame that failed validation', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    s.ws.send('{"type":"subscribe","id":41,"channel":42}');
    expect(await s.next()).toMatchObject({ type: 'error', id: 41, error: { code: 'invalid_frame' } });
  });

  it.each([
    ['an invalid channel name', 'bad channel!', 'invalid_channel'],
    ['a forbidden channel', 'secret:1', 'permission_denied'],
  ])('refuses subscribing to %s', async (_n, channel, code) => {
    server = await startTestServer();
    await withBystander(async () => {
      const s = await TestSocket.connect(server, { channels: ['chat:*'] });
      expect(await s.request({ type: 'subscribe', channel })).toMatchObject({ type: 'error', error: { code } });
    });
  });

  it('refuses duplicate and excess subscriptions', async () => {
    server = await startTestServer({ limits: { maxSubscriptionsPerConnection: 2 } });
    const s = await TestSocket.connect(server);
    await s.subscribe('a');
    expect(await s.request({ type: 'subscribe', channel: 'a' })).toMatchObject({ error: { code: 'already_subscribed' } });
    await s.subscribe('b');
    expect(await s.request({ type: 'subscribe', channel: 'c' })).toMatchObject({ error: { code: 'too_many_subscriptions' } });
  });

  it('closes with 1009 on an oversized frame', async () => {
    server = await startTestServer({ limits: { maxMessageBytes: 1024 } });
    await withBystander(async (s) => {
      s.ws.send(JSON.stringify({ type: 'publish', id: 1, channel: 'a', eventType: 'x', payload: 'x'.repeat(2000) }));
      expect((await s.closed).code).toBe(1009);
    });
  });

  it('closes with 1003 on a binary frame', async () => {
    server = await startTestServer();
    await withBystander(async (s) => {
      s.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
      expect((await s.closed).code).toBe(1003);
    });
  });

  it('closes with 1007 on invalid UTF-8', async () => {
    server = await startTestServer();
    await withBystander(async (s) => {
      // Write a hand-made masked text frame whose payload is not UTF-8, bypassing the client's checks.
      const payload = Buffer.from([0xc3, 0x28, 0xff]);
      const mask = Buffer.from([1, 2, 3, 4]);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
      const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
      (s.ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(frame);
      expect((await s.closed).code).toBe(1007);
    });
  });

  it('closes with 4505 after too many invalid frames', async () => {
    server = await startTestServer({ limits: { maxInvalidFrames: 3 } });
    await withBystander(async (s) => {
      for (let i = 0; i < 5; i++) s.ws.send('nope');
      expect((await s.closed).code).toBe(4505);
    });
  });

  it('refuses a client publish larger than the message limit with message_too_large', async () => {
    server = await startTestServer({ limits: { maxMessageBytes: 1024 } });
    const s = await TestSocket.connect(server, { publish: ['*'] });
    // The frame fits; the envelope built from it (with msgId, timestamp, source) does not.
    const payload = 'x'.repeat(1024 - 120);
    const reply = await s.request({ type: 'publish', channel: 'a', eventType: 'x', payload });
    expect(reply).toMatchObject({ type: 'error', error: { code: 'message_too_large' } });
  });
});

describe('bad API input', () => {
  it.each([
    ['no audience', { eventType: 'x', payload: 1 }, 400, 'bad_request'],
    ['two audiences', { channel: 'a', user: 'u', eventType: 'x', payload: 1 }, 400, 'bad_request'],
    ['an unknown field', { channel: 'a', eventType: 'x', payload: 1, colour: 'red' }, 400, 'bad_request'],
    ['a missing payload', { channel: 'a', eventType: 'x' }, 400, 'bad_request'],
    ['a bad channel', { channel: 'a b', eventType: 'x', payload: 1 }, 400, 'invalid_channel'],
    ['a bad eventType', { channel: 'a', eventType: 'has space', payload: 1 }, 400, 'bad_request'],
    ['a too-large message', { channel: 'a', eventType: 'x', payload: 'x'.repeat(70_000) }, 413, 'message_too_large'],
  ])('refuses %s', async (_n, body, status, code) => {
    server = await startTestServer();
    const res = await api(server, 'POST', '/api/v1/publish', body);
    expect(res.status).toBe(status);
    expect(res.body.error).toMatchObject({ code });
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.js/); // no stack traces
  });

  it('refuses malformed JSON, wrong content type, missing and wrong API keys', async () => {
    server = await startTestServer();
    expect((await api(server, 'POST', '/api/v1/publish', '{nope')).body.error.code).toBe('invalid_json');
    const ct = await fetch(`${server.url}/api/v1/publish`, { method: 'POST', headers: { authorization: 'Bearer test-api-key-123', 'content-type': 'text/plain' }, body: 'hi' });
    expect(ct.status).toBe(415);
    expect(((await ct.json()) as any).error.code).toBe('unsupported_media_type');
    expect(await api(server, 'POST', '/api/v1/publish', { channel: 'a', eventType: 'x', payload: 1 }, null)).toMatchObject({ status: 401, body: { error: { code: 'api_key_required' } } });
    expect(await api(server, 'POST', '/api/v1/publish', { channel: 'a', eventType: 'x', payload: 1 }, 'wrong-key-000')).toMatchObject({ status: 401, body: { error: { code: 'invalid_api_key' } } });
    expect(await api(server, 'GET', '/api/v1/nothing-here')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });

  it('survives a flood of bad requests and keeps serving', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    await s.subscribe('ok');
    await Promise.all(Array.from({ length: 50 }, (_, i) => api(server, 'POST', '/api/v1/publish', i % 2 ? '{' : { channel: '!!', eventType: 'x', payload: 1 })));
    await api(server, 'POST', '/api/v1/publish', { channel: 'ok', eventType: 'x', payload: 1 });
    await s.next((f) => f.type === 'message');
  });
});
