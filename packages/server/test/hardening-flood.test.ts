/**
 * Issue 11, R2 and the invalid-frame count: one connection's flood must not starve the others,
 * a condemned connection's input is dropped unhandled, and valid frames in between do not earn an
 * abuser more invalid ones. Floods are written as raw WebSocket frames in one socket write, so
 * the server receives them together, as an attacker would send them.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FRAMES_PER_TURN } from '../src/read-pacer.js';
import type { HeraldServer } from '../src/server.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

// The rate limits would close these flooders long before the floods end (4506); they are off here
// so the pacing and the handling of condemned input are shown to hold on their own.
const NO_RATE_LIMITS = { enabled: false };

let server: HeraldServer;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
});

/** One masked client text frame (mask key 0, so the payload bytes stay as they are). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const n = payload.length;
  const header = n < 126 ? Buffer.from([0x81, 0x80 | n, 0, 0, 0, 0]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff, 0, 0, 0, 0]);
  return Buffer.concat([header, payload]);
}

function rawSocket(s: TestSocket): Socket {
  return (s.ws as unknown as { _socket: Socket })._socket;
}

async function counter(c: { get(): Promise<{ values: Array<{ value: number; labels: object }> }> }): Promise<number> {
  return (await c.get()).values.reduce((sum, v) => sum + v.value, 0);
}

describe('R2: a condemned connection', () => {
  it('has the rest of its flood dropped, unhandled, once it is closed for invalid frames', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxInvalidFrames: 10 } });
    const attacker = await TestSocket.connect(server, { sub: 'attacker' });
    const parse = vi.spyOn(server.node.schemas, 'parseClientFrame');
    const frames = [
      ...Array.from({ length: 5 }, () => clientFrame('{"type":"ping"}')),
      ...Array.from({ length: 1000 }, () => clientFrame('nope')),
      ...Array.from({ length: 1000 }, () => clientFrame('{"type":"ping"}')),
    ];
    rawSocket(attacker).write(Buffer.concat(frames));
    expect((await attacker.closed).code).toBe(4505);
    // The five pings, then invalid frames up to the one that condemned it (maxInvalidFrames + 1); nothing after.
    expect(parse).toHaveBeenCalledTimes(5 + 11);
    expect(await counter(server.node.metrics.invalidFrames)).toBe(11);
  });
});

describe('R2: one connection\'s flood', () => {
  it('does not starve a bystander nor a new handshake: both are served long before the attacker\'s pings are', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS });
    const attacker = await TestSocket.connect(server, { sub: 'attacker' });
    const bystander = await TestSocket.connect(server, { sub: 'bystander' });
    const attackerId = attacker.info.connectionId as string;
    const bystanderId = bystander.info.connectionId as string;
    const PINGS = 20_000;
    let attackerHandled = 0;
    let attackerHandledAtBystander = -1;
    let attackerHandledAtHandshake = -1;
    let newcomer: Promise<TestSocket> | undefined;
    const node = server.node;
    const attach = node.attach.bind(node);
    vi.spyOn(node, 'attach').mockImplementation((...args) => {
      if (attackerHandledAtHandshake < 0) attackerHandledAtHandshake = attackerHandled;
      return attach(...args);
    });
    const onText = node.onText.bind(node);
    vi.spyOn(node, 'onText').mockImplementation((session, text) => {
      if (session.id === attackerId) {
        // The bystander pings, and a new client starts its handshake, the moment the flood starts being handled.
        if (attackerHandled++ === 0) {
          bystander.ws.send('{"type":"ping"}');
          newcomer = TestSocket.open(server.wsUrl);
        }
      } else if (session.id === bystanderId && attackerHandledAtBystander < 0) {
        attackerHandledAtBystander = attackerHandled;
      }
      onText(session, text);
    });
    rawSocket(attacker).write(Buffer.concat(Array.from({ length: PINGS }, () => clientFrame('{"type":"ping"}'))));
    await bystander.next((f) => f.type === 'pong', 10_000);
    // Paced at FRAMES_PER_TURN frames per turn, the bystander is served within a few turns; without
    // pacing it waits for at least a whole socket read of the attacker's frames (thousands).
    expect(attackerHandledAtBystander).toBeGreaterThan(0);
    expect(attackerHandledAtBystander).toBeLessThan(FRAMES_PER_TURN * 8);
    // A handshake takes several turns (TCP accept, the HTTP upgrade, the 101): still a small
    // fraction of the flood. Without pacing the whole flood went first.
    (await newcomer!).close();
    expect(attackerHandledAtHandshake).toBeGreaterThan(0);
    expect(attackerHandledAtHandshake).toBeLessThan(PINGS / 4);
    // Nothing is lost: every one of the attacker's pings is answered, in the end.
    await waitFor(() => attacker.frames.filter((f) => f.type === 'pong').length >= PINGS, 20_000, `${PINGS} pongs`, 20);
    expect(attacker.frames.filter((f) => f.type === 'pong').length).toBe(PINGS);
    expect(attackerHandled).toBe(PINGS);
  });
});

describe('the invalid-frame count', () => {
  it('is not reset by valid frames: 9 invalid + 1 valid, repeated, is closed with 4505', async () => {
    server = await startTestServer({ rateLimits: NO_RATE_LIMITS, limits: { maxInvalidFrames: 10 } });
    const s = await TestSocket.connect(server);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 9; i++) s.ws.send('nope');
      s.send({ type: 'ping' });
    }
    expect((await s.closed).code).toBe(4505);
    // Closed by the 11th invalid frame: 11 errors answered, then nothing.
    expect(s.frames.filter((f) => f.type === 'error')).toHaveLength(11);
  });
});
