/**
 * The InboxStore contract, run against every implementation. Each call of `create` is one node;
 * distributed implementations' instances share the inboxes.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Envelope } from '@herald/protocol';
import type { InboxLimits, InboxStore } from '../../src/engine/inbox.js';
import { SKIP_ONE_NODE } from './services.js';
import { pause, waitForValue } from '../helpers/wait.js';

export interface InboxFixture {
  inbox: InboxStore;
  cleanup: () => Promise<void>;
}

export interface InboxSuiteOptions {
  distributed: boolean;
}

const LIMITS: InboxLimits = { maxMessages: 100, maxAgeMs: 60_000 };

function envelope(payload: unknown, msgId: string = randomUUID()): Envelope {
  return { msgId, timestamp: Date.now(), source: 'suite', eventType: 'inbox.event', version: '1.0', payload };
}

export function runInboxSuite(name: string, create: () => Promise<InboxFixture>, opts: InboxSuiteOptions): void {
  describe(`InboxStore conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function node(): Promise<InboxStore> {
      const f = await create();
      cleanups.push(f.cleanup);
      return f.inbox;
    }

    const user = () => `user:${randomUUID()}`;

    it('appends with per-user increasing seq and lists oldest first after a seq', async () => {
      const inbox = await node();
      const u = user();
      const envs = [envelope({ n: 1, text: 'ünï' }), envelope({ n: 2 }), envelope({ n: 3 })];
      const before = Date.now();
      const seqs: number[] = [];
      for (const [i, env] of envs.entries()) {
        const r = await inbox.append(u, { envelope: env, ...(i === 1 ? { channel: 'orders:42' } : {}) }, LIMITS);
        expect(r.duplicate).toBe(false);
        expect(r.dropped).toBe(0);
        seqs.push(r.seq);
      }
      expect(seqs[1]).toBeGreaterThan(seqs[0]!);
      expect(seqs[2]).toBeGreaterThan(seqs[1]!);
      const other = await inbox.append(user(), { envelope: envelope('other') }, LIMITS);
      expect(other.duplicate).toBe(false);
      const all = await inbox.list(u, 0, 100, LIMITS);
      expect(all.dropped).toBe(0);
      expect(all.entries.map((e) => e.seq)).toEqual(seqs);
      expect(all.entries.map((e) => e.envelope)).toEqual(envs);
      expect(all.entries[1]!.channel).toBe('orders:42');
      expect(all.entries[0]!.channel).toBeUndefined();
      for (const e of all.entries) {
        expect(e.storedAt).toBeGreaterThanOrEqual(before - 1000);
        expect(e.storedAt).toBeLessThanOrEqual(Date.now() + 1000);
      }
      expect((await inbox.list(u, seqs[0]!, 100, LIMITS)).entries.map((e) => e.seq)).toEqual(seqs.slice(1));
      expect((await inbox.list(u, 0, 2, LIMITS)).entries.map((e) => e.seq)).toEqual(seqs.slice(0, 2));
      expect(await inbox.size(u)).toBe(3);
      expect(await inbox.size(user())).toBe(0);
      expect(await inbox.list(user(), 0, 10, LIMITS)).toEqual({ entries: [], dropped: 0 });
    });

    it('does not append a msgId twice', async () => {
      const inbox = await node();
      const u = user();
      const env = envelope('once');
      const first = await inbox.append(u, { envelope: env }, LIMITS);
      const again = await inbox.append(u, { envelope: { ...env, payload: 'changed' } }, LIMITS);
      expect(again).toEqual({ seq: first.seq, duplicate: true, dropped: 0 });
      expect(await inbox.size(u)).toBe(1);
      expect((await inbox.list(u, 0, 10, LIMITS)).entries[0]!.envelope.payload).toBe('once');
    });

    it('removes by msgId, ignores unknown ids, and keeps seq increasing after removal', async () => {
      const inbox = await node();
      const u = user();
      const a = envelope('a');
      const b = envelope('b');
      const c = envelope('c');
      for (const env of [a, b, c]) await inbox.append(u, { envelope: env }, LIMITS);
      expect((await inbox.remove(u, [c.msgId, 'unknown', a.msgId, c.msgId])).sort()).toEqual([a.msgId, c.msgId].sort());
      expect(await inbox.remove(u, [a.msgId])).toEqual([]);
      expect(await inbox.remove(user(), [b.msgId])).toEqual([]);
      const left = await inbox.list(u, 0, 10, LIMITS);
      expect(left.entries.map((e) => e.envelope.msgId)).toEqual([b.msgId]);
      const lastSeq = left.entries[0]!.seq;
      await inbox.remove(u, [b.msgId]);
      expect(await inbox.size(u)).toBe(0);
      const d = await inbox.append(u, { envelope: envelope('d') }, LIMITS);
      expect(d.seq).toBeGreaterThan(lastSeq + 1);
      // A removed msgId may be stored again: it is no longer in the inbox.
      const a2 = await inbox.append(u, { envelope: a }, LIMITS);
      expect(a2.duplicate).toBe(false);
    });

    it('maxMessages drops the oldest and reports how many', async () => {
      const inbox = await node();
      const u = user();
      const limits = { maxMessages: 3, maxAgeMs: 60_000 };
      const envs = Array.from({ length: 5 }, (_, i) => envelope(i));
      const results = [];
      for (const env of envs) results.push(await inbox.append(u, { envelope: env }, limits));
      expect(results.map((r) => r.dropped)).toEqual([0, 0, 0, 1, 1]);
      const list = await inbox.list(u, 0, 10, limits);
      expect(list.entries.map((e) => e.envelope.payload)).toEqual([2, 3, 4]);
      expect(list.dropped).toBe(0);
      expect(await inbox.size(u)).toBe(3);
      // A tighter limit applies on list too, and is reported.
      const tighter = await inbox.list(u, 0, 10, { maxMessages: 1, maxAgeMs: 60_000 });
      expect(tighter.dropped).toBe(2);
      expect(tighter.entries.map((e) => e.envelope.payload)).toEqual([4]);
      // A dropped msgId is no longer a duplicate.
      expect((await inbox.append(u, { envelope: envs[0]! }, limits)).duplicate).toBe(false);
    });

    it('maxAgeMs drops expired entries on list and append, and reports how many', async () => {
      const inbox = await node();
      const u = user();
      const limits = { maxMessages: 100, maxAgeMs: 250 };
      await inbox.append(u, { envelope: envelope(1) }, limits);
      await inbox.append(u, { envelope: envelope(2) }, limits);
      // Listing before the entries expire changes nothing, so list until they are gone.
      const expired = await waitForValue(async () => {
        const list = await inbox.list(u, 0, 10, limits);
        return list.entries.length === 0 ? list : undefined;
      }, 5000, 'the entries to expire', 50);
      expect(expired).toEqual({ entries: [], dropped: 2 });
      expect(await inbox.size(u)).toBe(0);
      await inbox.append(u, { envelope: envelope(3) }, limits);
      // The append itself must find entry 3 expired, so nothing may read the inbox meanwhile: the
      // age has to pass on the clock.
      await pause(400);
      const r = await inbox.append(u, { envelope: envelope(4) }, limits);
      expect(r.dropped).toBe(1);
      expect((await inbox.list(u, 0, 10, limits)).entries.map((e) => e.envelope.payload)).toEqual([4]);
    });

    it('reports a removed entry to exactly one of several concurrent removals (on one node or several)', async () => {
      const a = await node();
      const b = opts.distributed ? await node() : a;
      const u = user();
      const envs = [envelope('x'), envelope('y')];
      for (const env of envs) await a.append(u, { envelope: env }, LIMITS);
      const ids = envs.map((e) => e.msgId);
      const results = await Promise.all([a.remove(u, ids), b.remove(u, ids), a.remove(u, [...ids].reverse()), b.remove(u, ids)]);
      expect(results.flat().sort()).toEqual([...ids].sort());
      expect(await a.size(u)).toBe(0);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'every node sees the same inbox and seq', async () => {
      const a = await node();
      const b = await node();
      const u = user();
      const r1 = await a.append(u, { envelope: envelope('a') }, LIMITS);
      const r2 = await b.append(u, { envelope: envelope('b') }, LIMITS);
      expect(r2.seq).toBeGreaterThan(r1.seq);
      expect((await b.list(u, 0, 10, LIMITS)).entries.map((e) => e.envelope.payload)).toEqual(['a', 'b']);
      const env = (await a.list(u, 0, 10, LIMITS)).entries[1]!.envelope;
      expect((await a.append(u, { envelope: env }, LIMITS)).duplicate).toBe(true);
      expect(await a.remove(u, [env.msgId])).toEqual([env.msgId]);
      expect(await b.size(u)).toBe(1);
    });
  });
}
