/**
 * The PresenceStore contract, run against every implementation. Each call of `create` is one
 * node; distributed implementations' instances see each other's connections.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionInfo, PresenceStore } from '../../src/engine/presence.js';
import { SKIP_ONE_NODE } from './services.js';
import { pause, waitFor } from '../helpers/wait.js';

export interface PresenceFixture {
  presence: PresenceStore;
  cleanup: () => Promise<void>;
  /** Simulates SIGKILL: the store stops refreshing and drops its connection without removing anything. */
  crash?: () => Promise<void>;
}

export interface PresenceSuiteOptions {
  distributed: boolean;
  /** The entry TTL the fixture was created with, when entries expire (distributed stores). */
  ttlMs?: number;
}


export function runPresenceSuite(name: string, create: () => Promise<PresenceFixture>, opts: PresenceSuiteOptions): void {
  describe(`PresenceStore conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function node(): Promise<PresenceFixture> {
      const f = await create();
      cleanups.push(f.cleanup);
      return f;
    }

    let seq = 0;
    function info(user: string, nodeName: string, extra: Partial<ConnectionInfo> = {}): ConnectionInfo {
      return {
        connectionId: `${nodeName}-${++seq}-${randomUUID().slice(0, 6)}`,
        user,
        node: nodeName,
        connectedAt: Date.now(),
        remoteAddress: '127.0.0.1',
        tags: { plan: 'pro', beta: true, level: 3 },
        channels: [],
        ...extra,
      };
    }

    const byId = (a: ConnectionInfo, b: ConnectionInfo) => a.connectionId.localeCompare(b.connectionId);
    const user = () => `user:${randomUUID()}`;

    it('add, update, list and remove a user\'s connections', async () => {
      const { presence } = await node();
      const u = user();
      const other = user();
      const c1 = info(u, 'n1');
      const c2 = info(u, 'n1', { channels: ['a', 'b.c'] });
      await presence.add(c1);
      await presence.add(c2);
      await presence.add(info(other, 'n1'));
      expect((await presence.userConnections(u)).sort(byId)).toEqual([c1, c2].sort(byId));
      const c1b = { ...c1, channels: ['news'] };
      await presence.add(c1b);
      expect((await presence.userConnections(u)).sort(byId)).toEqual([c1b, c2].sort(byId));
      await presence.remove(c1.connectionId, u);
      expect(await presence.userConnections(u)).toEqual([c2]);
      await presence.remove(c2.connectionId, u);
      await presence.remove('no-such-connection', u);
      expect(await presence.userConnections(u)).toEqual([]);
      expect(await presence.userConnections(other)).toHaveLength(1);
      expect(await presence.userConnections(user())).toEqual([]);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'every node sees every node\'s connections', async () => {
      const a = await node();
      const b = await node();
      const u = user();
      const ca = info(u, 'node-a');
      const cb = info(u, 'node-b');
      await a.presence.add(ca);
      await b.presence.add(cb);
      expect((await a.presence.userConnections(u)).sort(byId)).toEqual([ca, cb].sort(byId));
      expect((await b.presence.userConnections(u)).sort(byId)).toEqual([ca, cb].sort(byId));
      await b.presence.remove(cb.connectionId, u);
      expect(await a.presence.userConnections(u)).toEqual([ca]);
    });

    it.skipIf(!opts.distributed || !opts.ttlMs)(SKIP_ONE_NODE + 'entries of a live node outlast the TTL; a crashed node\'s entries expire', async () => {
      const ttl = opts.ttlMs!;
      const a = await node();
      const b = await node();
      expect(a.crash).toBeTypeOf('function');
      const u = user();
      const ca = info(u, 'node-a');
      const cb = info(u, 'node-b');
      await a.presence.add(ca);
      await b.presence.add(cb);
      // Outlasting the TTL is the point: live nodes must keep refreshing across it.
      await pause(ttl * 2);
      expect((await b.presence.userConnections(u)).sort(byId)).toEqual([ca, cb].sort(byId));
      await a.crash!();
      await waitFor(async () => (await b.presence.userConnections(u)).length <= 1, ttl * 3 + 1000, "the crashed node's entry to expire", 50);
      expect(await b.presence.userConnections(u)).toEqual([cb]);
    });
  });
}
