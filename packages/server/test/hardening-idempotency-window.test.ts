/**
 * Issue 11, M8 (last clause): the in-process idempotency window is bounded by count as well as by
 * time — `publish.idempotencyMaxKeys`, the oldest forgotten first — in every engine that keeps it in
 * memory (memory, SQLite, including the copy rebuilt at start).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteDb } from '../src/engine/sqlite/db.js';
import { SqliteIdempotency } from '../src/engine/sqlite/idempotency.js';
import { IdempotencyWindow } from '../src/engine/memory/idempotency.js';
import { api, startTestServer } from './helpers/server.js';

describe('idempotency window bounds', () => {
  it('keeps at most maxKeys, forgetting the oldest first', () => {
    const w = new IdempotencyWindow(60_000, 3);
    for (const id of ['a', 'b', 'c', 'd', 'e']) w.set(id, { timestamp: 1 });
    expect(w.size).toBe(3);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => w.get(id) !== undefined)).toEqual([false, false, true, true, true]);
    // Taking a key again makes it the newest.
    w.set('c', { timestamp: 2 });
    w.set('f', { timestamp: 3 });
    expect(['c', 'd', 'e', 'f'].map((id) => w.get(id) !== undefined)).toEqual([true, false, true, true]);
  });

  it('forgets keys older than the window, and is off with a window or a bound of 0', () => {
    const w = new IdempotencyWindow(1000, 10);
    const now = Date.now();
    w.set('old', { timestamp: 1 }, now - 1500);
    w.set('new', { timestamp: 2, position: { offset: 3, epoch: 'e' } }, now);
    expect(w.get('old', now)).toBeUndefined();
    expect(w.get('new', now)).toEqual({ timestamp: 2, position: { offset: 3, epoch: 'e' } });
    for (const off of [new IdempotencyWindow(0, 10), new IdempotencyWindow(1000, 0)]) {
      off.set('x', { timestamp: 1 });
      expect(off.enabled).toBe(false);
      expect(off.get('x')).toBeUndefined();
    }
  });

  it('SQLite rebuilds at most maxKeys at start, the newest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-idem-'));
    try {
      let db = new SqliteDb(dir, 'off');
      let w = new SqliteIdempotency(db, 60_000, 1000);
      const base = Date.now() - 10_000;
      await db.write(() => ['a', 'b', 'c', 'd'].forEach((id, i) => w.record(id, { timestamp: i }, base + i)));
      w.close();
      db.close();
      db = new SqliteDb(dir, 'off');
      w = new SqliteIdempotency(db, 60_000, 2);
      expect(['a', 'b', 'c', 'd'].map((id) => w.get(id)?.timestamp)).toEqual([undefined, undefined, 2, 3]);
      w.close();
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const engine of ['memory', 'sqlite'] as const) {
    it(`${engine}: publish.idempotencyMaxKeys bounds the window — past it the oldest msgId is new again`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-idem-'));
      const server = await startTestServer({
        publish: { idempotencyMaxKeys: 2 },
        engine: engine === 'memory' ? { type: 'memory' } : { type: 'sqlite', sqlite: { dataDir: dir, synchronous: 'off' } },
      });
      try {
        const publish = (msgId: string) => api(server, 'POST', '/api/v1/publish', { channel: 'bound:test', eventType: 'x', payload: msgId, msgId });
        for (const id of ['k1', 'k2', 'k3']) expect((await publish(id)).body.duplicate).toBeUndefined();
        expect((await publish('k3')).body.duplicate).toBe(true);
        expect((await publish('k2')).body.duplicate).toBe(true);
        // k1 was pushed out by k3.
        expect((await publish('k1')).body.duplicate).toBeUndefined();
      } finally {
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
