/**
 * Client behaviour that a well-behaved server never triggers, driven through a scripted fake
 * WebSocket: malformed and unexpected frames, a server that goes silent, request timeouts,
 * manual acks and duplicate suppression, reconnect schedules and attempt limits, and the
 * single-flight loop.
 *
 * Everything here runs on vitest's fake clock: the scripted socket, the client's heartbeat,
 * request, ack and reconnect timers all advance only when a test advances time, so schedules are
 * asserted to the millisecond and "nothing happens for N ms" is a statement about virtual time,
 * not a race with a real one.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldClient } from '../src/index.js';
import type { HeraldClientOptions, HeraldError } from '../src/index.js';

/** Advances the fake clock by `ms`, running every timer and promise that falls due. */
const advance = (ms: number): Promise<unknown> => vi.advanceTimersByTimeAsync(ms);

/** Advances the fake clock one millisecond at a time until `check` holds (at most `limitMs`). */
async function waitFor(check: () => boolean, limitMs = 5000, what = 'condition'): Promise<void> {
  for (let waited = 0; !check(); waited++) {
    if (waited >= limitMs) throw new Error(`still waiting for ${what} after ${limitMs} ms of fake time`);
    await advance(1);
  }
}

/** Starts `promise`, advances the clock until it settles, and returns it. */
async function settled<T>(promise: Promise<T>, limitMs = 5000): Promise<T> {
  let done = false;
  const watched = promise.finally(() => void (done = true));
  watched.catch(() => {});
  await waitFor(() => done, limitMs, 'a promise to settle');
  return watched;
}

/** A WebSocket whose far end is the test. */
class FakeSocket {
  static all: FakeSocket[] = [];
  /** When set, answers `connect` with `connected` automatically. */
  static autoConnect: Record<string, unknown> | false = { pingInterval: 0, pongTimeout: 0 };
  /** When false, the dial fails (close 1006) instead of opening. */
  static reachable = true;

  readyState = 0;
  sent: any[] = [];
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;

  /** When this socket was dialled (fake clock). */
  readonly at = Date.now();

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
    setTimeout(() => {
      if (!FakeSocket.reachable) {
        this.readyState = 3;
        this.onerror?.({ message: 'ECONNREFUSED' });
        this.onclose?.({ code: 1006, reason: '' });
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }

  send(data: string): void {
    const frame = JSON.parse(data);
    this.sent.push(frame);
    if (frame.type === 'connect' && FakeSocket.autoConnect) {
      this.push({ type: 'connected', id: frame.id, connectionId: `c${FakeSocket.all.length}`, user: 'u', protocol: 1, node: 'n', ...FakeSocket.autoConnect });
    }
  }

  close(code = 1000, reason = ''): void {
    this.serverClose(code, reason);
  }

  /** Server → client. Strings are sent as is. */
  push(frame: unknown): void {
    setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) }), 0);
  }

  serverClose(code: number, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }

  frames(type: string): any[] {
    return this.sent.filter((f) => f.type === type);
  }
}

const clients: HeraldClient[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  vi.useRealTimers();
  vi.restoreAllMocks();
  FakeSocket.all = [];
  FakeSocket.autoConnect = { pingInterval: 0, pongTimeout: 0 };
  FakeSocket.reachable = true;
});

function client(opts: Partial<HeraldClientOptions> = {}): HeraldClient {
  const c = new HeraldClient({ url: 'ws://fake/ws', WebSocket: FakeSocket as never, reconnect: { strategy: 'fixed', delay: 10 }, ...opts });
  clients.push(c);
  return c;
}

const last = (): FakeSocket => FakeSocket.all[FakeSocket.all.length - 1]!;

/** An at-least-once delivery (`ack: true`), unless `extra` says otherwise. */
function message(msgId: string, target = 'user', extra: object = {}): object {
  return { type: 'message', target, ack: true, ...extra, message: { msgId, timestamp: 1, source: 's', eventType: 'x', version: '1.0', payload: msgId } };
}

describe('client logic (scripted socket)', () => {
  it('reports malformed and unexpected frames as error events and keeps going', async () => {
    const c = client();
    const errors: HeraldError[] = [];
    c.on('error', (e) => void errors.push(e));
    const got: string[] = [];
    c.on('message', (m) => void got.push(m.msgId));
    await settled(c.connect());
    const ws = last();
    ws.push('{oops');
    ws.push({ type: 'teleport' });
    ws.push({ type: 'message', target: 'user' });
    ws.push({ type: 'subscribed', id: 999, channel: 'x', position: { offset: 0, epoch: 'e' } });
    ws.push({ type: 'connected', id: 5, connectionId: 'x', user: '', pingInterval: 0, pongTimeout: 0 });
    ws.push(message('ok'));
    await waitFor(() => got.length === 1);
    expect(errors.map((e) => e.code)).toEqual(['invalid_json', 'unknown_frame_type', 'invalid_frame', 'invalid_frame', 'invalid_frame']);
    expect(c.state.status).toBe('connected');
  });

  it('a throwing handler becomes an error event, never an uncaught exception', async () => {
    const c = client();
    const errors: string[] = [];
    c.on('error', (e) => void errors.push(e.message));
    c.on('message', () => {
      throw new Error('handler broke');
    });
    await settled(c.connect());
    last().push(message('m1'));
    await waitFor(() => errors.length === 1);
    expect(errors[0]).toBe('handler broke');
    await advance(1000); // far past the ack batching delay
    expect(last().frames('ack')).toEqual([]); // not acknowledged: the server may redeliver
  });

  it('declares a silent connection dead after pingInterval + pongTimeout and reconnects', async () => {
    FakeSocket.autoConnect = { pingInterval: 60, pongTimeout: 40 };
    const c = client();
    await settled(c.connect());
    const first = last();
    let closedAt: number | undefined;
    c.once('disconnected', (info) => void (closedAt = info.code === 4002 ? Date.now() : -1));
    // Pings every 90 ms (inside the 100 ms deadline) keep it alive and get pongs.
    for (let i = 0; i < 4; i++) {
      first.push({ type: 'ping' });
      await advance(90);
    }
    expect(c.state.status).toBe('connected');
    expect(first.frames('pong').length).toBe(4);
    // The last ping was delivered at t0; the client gives up exactly pingInterval + pongTimeout later.
    const t0 = Date.now() - 90;
    await advance(100 - 90 - 1);
    expect(closedAt).toBeUndefined();
    await advance(1);
    expect(closedAt).toBe(t0 + 100);
    await waitFor(() => FakeSocket.all.length === 2 && c.state.status === 'connected');
  });

  it('times out requests with a typed, temporary error', async () => {
    const c = client();
    await settled(c.connect());
    let outcome: unknown;
    c.request('slow', {}, { timeout: 50 }).then(
      (v) => void (outcome = { resolved: v }),
      (e) => void (outcome = e),
    );
    await advance(49);
    expect(outcome).toBeUndefined();
    await advance(1);
    expect(outcome).toMatchObject({ name: 'HeraldError', code: 'request_timeout', temporary: true });
    expect(last().frames('request')[0]).toMatchObject({ method: 'slow', data: {} });
    // A late response is ignored: no error, no second settlement.
    const errors: unknown[] = [];
    c.on('error', (e) => void errors.push(e));
    last().push({ type: 'response', correlationId: last().frames('request')[0].correlationId, data: 1 });
    await advance(10);
    expect(errors).toEqual([]);
    expect(outcome).toMatchObject({ code: 'request_timeout' });
  });

  it('answers server requests; unknown methods get unknown_method; thrown HeraldErrors keep their code', async () => {
    const c = client();
    const { HeraldError: HE } = await import('../src/index.js');
    c.onRequest('double', (n) => (n as number) * 2);
    c.onRequest('busy', () => {
      throw new HE('overloaded', 'try later', undefined, true);
    });
    const dispose = c.onRequest('gone', () => 1);
    dispose();
    await settled(c.connect());
    const ws = last();
    ws.push({ type: 'request', correlationId: 'a', method: 'double', data: 21 });
    ws.push({ type: 'request', correlationId: 'b', method: 'gone' });
    ws.push({ type: 'request', correlationId: 'c', method: 'busy' });
    await waitFor(() => ws.frames('response').length === 3);
    const byId = Object.fromEntries(ws.frames('response').map((f) => [f.correlationId, f]));
    expect(byId.a).toEqual({ type: 'response', correlationId: 'a', data: 42 });
    expect(byId.b.error).toMatchObject({ code: 'unknown_method', temporary: false });
    expect(byId.c.error).toEqual({ code: 'overloaded', message: 'try later', temporary: true });
  });

  it('suppresses duplicate msgIds but re-acks a redelivery of an acknowledged message', async () => {
    const c = client();
    const got: string[] = [];
    c.on('message', (m) => void got.push(m.msgId));
    await settled(c.connect());
    const ws = last();
    ws.push(message('a'));
    ws.push(message('b'));
    ws.push(message('a'));
    await waitFor(() => ws.frames('ack').flatMap((f) => f.msgIds).length >= 3);
    expect(got).toEqual(['a', 'b']);
    expect(ws.frames('ack').flatMap((f) => f.msgIds)).toEqual(['a', 'b', 'a']);
  });

  it('does not send acks for at-most-once deliveries, but still de-duplicates them', async () => {
    const c = client();
    const got: string[] = [];
    c.on('message', (m) => void got.push(m.msgId));
    await settled(c.connect());
    const ws = last();
    ws.push(message('x1', 'user', { ack: undefined }));
    ws.push(message('x1', 'user', { ack: undefined }));
    ws.push(message('x2'));
    await waitFor(() => ws.frames('ack').length === 1);
    expect(got).toEqual(['x1', 'x2']);
    expect(ws.frames('ack')).toEqual([{ type: 'ack', msgIds: ['x2'] }]);
  });

  it('manual ack mode acks only when the application says so', async () => {
    const c = client({ ackMode: 'manual' });
    const contexts: { ack(): void }[] = [];
    c.on('message', (_m, ctx) => void contexts.push(ctx));
    await settled(c.connect());
    const ws = last();
    ws.push(message('m1'));
    ws.push(message('m2'));
    await waitFor(() => contexts.length === 2);
    await advance(1000);
    expect(ws.frames('ack')).toEqual([]);
    contexts[1]!.ack();
    contexts[1]!.ack();
    contexts[0]!.ack();
    await waitFor(() => ws.frames('ack').length > 0);
    expect(ws.frames('ack')).toEqual([{ type: 'ack', msgIds: ['m2', 'm1'] }]);
  });

  it('acks only after an async handler resolves, and not when it rejects', async () => {
    const c = client();
    let release!: () => void;
    c.on('message', (m) => (m.msgId === 'bad' ? Promise.reject(new Error('no')) : new Promise<void>((r) => (release = r))));
    const errors: string[] = [];
    c.on('error', (e) => void errors.push(e.message));
    await settled(c.connect());
    const ws = last();
    ws.push(message('good'));
    ws.push(message('bad'));
    await waitFor(() => errors.length === 1);
    expect(ws.frames('ack')).toEqual([]);
    release();
    await waitFor(() => ws.frames('ack').length === 1);
    expect(ws.frames('ack')[0].msgIds).toEqual(['good']);
  });

  it('reconnect: emits reconnecting with attempt and delay, honours maxAttempts, then stops', async () => {
    const c = client({ reconnect: { strategy: 'fixed', delay: 5, maxAttempts: 3 } });
    await settled(c.connect());
    FakeSocket.reachable = false;
    const attempts: { attempt: number; delay: number }[] = [];
    c.on('reconnecting', (i) => void attempts.push(i));
    const final = new Promise<{ willReconnect: boolean }>((r) => c.on('disconnected', (i) => !i.willReconnect && r(i)));
    last().serverClose(4001, 'shutdown');
    await settled(final);
    expect(attempts).toEqual([
      { attempt: 1, delay: 5 },
      { attempt: 2, delay: 5 },
      { attempt: 3, delay: 5 },
    ]);
    expect(c.state).toMatchObject({ status: 'disconnected', error: { code: 'connection_failed' } });
    // connect() starts over.
    FakeSocket.reachable = true;
    await settled(c.connect());
    expect(c.state.status).toBe('connected');
  });

  it('reconnects on the exponential schedule with full jitter, and starts over after a success', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const c = client({ reconnect: { strategy: 'exponential', initialDelay: 100, maxDelay: 1000, factor: 2 } });
    await settled(c.connect());
    const delays: number[] = [];
    c.on('reconnecting', (i) => void delays.push(i.delay));
    FakeSocket.reachable = false;
    const dialledAt: number[] = [];
    const dialsBefore = FakeSocket.all.length;
    let closedAt = 0;
    c.once('disconnected', () => void (closedAt = Date.now()));
    last().serverClose(4001, 'shutdown');
    await waitFor(() => FakeSocket.all.length - dialsBefore === 6, 10_000);
    for (const ws of FakeSocket.all.slice(dialsBefore)) dialledAt.push((ws as unknown as { at: number }).at);
    // Ceilings 100, 200, 400, 800, 1000, 1000 (capped) halved by the stubbed random draw.
    expect(delays.slice(0, 6)).toEqual([50, 100, 200, 400, 500, 500]);
    // Each dial happens exactly its delay after the previous failure (a failed dial takes 1 ms).
    const gaps = dialledAt.map((t, i) => t - (i === 0 ? closedAt : dialledAt[i - 1]! + 1));
    expect(gaps).toEqual([50, 100, 200, 400, 500, 500]);
    // A successful connection resets the attempt count: the next outage starts at the first delay.
    FakeSocket.reachable = true;
    await waitFor(() => c.state.status === 'connected', 10_000);
    delays.length = 0;
    FakeSocket.reachable = false;
    last().serverClose(4001, 'again');
    await waitFor(() => delays.length === 1);
    expect(delays).toEqual([50]);
  });

  it('does not reconnect after a terminal code (4502) and reports it', async () => {
    const c = client();
    await settled(c.connect());
    const info = new Promise((r) => c.once('disconnected', r));
    last().serverClose(4502, 'bye');
    expect(await settled(info)).toEqual({ code: 4502, reason: 'bye', willReconnect: false });
    await advance(60_000);
    expect(FakeSocket.all.length).toBe(1);
    expect(c.state).toMatchObject({ status: 'disconnected', code: 4502 });
  });

  it('runs a single connection loop however often connect() is called', async () => {
    const c = client();
    const p = [c.connect(), c.connect(), c.connect()];
    await settled(Promise.all(p));
    await settled(c.connect());
    expect(FakeSocket.all.length).toBe(1);
    expect(last().frames('connect')).toHaveLength(1);
    c.disconnect();
    expect(c.state).toMatchObject({ status: 'disconnected', code: 1000 });
    await settled(c.connect());
    expect(FakeSocket.all.length).toBe(2);
  });

  it('sends nothing but connect before connected, then resubscribes before flushing the outbox', async () => {
    FakeSocket.autoConnect = false;
    const c = client();
    c.subscribe('a');
    const pub = c.publish('a', 'x', 1);
    const req = c.request('m', 1, { timeout: 10_000 });
    req.catch(() => {}); // asserted below; its rejection may arrive while the clock is advanced
    void c.connect();
    await waitFor(() => last()?.sent.length === 1);
    await advance(500); // a while with no \`connected\`: still nothing else is sent
    expect(last().sent.map((f) => f.type)).toEqual(['connect']);
    last().push({ type: 'connected', id: last().sent[0].id, connectionId: 'x', user: 'u', pingInterval: 0, pongTimeout: 0, protocol: 1, node: 'n' });
    await waitFor(() => last().sent.length === 4);
    expect(last().sent.map((f) => f.type)).toEqual(['connect', 'subscribe', 'request', 'publish']);
    const p = last().frames('publish')[0];
    last().push({ type: 'published', id: p.id, msgId: p.msgId });
    last().push({ type: 'response', correlationId: last().frames('request')[0].correlationId, error: { code: 'x', message: 'y', temporary: false } });
    await expect(settled(pub)).resolves.toMatchObject({ msgId: p.msgId, duplicate: false });
    await expect(settled(req)).rejects.toMatchObject({ code: 'x', message: 'y' });
  });

  it('resends an unconfirmed publish on a timer on the same connection, with the same msgId', async () => {
    const c = client({ outbox: { resendInterval: 40 } });
    await settled(c.connect());
    const pub = c.publish('a', 'x', 1, { msgId: 'same' });
    await waitFor(() => last().frames('publish').length >= 2, 1000);
    const sends = last().frames('publish');
    expect(sends.map((f) => f.msgId)).toEqual(['same', 'same']);
    last().push({ type: 'published', id: sends[1].id, msgId: 'same' });
    last().push({ type: 'published', id: sends[0].id, msgId: 'same' }); // late reply to the first: ignored
    await expect(settled(pub)).resolves.toMatchObject({ msgId: 'same' });
    expect(c.outboxSize).toBe(0);
  });

  it('persists the outbox in a storage and resends it from a new client (page reload)', async () => {
    const data = new Map<string, string>();
    const persist = { getItem: (k: string) => data.get(k) ?? null, setItem: (k: string, v: string) => void data.set(k, v), removeItem: (k: string) => void data.delete(k) };
    const before = client({ outbox: { persist } });
    void before.publish('a', 'x', { n: 1 }, { msgId: 'kept' }).catch(() => {});
    before.close();
    expect(data.size).toBe(1);
    const after = client({ outbox: { persist } });
    expect(after.outboxSize).toBe(1);
    const confirmed = new Promise((r) => after.on('published', r));
    await settled(after.connect());
    await waitFor(() => last().frames('publish').length === 1);
    const f = last().frames('publish')[0];
    expect(f).toMatchObject({ msgId: 'kept', channel: 'a', payload: { n: 1 } });
    last().push({ type: 'published', id: f.id, msgId: 'kept' });
    expect(await settled(confirmed)).toMatchObject({ msgId: 'kept' });
    expect(data.size).toBe(0);
  });

  it('every on() returns a disposer and close() removes all listeners', async () => {
    const c = client();
    let n = 0;
    const off = c.on('state', () => void n++);
    await settled(c.connect());
    const seen = n;
    off();
    c.disconnect();
    expect(n).toBe(seen);
    const sub = c.subscribe('x');
    let m = 0;
    sub.on('message', () => void m++);
    c.close();
    expect(c.state.status).toBe('closed');
    expect(() => c.connect()).toThrow(/closed/);
    await expect(c.publish('a', 'b', 1)).rejects.toMatchObject({ code: 'client_closed' });
  });
});

describe('in-band token refresh (scripted socket)', () => {
  /** Connects with a token expiring `lifeMs` from now; `getToken` hands out t1, t2, … */
  async function connectExpiring(lifeMs: number, opts: Partial<HeraldClientOptions> = {}) {
    const expiresAt = Math.floor((Date.now() + lifeMs) / 1000);
    FakeSocket.autoConnect = { pingInterval: 0, pongTimeout: 0, expiresAt };
    let n = 0;
    const getToken = vi.fn(() => `t${++n}`);
    const c = client({ getToken, ...opts });
    const errors: HeraldError[] = [];
    c.on('error', (e) => void errors.push(e));
    await settled(c.connect());
    return { c, getToken, expiresAt, errors, ws: last() };
  }

  it('calls getToken refreshAhead ms before expiry and sends refresh on the same connection, then plans the next one', async () => {
    const { getToken, expiresAt, ws } = await connectExpiring(120_000, { refreshAhead: 30_000 });
    expect(getToken).toHaveBeenCalledTimes(1); // for connect
    await advance(expiresAt * 1000 - Date.now() - 30_000 - 1);
    expect(ws.frames('refresh')).toEqual([]);
    await advance(1);
    await waitFor(() => ws.frames('refresh').length === 1, 10);
    const [frame] = ws.frames('refresh');
    expect(frame).toEqual({ type: 'refresh', id: frame.id, token: 't2' });
    const next = expiresAt + 600;
    ws.push({ type: 'refreshed', id: frame.id, expiresAt: next });
    await advance(next * 1000 - Date.now() - 30_000 - 1);
    expect(ws.frames('refresh')).toHaveLength(1);
    await advance(1);
    await waitFor(() => ws.frames('refresh').length === 2, 10);
    expect(ws.frames('refresh')[1].token).toBe('t3');
    expect(FakeSocket.all).toHaveLength(1); // never reconnected
  });

  it('a short-lived token is refreshed at half its remaining life', async () => {
    const { ws } = await connectExpiring(10_000, { refreshAhead: 30_000 });
    const start = Date.now();
    await waitFor(() => ws.frames('refresh').length === 1, 10_000, 'the refresh frame');
    expect(Date.now() - start).toBeLessThanOrEqual(5000);
    expect(Date.now() - start).toBeGreaterThanOrEqual(4000);
  });

  it('a refused refresh is reported; the 4006 close at expiry then reconnects with a fresh token', async () => {
    const { getToken, errors, ws, c } = await connectExpiring(60_000, { refreshAhead: 10_000 });
    await waitFor(() => ws.frames('refresh').length === 1, 60_000, 'the refresh frame');
    const [frame] = ws.frames('refresh');
    ws.push({ type: 'error', id: frame.id, error: { code: 'unauthorized', message: 'bad token', temporary: false } });
    await waitFor(() => errors.length === 1, 10);
    expect(errors[0]!.code).toBe('unauthorized');
    ws.serverClose(4006, 'token expired');
    await waitFor(() => FakeSocket.all.length === 2 && c.state.status === 'connected', 1000, 'the reconnect');
    expect(getToken).toHaveBeenCalledTimes(3);
    expect(last().frames('connect')[0].token).toBe('t3');
  });

  it('a getToken that throws is reported as token_refresh_failed and no refresh is sent', async () => {
    let calls = 0;
    const getToken = () => {
      if (++calls > 1) throw new Error('auth server down');
      return 't1';
    };
    const { errors, ws } = await connectExpiring(20_000, { getToken, refreshAhead: 5000 });
    await waitFor(() => errors.length === 1, 20_000, 'the error');
    expect(errors[0]!.code).toBe('token_refresh_failed');
    expect(ws.frames('refresh')).toEqual([]);
  });

  it('a subscription the server ends (subscription_revoked) ends with that error and is not resubscribed', async () => {
    const c = client();
    const errors: string[] = [];
    c.on('error', (e) => void errors.push(e.code));
    await settled(c.connect());
    const sub = c.subscribe('team:a');
    const ws = last();
    await waitFor(() => ws.frames('subscribe').length === 1, 10);
    ws.push({ type: 'subscribed', id: ws.frames('subscribe')[0].id, channel: 'team:a', position: { offset: 0, epoch: 'e' } });
    const ended: string[] = [];
    sub.on('unsubscribed', (info) => void ended.push(info.channel));
    await waitFor(() => sub.state === 'subscribed', 10);
    ws.push({ type: 'unsubscribed', channel: 'team:a', error: { code: 'subscription_revoked', message: 'gone', temporary: false } });
    await waitFor(() => ended.length === 1, 10);
    expect(sub.state).toBe('unsubscribed');
    expect(errors).toEqual(['subscription_revoked']);
    expect(c.getSubscription('team:a')).toBeUndefined();
  });
});
