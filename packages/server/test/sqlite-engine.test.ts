import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, startTestServer, TestSocket } from './helpers/server.js';

describe('SQLite engine across a restart', () => {
  it('keeps history, epochs, inboxes and the idempotency window', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-sqlite-'));
    const engine = { type: 'sqlite', sqlite: { dataDir, synchronous: 'normal' } };
    let server = await startTestServer({ engine });
    const a = await api(server, 'POST', '/api/v1/publish', { channel: 'keep', eventType: 'x', payload: 1, msgId: 'keep-1' });
    await api(server, 'POST', '/api/v1/publish', { channel: 'keep', eventType: 'x', payload: 2 });
    await api(server, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'x', payload: 3, msgId: 'bcast-1' });
    await api(server, 'POST', '/api/v1/publish', { user: 'away', eventType: 'x', payload: 4, delivery: 'at-least-once' });
    await server.close();

    server = await startTestServer({ engine });
    try {
      const retry = await api(server, 'POST', '/api/v1/publish', { channel: 'keep', eventType: 'x', payload: 1, msgId: 'keep-1' });
      expect(retry.body).toMatchObject({ duplicate: true, position: a.body.position });
      expect((await api(server, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'x', payload: 3, msgId: 'bcast-1' })).body.duplicate).toBe(true);
      const s = await TestSocket.connect(server, { sub: 'away' });
      const rec = await s.subscribe('keep', { offset: 0, epoch: a.body.position.epoch });
      expect(rec.recovered).toBe(true);
      expect(rec.publications.map((p: any) => p.message.payload)).toEqual([1, 2]);
      // The inbox message was delivered right after `connected`.
      expect(s.messages().find((m) => m.inbox)?.message.payload).toBe(4);
      const next = await api(server, 'POST', '/api/v1/publish', { channel: 'keep', eventType: 'x', payload: 5 });
      expect(next.body.position).toEqual({ offset: 3, epoch: a.body.position.epoch });
    } finally {
      await server.close();
    }
  });
});
