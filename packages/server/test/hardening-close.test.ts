/**
 * Issue 11 (low): a disconnect reason over 123 UTF-8 bytes made `ws.close` throw, which left the
 * connection open but half-removed (a zombie). Close reasons are now cut on a character boundary
 * in the transport, and a close `ws` refuses still ends the connection.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { HeraldServer } from '../src/server.js';
import { closeReason } from '../src/transport/ws-transport.js';
import { api, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let server: HeraldServer;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
});

/** Waits until the server has let go of the connection (its close handler ran). */
async function gone(connectionId: string): Promise<void> {
  await waitFor(() => !server.node.hub.sessions.has(connectionId), 3000, `connection ${connectionId} to be released`);
}

describe('close reasons', () => {
  it('a 120-character reason of 2-byte characters closes the connection, with the reason cut to 123 bytes', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server, { sub: 'zed' });
    const reason = 'é'.repeat(120); // 240 UTF-8 bytes, within the API's 120-character limit
    const res = await api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/disconnect`, { reason });
    expect(res.status).toBe(200);
    const closed = await s.closed;
    expect(closed.code).toBe(4502);
    expect(closed.reason).toBe('é'.repeat(61)); // 122 bytes: a 62nd would make 124
    await gone(s.info.connectionId);
  });

  it('cuts on a character boundary (4-byte characters)', () => {
    expect(Buffer.byteLength(closeReason('😀'.repeat(40)))).toBe(120);
    expect(closeReason('short')).toBe('short');
    expect(closeReason('a'.repeat(200))).toBe('a'.repeat(123));
  });

  it('a close that ws refuses still ends the connection', async () => {
    server = await startTestServer();
    const s = await TestSocket.connect(server, { sub: 'zed' });
    vi.spyOn(WebSocket.prototype, 'close').mockImplementationOnce(() => {
      throw new Error('refused');
    });
    expect((await api(server, 'POST', `/api/v1/connections/${s.info.connectionId}/disconnect`, {})).status).toBe(200);
    expect((await s.closed).code).toBe(1006);
    await gone(s.info.connectionId);
  });
});
