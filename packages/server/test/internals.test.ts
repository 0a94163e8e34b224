/**
 * The start-up self-test of the private fields the write fast paths read (src/transport/internals.ts):
 * it passes on the Node and ws in use; a WebSocket without `_socket`, or a socket handle without
 * `fd`, switches the path off with one warning; and frames then still arrive, through `ws.send`
 * and `socket.write`. The forced mismatches stay in this file's process.
 */
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { directSendAvailable, sendOne } from '../src/transport/direct-send.js';
import { applyInternals, checkInternals, internalsAllowed, loopbackPair, rawSocketOf, type ProbePair } from '../src/transport/internals.js';
import { encodePongFrame, encodeTextFrame } from '../src/transport/ws-frame.js';
import { WsTransport } from '../src/transport/ws-transport.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';
import type { HeraldServer } from '../src/server.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A WebSocket that reads like `ws`'s but has no `_socket`: every method still works on the real one. */
function withoutSocketField(ws: WebSocket): WebSocket {
  return Object.create(ws, { _socket: { value: undefined } }) as WebSocket;
}

/** Hides `fd` on the socket's handle while every call still reaches the real handle. */
function hideDescriptor(socket: Socket): void {
  const s = socket as unknown as { _handle: object };
  const real = s._handle as Record<string | symbol, unknown>;
  s._handle = new Proxy(real, {
    get: (target, key) => {
      if (key === 'fd') return undefined;
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    set: (target, key, value) => Reflect.set(target, key, value), // native accessors need the real object
  });
}

describe('the start-up self-test', () => {
  it('passes on the Node and ws in use', async () => {
    const report = await checkInternals(sendOne);
    expect(report.problems).toEqual([]);
    expect(report.rawSocket).toBe(true);
    expect(report.descriptor).toBe(directSendAvailable);
  });

  it('refuses a WebSocket whose _socket is missing', async () => {
    const report = await checkInternals(sendOne, async () => {
      const pair = await loopbackPair();
      return { ...pair, server: withoutSocketField(pair.server) } satisfies ProbePair;
    });
    expect(report.rawSocket).toBe(false);
    expect(report.descriptor).toBe(false);
    expect(report.problems).toEqual([expect.stringContaining('WebSocket#_socket')]);
  });

  it('refuses a socket handle without fd (with the native addon)', async (ctx) => {
    if (!sendOne) ctx.skip(); // without the addon nothing reads the descriptor
    const report = await checkInternals(sendOne, async () => {
      const pair = await loopbackPair();
      hideDescriptor(pair.request.socket);
      return pair;
    });
    expect(report.rawSocket).toBe(true);
    expect(report.descriptor).toBe(false);
    expect(report.problems).toEqual([expect.stringContaining('_handle.fd')]);
  });

  it('refuses a descriptor the native send cannot write to', async () => {
    const report = await checkInternals(() => -9 /* EBADF */);
    expect(report.descriptor).toBe(false);
    expect(report.problems).toEqual([expect.stringContaining('native send')]);
  });
});

describe('the public write path', () => {
  async function wsPair(): Promise<{ server: WebSocket; client: WebSocket; received: string[]; pongs: string[]; arrived: (n: number) => Promise<void> }> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    const received: string[] = [];
    const pongs: string[] = [];
    const waiters: (() => void)[] = [];
    const wake = () => waiters.splice(0).forEach((w) => w());
    client.on('message', (d: Buffer) => (received.push(d.toString()), wake()));
    client.on('pong', (d: Buffer) => (pongs.push(d.toString()), wake()));
    const [[server]] = await Promise.all([accepted, once(client, 'open')]);
    cleanup.push(() => new Promise<void>((r) => (client.terminate(), wss.close(() => r()))));
    const arrived = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (received.length + pongs.length >= n ? resolve() : waiters.push(check));
        check();
      });
    return { server, client, received, pongs, arrived };
  }

  it('a WsTransport over a WebSocket without _socket sends every frame, in order, through ws', async () => {
    const { server, received, pongs, arrived } = await wsPair();
    const ws = withoutSocketField(server);
    expect(rawSocketOf(ws)).toBeUndefined();
    const transport = new WsTransport(ws, '127.0.0.1');
    expect(transport.directFd()).toBe(-1);
    const big = 'x'.repeat(70_000); // a 64-bit length header
    const medium = 'm'.repeat(300); // a 16-bit length header
    transport.write([encodeTextFrame('one')]);
    transport.write([encodeTextFrame('two'), encodeTextFrame(medium)]);
    transport.write([Buffer.concat([encodeTextFrame(big), encodePongFrame(Buffer.from('p')), encodeTextFrame('last')])]);
    expect(transport.bufferedAmount).toBeGreaterThanOrEqual(0);
    await arrived(6);
    expect(received).toEqual(['one', 'two', medium, big, 'last']);
    expect(pongs).toEqual(['p']);
  });
});

describe('a server after the self-test refused both fields', () => {
  let server: HeraldServer;
  afterEach(async () => server?.close());

  it('logs each problem once and delivers through the public path', async () => {
    const warnings: unknown[] = [];
    const log = { warn: (obj: object) => warnings.push(obj) };
    const refused = { rawSocket: false, descriptor: false, problems: ['ws WebSocket#_socket is not the connection\'s net.Socket'] };
    applyInternals(refused, log);
    applyInternals(refused, log);
    expect(warnings).toHaveLength(1);
    expect(internalsAllowed()).toEqual({ rawSocket: false, descriptor: false });

    server = await startTestServer(); // its own self-test passes, and cannot turn the paths back on
    expect(internalsAllowed()).toEqual({ rawSocket: false, descriptor: false });
    const sockets = await Promise.all([1, 2, 3].map(() => TestSocket.connect(server)));
    for (const s of sockets) {
      cleanup.push(() => s.close());
      await s.subscribe('news');
    }
    for (let i = 0; i < 20; i++) expect((await api(server, 'POST', '/api/v1/publish', { channel: 'news', eventType: 'n', payload: { i } })).status).toBe(200);
    for (const s of sockets) {
      for (let i = 0; i < 20; i++) expect((await s.next((f) => f.type === 'message')).message).toMatchObject({ payload: { i } });
    }
  });
});
