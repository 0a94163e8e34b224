/**
 * What a client that stops reading sees when Herald closes it as a slow consumer (issue 16):
 * frames the session had not handed to the socket are dropped, the 4003 close frame follows the
 * bytes the socket already holds, and the connection is kept while they wait — so a client that
 * reads again in time gets them and then 4003, not a bare 1006 (docs/protocol.md, close codes).
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import type { Session } from '../src/session.js';
import { CLOSE_GRACE_MS, CLOSE_STALL_MS } from '../src/transport/ws-transport.js';
import { startTestServer, TestSocket } from './helpers/server.js';

let server: HeraldServer;
afterEach(async () => server?.close());

const BUDGET = 64 * 1024;

function rawSocket(s: TestSocket): Socket {
  return (s.ws as unknown as { _socket: Socket })._socket;
}

async function until(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('slow-consumer close seen by a stalled client', () => {
  it('a client that resumes reading after the close grace, within the stall limit, still gets 4003 behind the backlog', async () => {
    server = await startTestServer({ rateLimits: { enabled: false }, limits: { maxQueueBytes: BUDGET } });
    const s = await TestSocket.connect(server, { sub: 'stalled' });
    await s.subscribe('feed');
    const session: Session = server.node.hub.sessions.get(s.info.connectionId)!;
    rawSocket(s).pause();
    const payload = 'x'.repeat(8000);
    let sent = 0;
    // The kernel buffers of a loopback connection absorb a few MB before the server's own fill.
    while (session.open && sent < 5000) {
      await server.publish({ channel: 'feed', eventType: 'e', payload });
      sent++;
      // Let the socket's writes complete, so the kernel buffers fill before the server's do.
      await new Promise((r) => setImmediate(r));
    }
    expect(session.open).toBe(false);
    const closedAt = Date.now();
    // The close frame waits behind bytes the socket still holds: the case where it used to be lost.
    expect(session.backlogBytes).toBeGreaterThan(0);
    // The behaviour under test is a time bound, so the test waits on the clock: past the moment
    // the socket used to be dropped (the close grace), well within the stall limit.
    expect(CLOSE_STALL_MS).toBeGreaterThan(2 * CLOSE_GRACE_MS);
    await until(() => Date.now() >= closedAt + CLOSE_GRACE_MS + 1000);
    expect(s.ws.readyState).not.toBe(3);
    rawSocket(s).resume();
    const { code } = await s.closed;
    expect(code).toBe(4003);
    expect(s.frames.filter((f) => f.type === 'message').length).toBeGreaterThan(0);
  });
});
