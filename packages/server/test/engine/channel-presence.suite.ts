/**
 * The ChannelPresence contract (engine/channel-presence.ts), run against every implementation.
 * Each node is a handle; on distributed engines each node opens its own store (its own
 * connections), on memory and SQLite the nodes share one store, as nodes of one process do.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelPresence, ChannelPresenceStore, PresenceEvent } from '../../src/engine/channel-presence.js';
import { waitFor } from '../helpers/wait.js';

export interface ChannelPresenceFixture {
  store: ChannelPresenceStore;
  cleanup: () => Promise<void>;
}

export interface ChannelPresenceSuiteOptions {
  /** Each node gets its own store (sharing the backend) rather than a handle on one. */
  distributed: boolean;
  heartbeatMs: number;
  nodeTtlMs: number;
}

export function runChannelPresenceSuite(name: string, create: () => Promise<ChannelPresenceFixture>, opts: ChannelPresenceSuiteOptions): void {
  describe(`ChannelPresence conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    let shared: ChannelPresenceStore | undefined;
    /** What every handle's onChange heard, as `node type:client`. */
    let changes: string[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
      shared = undefined;
      changes = [];
    });

    async function node(n: string): Promise<ChannelPresence> {
      if (opts.distributed || !shared) {
        const f = await create();
        cleanups.push(f.cleanup);
        shared = f.store;
      }
      const h = await shared.open(n, (e) => changes.push(`${n} ${e.type}:${e.member.client}`));
      cleanups.push(() => h.close());
      return h;
    }

    const tag = () => randomUUID().slice(0, 8);
    const channel = () => `ns:room-${tag()}`;

    /** Records the channel's events as `type:client`. */
    async function recorder(h: ChannelPresence, ch: string): Promise<{ seen: string[]; events: PresenceEvent[] }> {
      const events: PresenceEvent[] = [];
      const seen: string[] = [];
      const stop = await h.watch(ch, (e) => {
        events.push(e);
        seen.push(`${e.type}:${e.member.client}`);
      });
      cleanups.push(stop);
      return { seen, events };
    }

    async function all(h: ChannelPresence, ch: string, limit: number): Promise<string[]> {
      const out: string[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 1000; pages++) {
        const page = await h.list(ch, { limit, ...(cursor !== undefined ? { cursor } : {}) });
        expect(page.members.length).toBeLessThanOrEqual(limit);
        out.push(...page.members.map((m) => m.client));
        if (page.next === undefined) return out;
        cursor = page.next;
      }
      throw new Error('pagination did not end');
    }

    it('join, leave, list and stats; a second join or leave of one client is not an event', async () => {
      const a = await node(`a-${tag()}`);
      const ch = channel();
      const rec = await recorder(a, ch);
      expect(await a.join(ch, { client: 'c1', user: 'u1', info: { name: 'Ann' } })).toBe(true);
      expect(await a.join(ch, { client: 'c1', user: 'u1', info: { name: 'Ann' } })).toBe(false);
      expect(await a.join(ch, { client: 'c2', user: 'u2' })).toBe(true);
      expect(await a.stats(ch)).toEqual({ connections: 2, users: 2 });
      const page = await a.list(ch, { limit: 10 });
      expect(page).toEqual({ members: [{ client: 'c1', user: 'u1', info: { name: 'Ann' }, node: a.node }, { client: 'c2', user: 'u2', node: a.node }] });
      expect(await a.leave(ch, 'c1')).toBe(true);
      expect(await a.leave(ch, 'c1')).toBe(false);
      expect(await a.stats(ch)).toEqual({ connections: 1, users: 1 });
      await waitFor(() => rec.seen.length === 3, 3000, 'three events');
      expect(rec.seen).toEqual(['join:c1', 'join:c2', 'leave:c1']);
      expect(rec.events[0]!.member).toEqual({ client: 'c1', user: 'u1', info: { name: 'Ann' }, node: a.node });
      expect(rec.events[2]!.member).toMatchObject({ client: 'c1', user: 'u1' });
      expect(changes).toEqual([`${a.node} join:c1`, `${a.node} join:c2`, `${a.node} leave:c1`]);
      expect(await a.stats(`ns:never-${tag()}`)).toEqual({ connections: 0, users: 0 });
      expect(await a.list(`ns:never-${tag()}`, { limit: 5 })).toEqual({ members: [] });
    });

    it('users are counted once however many connections they have', async () => {
      const a = await node(`a-${tag()}`);
      const b = await node(`b-${tag()}`);
      const ch = channel();
      await a.join(ch, { client: 'x1', user: 'same' });
      await b.join(ch, { client: 'x2', user: 'same' });
      await a.join(ch, { client: 'x3', user: 'other' });
      expect(await b.stats(ch)).toEqual({ connections: 3, users: 2 });
      await a.leave(ch, 'x1');
      expect(await a.stats(ch)).toEqual({ connections: 2, users: 2 });
      await b.leave(ch, 'x2');
      expect(await a.stats(ch)).toEqual({ connections: 1, users: 1 });
    });

    it('pagination returns every member exactly once, in client order, within the limit', async () => {
      const a = await node(`a-${tag()}`);
      const b = await node(`b-${tag()}`);
      const ch = channel();
      const ids = Array.from({ length: 23 }, (_, i) => `m${String(i).padStart(2, '0')}`);
      for (const [i, id] of ids.entries()) await (i % 2 ? a : b).join(ch, { client: id, user: `u${i % 5}` });
      for (const limit of [1, 5, 7, 23, 100]) expect(await all(a, ch, limit)).toEqual(ids);
      // A member leaving mid-walk does not make another one be skipped or repeated.
      const first = await a.list(ch, { limit: 10 });
      await a.leave(ch, 'm01');
      const tail: string[] = [];
      let cursor = first.next;
      while (cursor !== undefined) {
        const p = await b.list(ch, { cursor, limit: 10 });
        tail.push(...p.members.map((m) => m.client));
        cursor = p.next;
      }
      expect([...first.members.map((m) => m.client), ...tail]).toEqual(ids);
      const page = await a.list(ch, { limit: 1_000_000 });
      expect(page.members.length).toBe(22);
      expect(page.next).toBeUndefined();
    });

    it('events: every watcher on every node sees the same order, each leave after its join', async () => {
      const a = await node(`a-${tag()}`);
      const b = await node(`b-${tag()}`);
      const ch = channel();
      const ra = await recorder(a, ch);
      const rb = await recorder(b, ch);
      const ops: Promise<boolean>[] = [];
      for (let i = 0; i < 20; i++) {
        const h = i % 2 ? a : b;
        ops.push(h.join(ch, { client: `e${i}`, user: 'u' }));
        if (i % 3 === 0) ops.push(h.leave(ch, `e${i}`));
      }
      await Promise.all(ops);
      const joined = 20;
      const left = (await Promise.all(ops)).filter((x) => x).length - joined;
      // A node whose liveness lapsed would leave and rejoin its members: extra events, shown here.
      await waitFor(() => ra.seen.length === joined + left && rb.seen.length === joined + left, 5000, 'every event on both watchers').catch((err: Error) => {
        throw new Error(`${err.message}: expected ${joined + left}, a saw ${JSON.stringify(ra.seen)}, b saw ${JSON.stringify(rb.seen)}`);
      });
      expect(rb.seen).toEqual(ra.seen);
      for (const e of ra.seen.filter((s) => s.startsWith('leave:'))) expect(ra.seen.indexOf(`join:${e.slice(6)}`)).toBeLessThan(ra.seen.indexOf(e));
    });

    it('a node that closes leaves its members; one that stops refreshing is swept once, however many peers race', async () => {
      const dead = await node(`dead-${tag()}`);
      const closing = await node(`closing-${tag()}`);
      const peers = [await node(`p1-${tag()}`), await node(`p2-${tag()}`), await node(`p3-${tag()}`)];
      const ch = channel();
      const ch2 = channel();
      const rec = await recorder(peers[0]!, ch);
      const rec2 = await recorder(peers[1]!, ch);
      const other = await recorder(peers[2]!, ch2);
      for (let i = 0; i < 6; i++) await dead.join(ch, { client: `d${i}`, user: `u${i % 2}` });
      await dead.join(ch2, { client: 'd-other', user: 'u0' });
      await closing.join(ch, { client: 'k1', user: 'k' });
      await peers[1]!.join(ch, { client: 'p', user: 'p' });
      await waitFor(() => rec.seen.length === 8, 3000, 'joins');
      await closing.close();
      await waitFor(() => rec.seen.includes('leave:k1'), 3000, 'leave of a closed node');
      expect(await peers[0]!.stats(ch)).toEqual({ connections: 7, users: 3 });

      await dead.crash();
      await waitFor(async () => (await peers[0]!.stats(ch)).connections === 1, opts.nodeTtlMs * 4 + 5000, 'the dead node swept');
      // Every peer sweeps on its own timer too; racing them all again here claims nothing more.
      const claimed = await Promise.all(peers.map((p) => p.sweep()));
      expect(claimed).toEqual([0, 0, 0]);
      await waitFor(() => rec2.seen.filter((s) => s.startsWith('leave:d')).length === 6 && other.seen.length === 2, 3000, 'every leave');
      const leaves = rec.seen.filter((s) => s.startsWith('leave:d')).sort();
      expect(leaves).toEqual(['leave:d0', 'leave:d1', 'leave:d2', 'leave:d3', 'leave:d4', 'leave:d5']);
      expect(rec2.seen).toEqual(rec.seen);
      expect(other.seen).toEqual(['join:d-other', 'leave:d-other']);
      expect(await peers[0]!.stats(ch)).toEqual({ connections: 1, users: 1 });
      expect(await peers[0]!.list(ch, { limit: 10 })).toEqual({ members: [{ client: 'p', user: 'p', node: peers[1]!.node }] });
      // The live peer's member was never swept.
      await new Promise((r) => setTimeout(r, opts.heartbeatMs * 3));
      expect(rec.seen.filter((s) => s === 'leave:p')).toEqual([]);
    });

    it('explicit sweeps racing on several nodes claim each leave exactly once', async () => {
      const dead = await node(`dead-${tag()}`);
      const peers = [await node(`r1-${tag()}`), await node(`r2-${tag()}`), await node(`r3-${tag()}`)];
      const ch = channel();
      const rec = await recorder(peers[0]!, ch);
      for (let i = 0; i < 30; i++) await dead.join(ch, { client: `z${String(i).padStart(2, '0')}`, user: 'u' });
      await waitFor(() => rec.seen.length === 30, 3000, 'joins');
      await dead.crash();
      let claimed = 0;
      await waitFor(
        async () => {
          claimed += (await Promise.all(peers.map((p) => p.sweep()))).reduce((x, y) => x + y, 0);
          return (await peers[1]!.stats(ch)).connections === 0;
        },
        opts.nodeTtlMs * 4 + 5000,
        'the dead node swept',
      );
      await waitFor(() => rec.seen.length === 60, 3000, 'every leave');
      expect(rec.seen.filter((s) => s.startsWith('leave:')).length).toBe(30);
      expect(new Set(rec.seen).size).toBe(60);
      // Each leave was heard by exactly one handle's onChange: the claimant's.
      const heard = changes.filter((c) => c.includes(' leave:z'));
      expect(heard.length).toBe(30);
      expect(new Set(heard.map((c) => c.split(' ')[1])).size).toBe(30);
      expect(heard.every((c) => !c.startsWith(dead.node))).toBe(true);
      // The timers' sweeps may have claimed some; explicit and timed claims together are exact.
      expect(claimed).toBeLessThanOrEqual(30);
    });
  });
}
