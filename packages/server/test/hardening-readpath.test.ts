/**
 * Issue 11, the client read path (C1 as a class of fault): JSON nested past `limits.maxJsonDepth`
 * is refused on every path a client's JSON comes in by (WebSocket frames, the ack fast path, HTTP
 * bodies, ingested records), `echo` exists only where configured, client mistakes never log at
 * error level, and a fault of ours while handling a frame closes that connection alone with 4004.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseRecord } from '../src/ingest/ingest-record.js';
import type { HeraldServer } from '../src/server.js';
import { api, makeToken, startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
});

const nested = (levels: number, inner = '0'): string => `${'['.repeat(levels)}${inner}${']'.repeat(levels)}`;

/** A bystander that must keep being served while someone else misbehaves. */
async function bystander(): Promise<{ check(): Promise<void> }> {
  const s = await TestSocket.connect(server, { sub: 'bystander' });
  await s.subscribe('live');
  let n = 0;
  return {
    async check() {
      const payload = ++n;
      await server.publish({ channel: 'live', eventType: 'still-here', payload });
      expect(await s.next((f) => f.type === 'message' && f.message.payload === payload)).toMatchObject({ message: { eventType: 'still-here' } });
      expect(s.ws.readyState).toBe(1);
    },
  };
}

/** Error-level log calls on the server's logger from now on. */
function errorLogs(): Array<[unknown, unknown]> {
  const calls: Array<[unknown, unknown]> = [];
  const log = server.node.log;
  for (const level of ['error', 'fatal'] as const) {
    const original = log[level].bind(log);
    vi.spyOn(log, level).mockImplementation(((obj: unknown, msg?: unknown) => {
      calls.push([obj, msg]);
      return original(obj as object, msg as string);
    }) as typeof log.error);
  }
  return calls;
}

describe('C1: JSON nesting depth on every client path', () => {
  it('refuses an echo request with 6000 nested arrays (invalid_frame); the process and a bystander carry on', async () => {
    server = await startTestServer({ rpc: { echo: true }, auth: { anonymous: true }, channels: { public: ['live'] } });
    const b = await bystander();
    const s = await TestSocket.connect(server, null);
    s.ws.send(`{"type":"request","correlationId":"c1","method":"echo","data":${nested(6000)}}`);
    const err = await s.next((f) => f.type === 'error' || f.type === 'response');
    expect(err).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    expect(err.error.message).toMatch(/limits\.maxJsonDepth \(64\)/);
    // The connection stays usable, echo works within the limit.
    s.send({ type: 'request', correlationId: 'c2', method: 'echo', data: JSON.parse(nested(30)) });
    expect(await s.next((f) => f.type === 'response')).toMatchObject({ correlationId: 'c2', data: JSON.parse(nested(30)) });
    await b.check();
  });

  it('registers echo only when rpc.echo is on', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server);
    s.send({ type: 'request', correlationId: 'e', method: 'echo', data: 1 });
    expect(await s.next((f) => f.type === 'response')).toMatchObject({ correlationId: 'e', error: { code: 'unknown_method' } });
  });

  it('counts the frame itself as level 1: depth maxJsonDepth passes, one more is refused, on every frame type', async () => {
    server = await startTestServer({ limits: { maxJsonDepth: 6 }, rpc: { echo: true }, channels: { clientPublish: ['pub:*'] } });
    const b = await bystander();
    const s = await TestSocket.connect(server, { publish: ['pub:*'] });
    // frame (1) > data/payload array levels (5) = 6: accepted.
    s.ws.send(`{"type":"request","correlationId":"ok","method":"echo","data":${nested(5)}}`);
    expect(await s.next((f) => f.type === 'response' || f.type === 'error')).toMatchObject({ type: 'response', correlationId: 'ok' });
    expect(await s.request({ type: 'publish', channel: 'pub:a', eventType: 'e', payload: JSON.parse(nested(5)) })).toMatchObject({ type: 'published' });
    const tooDeep = [
      `{"type":"request","correlationId":"x","method":"echo","data":${nested(6)}}`,
      `{"type":"publish","id":7,"channel":"pub:a","eventType":"e","payload":${nested(6)}}`,
      `{"type":"response","correlationId":"x","data":${nested(6)}}`,
      `{"type":"subscribe","id":8,"channel":"a","recover":${nested(6)}}`,
      // The ack fast path: its prefix, then nesting where the ids go.
      `{"type":"ack","msgIds":[${nested(5, '"a"')}]}`,
      `{"type":"connect","id":9,"token":${nested(6)}}`,
    ];
    for (const raw of tooDeep) {
      s.ws.send(raw);
      const reply = await s.next((f) => f.type === 'error' || f.type === 'response');
      expect({ raw, reply }).toMatchObject({ raw, reply: { type: 'error', error: { code: 'invalid_frame', message: expect.stringMatching(/maxJsonDepth \(6\)/) } } });
    }
    expect(s.ws.readyState).toBe(1);
    await b.check();
  });

  it('a deeply nested payload is a client error: no error-level log, no stack, no internal error', async () => {
    server = await startTestServer({ channels: { clientPublish: ['pub:*'] } });
    const errors = errorLogs();
    const debug = vi.spyOn(server.node.log, 'debug');
    const s = await TestSocket.connect(server, { publish: ['pub:*'] });
    s.ws.send(`{"type":"publish","id":3,"channel":"pub:a","eventType":"e","payload":${nested(8000)}}`);
    expect(await s.next((f) => f.id === 3)).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    expect(errors).toEqual([]);
    const logged = debug.mock.calls.find((c) => c[1] === 'invalid frame');
    expect(logged?.[0]).toMatchObject({ code: 'invalid_frame' });
    expect(logged?.[0]).not.toHaveProperty('err');
  });

  it('refuses too-deep HTTP bodies with 400 bad_request on /api/v1 and /poll/v1, and accepts the limit', async () => {
    server = await startTestServer({ limits: { maxJsonDepth: 6 }, auth: { anonymous: true }, channels: { public: ['live'] } });
    const b = await bystander();
    const publish = (levels: number) => `{"channel":"live","eventType":"e","payload":${nested(levels)}}`;
    // body (1) > payload arrays: 5 levels is depth 6.
    expect((await api(server, 'POST', '/api/v1/publish', publish(5))).status).toBe(200);
    const token = await makeToken({ sub: 'poller' });
    for (const [path, body, key] of [
      ['/api/v1/publish', publish(6), undefined],
      ['/api/v1/publish', `{"channel":"live","eventType":"e","payload":${nested(100_000)}}`, undefined],
      ['/api/v1/publish/batch', `{"messages":[${publish(5)}]}`, undefined],
      ['/api/v1/users/u1/disconnect', `{"reason":${nested(6, '"r"')}}`, undefined],
      ['/poll/v1/inbox/ack', `{"msgIds":${nested(6, '"m"')}}`, token],
    ] as const) {
      const res = await api(server, 'POST', path, body, key);
      expect({ path, status: res.status, body: res.body }).toMatchObject({ path, status: 400, body: { error: { code: 'bad_request', message: expect.stringMatching(/maxJsonDepth \(6\)/) } } });
    }
    await b.check();
  });

  it('refuses a too-deep ingested record as invalid instead of retrying it forever', async () => {
    server = await startTestServer({ limits: { maxJsonDepth: 8 } });
    const record = (levels: number) => `{"channel":"c","envelope":{"msgId":"m1","timestamp":1,"source":"s","eventType":"e","version":"1","payload":${nested(levels)}}}`;
    expect(parseRecord(server.node, record(6))).toMatchObject({ ok: true });
    expect(parseRecord(server.node, record(7))).toMatchObject({ ok: false, code: 'bad_request', reason: expect.stringMatching(/maxJsonDepth \(8\)/) });
  });

  it('refuses a token whose JWT header is nested thousands deep (within the token size limit), without harm', async () => {
    server = await startTestServer();
    const b = await bystander();
    const good = await makeToken();
    const header = Buffer.from(`{"alg":"HS256","x":${nested(5000)}}`).toString('base64url');
    const s = await TestSocket.open(server.wsUrl);
    s.send({ type: 'connect', id: 1, token: `${header}.${good.split('.')[1]}.${good.split('.')[2]}` });
    expect(await s.next()).toMatchObject({ type: 'error', error: { code: 'unauthorized' } });
    await b.check();
  });
});

describe('C1: a fault while handling a frame closes that connection alone (4004)', () => {
  async function expectFault(trigger: (s: TestSocket) => void, setup: () => void, claims = {}): Promise<void> {
    const b = await bystander();
    const s = await TestSocket.connect(server, { sub: 'victim', ...claims });
    const errors = errorLogs();
    setup();
    trigger(s);
    expect((await s.closed).code).toBe(4004);
    const faults = errors.filter(([obj]) => (obj as { connId?: string }).connId === s.info.connectionId);
    expect(faults).toHaveLength(1);
    vi.restoreAllMocks();
    await b.check();
  }

  it('in the asynchronous part of subscribe', async () => {
    server = await startTestServer();
    await expectFault(
      (s) => s.send({ type: 'subscribe', id: 5, channel: 'boom' }),
      () => {
        const hub = server.node.hub;
        const original = hub.recovered.bind(hub);
        vi.spyOn(hub, 'recovered').mockImplementation((session, channel, top) => {
          if (channel === 'boom') throw new Error('injected fault');
          original(session, channel, top);
        });
      },
    );
  });

  it('in the ack fast path', async () => {
    server = await startTestServer();
    await expectFault(
      (s) => s.ws.send('{"type":"ack","msgIds":["m-1"]}'),
      () => {
        vi.spyOn(server.node.delivery, 'ack').mockImplementation(() => {
          throw new Error('injected fault');
        });
      },
    );
  });

  it('while a connect is being activated', async () => {
    server = await startTestServer();
    const b = await bystander();
    const errors = errorLogs();
    const original = server.node.activate.bind(server.node);
    vi.spyOn(server.node, 'activate').mockImplementation(async (session) => {
      if (session.user === 'victim') throw new Error('injected fault');
      return original(session);
    });
    const s = await TestSocket.open(server.wsUrl);
    s.send({ type: 'connect', id: 1, token: await makeToken({ sub: 'victim' }) });
    expect((await s.closed).code).toBe(4004);
    expect(errors.filter(([, msg]) => typeof msg === 'string' && /frame handling failed/.test(msg))).toHaveLength(1);
    vi.restoreAllMocks();
    await b.check();
  });

  it('an engine failure during subscribe is a temporary refusal (broker_unavailable), not a fault: the connection stays', async () => {
    server = await startTestServer();
    const errors = errorLogs();
    vi.spyOn(server.node.broker, 'history').mockRejectedValueOnce(new Error('engine down'));
    const s = await TestSocket.connect(server);
    expect(await s.request({ type: 'subscribe', channel: 'flaky' })).toMatchObject({ type: 'error', error: { code: 'broker_unavailable', temporary: true } });
    expect(errors.map(([, msg]) => msg)).toEqual(['subscribe failed in the engine']);
    // Nothing half-done is left behind: the same subscribe succeeds once the engine is back.
    expect(await s.request({ type: 'subscribe', channel: 'flaky' })).toMatchObject({ type: 'subscribed' });
  });

  it('a request handler whose result cannot be serialized gets an internal error response, not a crash', async () => {
    server = await startTestServer();
    server.node.rpc.handle('bigint', async () => ({ n: 1n }));
    const b = await bystander();
    const s = await TestSocket.connect(server);
    s.send({ type: 'request', correlationId: 'r', method: 'bigint' });
    expect(await s.next((f) => f.type === 'response')).toMatchObject({ correlationId: 'r', error: { code: 'internal' } });
    expect(s.ws.readyState).toBe(1);
    await b.check();
  });
});
