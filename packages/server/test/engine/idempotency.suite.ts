/**
 * The idempotency contract (engine/idempotency.ts), run against every engine: a publish or an inbox
 * append that carries a key (scope, msgId) is stored and delivered once per key and audience within
 * `publish.idempotencyWindowMs`, on whichever node the retries arrive; a duplicate is answered with
 * the original's timestamp (and position); a window of 0 turns keys off. Each engine checks the key
 * inside the step that stores or sends the message (Broker.publish, InboxStore.append), so the suite
 * drives it through those. Each call of `create` is one node of one engine.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../src/config.js';
import type { Broker, Dispatch, DispatchTarget, Published } from '../../src/engine/broker.js';
import type { IdempotencyKey } from '../../src/engine/idempotency.js';
import type { InboxLimits, InboxStore } from '../../src/engine/inbox.js';
import { envelope, marker, Recorder } from './broker.suite.js';
import { waitFor } from '../helpers/wait.js';

export interface IdempotencyFixture {
  /** Not yet started: the suite starts it. */
  broker: Broker;
  /** The same node's inbox, sharing its idempotency window as the engine factory wires it. */
  inbox: InboxStore;
  cleanup: () => Promise<void>;
}

export interface IdempotencyCreateOptions {
  /** publish.idempotencyWindowMs for this node (default 120 000); 0 turns keys off. */
  idempotencyWindowMs?: number;
}

export interface IdempotencySuiteOptions {
  /** Nodes made by `create` share one store, so a retry on another node is a duplicate too. */
  distributed: boolean;
}

const HISTORY: HistoryConfig = { size: 100, ttlMs: 60_000 };
const LIMITS: InboxLimits = { maxMessages: 100, maxAgeMs: 60_000 };

function stored(p: Published): StreamPosition {
  expect(p.duplicate).toBe(false);
  expect(p.position).toBeDefined();
  return p.position!;
}

export function runIdempotencySuite(name: string, create: (options: IdempotencyCreateOptions) => Promise<IdempotencyFixture>, opts: IdempotencySuiteOptions): void {
  describe(`Idempotency conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function node(options: IdempotencyCreateOptions = {}): Promise<{ broker: Broker; inbox: InboxStore; rec: Recorder }> {
      const f = await create(options);
      cleanups.push(f.cleanup);
      const rec = new Recorder();
      await f.broker.start(rec.handler);
      return { broker: f.broker, inbox: f.inbox, rec };
    }

    const channel = (tag: string) => `suite:${tag}.${randomUUID().slice(0, 8)}-x_y`;
    const key = (msgId = `key-${randomUUID()}`, scope = 'api'): IdempotencyKey => ({ scope, msgId });
    /** A fresh dispatch per attempt, as separate publishes of one request would make. */
    const attempt = (target: DispatchTarget, payload: unknown, msgId: string): Dispatch => ({ target, envelope: envelope(payload, msgId) });

    it('concurrent publishes of one key through two nodes store it once; every caller gets its position and timestamp', async () => {
      const a = await node();
      const b = opts.distributed ? await node() : a;
      const target = { kind: 'channel' as const, channel: channel('idem-race') };
      await a.broker.subscribe(target);
      if (b !== a) await b.broker.subscribe(target);
      const k = key();
      const dispatches = Array.from({ length: 20 }, (_, i) => attempt(target, i, k.msgId));
      const results = await Promise.all(dispatches.map((d, i) => (i % 2 ? b : a).broker.publish(d, HISTORY, k)));
      const winners = results.filter((r) => !r.duplicate);
      expect(winners).toHaveLength(1);
      const winner = dispatches[results.indexOf(winners[0]!)]!;
      for (const r of results) {
        expect(r.position).toEqual(winners[0]!.position);
        if (r.duplicate) expect(r.timestamp).toBe(winner.envelope.timestamp);
      }
      const h = await a.broker.history(target.channel, { limit: 100 });
      expect(h.entries.map((e) => e.envelope)).toEqual([winner.envelope]);
      const nodes = b === a ? [a] : [a, b];
      for (const n of nodes) await n.rec.waitFor(target, 1);
      // Each node publishes a marker after its attempts: a second copy would be in before them.
      for (const n of nodes) await marker(n.broker, target, ...nodes.map((m) => m.rec));
      for (const n of nodes) expect(n.rec.for(target).map((d) => d.envelope)).toEqual([winner.envelope]);
    });

    it('a retry after success — on the other node — is a duplicate with the original position and timestamp', async () => {
      const a = await node();
      const b = opts.distributed ? await node() : a;
      const target = { kind: 'channel' as const, channel: channel('idem-retry') };
      await b.broker.subscribe(target);
      const k = key();
      const first = attempt(target, 'first', k.msgId);
      const pos = stored(await a.broker.publish(first, HISTORY, k));
      await b.rec.waitFor(target, 1);
      const retry = await b.broker.publish(attempt(target, 'retry', k.msgId), HISTORY, k);
      expect(retry).toEqual({ duplicate: true, position: pos, timestamp: first.envelope.timestamp });
      expect(await a.broker.publish(attempt(target, 'again', k.msgId), HISTORY, k)).toEqual(retry);
      expect((await b.broker.history(target.channel, { limit: 100 })).entries).toHaveLength(1);
      await marker(a.broker, target, b.rec);
      await marker(b.broker, target, b.rec);
      expect(b.rec.for(target).map((d) => d.envelope.payload)).toEqual(['first']);
    });

    it('other msgIds, other scopes and other audiences are independent keys', async () => {
      const { broker } = await node();
      const ch = channel('idem-indep');
      const target = { kind: 'channel' as const, channel: ch };
      const k = key();
      const p1 = stored(await broker.publish(attempt(target, 1, k.msgId), HISTORY, k));
      const p2 = stored(await broker.publish(attempt(target, 2, k.msgId), HISTORY, key(k.msgId, 'user:alice')));
      const p3 = stored(await broker.publish(attempt(target, 3, 'other'), HISTORY, key(`${k.msgId}-other`)));
      const p4 = stored(await broker.publish(attempt({ kind: 'channel', channel: channel('idem-indep-2') }, 4, k.msgId), HISTORY, k));
      // Without a key nothing is looked up: the same msgId is stored again.
      const p5 = stored(await broker.publish(attempt(target, 5, k.msgId), HISTORY));
      expect(new Set([p1, p2, p3, p5].map((p) => p.offset)).size).toBe(4);
      expect(p4.offset).toBeGreaterThan(0);
      expect((await broker.history(ch, { limit: 100 })).entries.map((e) => e.envelope.payload)).toEqual([1, 2, 3, 5]);
      // A scope that could be confused with another by naive joining still is not.
      const tricky = await broker.publish(attempt(target, 6, `x|${k.msgId}`), HISTORY, key(`x|${k.msgId}`, 'user:a'));
      const tricky2 = await broker.publish(attempt(target, 7, k.msgId), HISTORY, key(k.msgId, 'user:a|x'));
      expect(tricky.duplicate || tricky2.duplicate).toBe(false);
    });

    it('user and broadcast targets: one key is dispatched once, through any node', async () => {
      const a = await node();
      const b = opts.distributed ? await node() : a;
      const user = { kind: 'user' as const, user: `user-${randomUUID()}` };
      const all = { kind: 'broadcast' as const };
      await a.broker.subscribe(user);
      for (const target of [user, all] as DispatchTarget[]) {
        const k = key();
        const dispatches = Array.from({ length: 10 }, (_, i) => attempt(target, i, k.msgId));
        const results = await Promise.all(dispatches.map((d, i) => (i % 2 ? b : a).broker.publish(d, HISTORY, k)));
        const winners = results.filter((r) => !r.duplicate);
        expect(winners).toEqual([{ duplicate: false }]);
        const winner = dispatches[results.indexOf(winners[0]!)]!;
        for (const r of results) if (r.duplicate) expect(r).toEqual({ duplicate: true, timestamp: winner.envelope.timestamp });
        await a.rec.waitFor(target, 1);
        await marker(a.broker, target, a.rec);
        if (b !== a) await marker(b.broker, target, a.rec);
        expect(a.rec.for(target).map((d) => d.envelope)).toEqual([winner.envelope]);
        expect(await b.broker.publish(attempt(target, 'late', k.msgId), HISTORY, k)).toEqual({ duplicate: true, timestamp: winner.envelope.timestamp });
      }
    });

    it('a key is new again once its window has passed', async () => {
      const windowMs = 1000;
      const a = await node({ idempotencyWindowMs: windowMs });
      const b = opts.distributed ? await node({ idempotencyWindowMs: windowMs }) : a;
      const targets: DispatchTarget[] = [{ kind: 'channel', channel: channel('idem-window') }, { kind: 'user', user: `user-${randomUUID()}` }, { kind: 'broadcast' }];
      for (const target of targets) {
        const k = key();
        const started = Date.now();
        expect((await a.broker.publish(attempt(target, 'first', k.msgId), HISTORY, k)).duplicate).toBe(false);
        expect((await b.broker.publish(attempt(target, 'retry', k.msgId), HISTORY, k)).duplicate).toBe(true);
        // Duplicates store nothing, so asking again until the answer changes is harmless.
        let again: Published | undefined;
        await waitFor(async () => !(again = await b.broker.publish(attempt(target, 'later', k.msgId), HISTORY, k)).duplicate, windowMs + 5000, `the key for ${JSON.stringify(target)} to be new again`, 50);
        expect(again?.duplicate, JSON.stringify(target)).toBe(false);
        expect(Date.now() - started).toBeGreaterThanOrEqual(windowMs * 0.9);
      }
    });

    it('an inbox append with a key stores it once: concurrent retries on any node, and retries after the entry was removed', async () => {
      const a = await node();
      const b = opts.distributed ? await node() : a;
      const u = `user:${randomUUID()}`;
      const k = key();
      const attempts = Array.from({ length: 6 }, (_, i) => envelope(i, k.msgId));
      const results = await Promise.all(attempts.map((env, i) => (i % 2 ? b : a).inbox.append(u, { envelope: env }, LIMITS, k)));
      const fresh = results.filter((r) => !r.earlier);
      expect(fresh).toHaveLength(1);
      expect(fresh[0]!.duplicate).toBe(false);
      const original = attempts[results.indexOf(fresh[0]!)]!;
      for (const r of results) if (r.earlier) expect(r).toMatchObject({ duplicate: true, dropped: 0, earlier: { timestamp: original.timestamp } });
      expect((await a.inbox.list(u, 0, 10, LIMITS)).entries.map((e) => e.envelope)).toEqual([original]);
      // Acknowledged and removed: a retry within the window is still not stored again.
      expect(await a.inbox.remove(u, [k.msgId])).toEqual([k.msgId]);
      const late = await b.inbox.append(u, { envelope: envelope('late', k.msgId) }, LIMITS, k);
      expect(late.earlier).toBeDefined();
      expect(late.duplicate).toBe(true);
      expect(await a.inbox.size(u)).toBe(0);
      // Another scope is another key (and the inbox takes the msgId again).
      const other = await b.inbox.append(u, { envelope: envelope('other', k.msgId) }, LIMITS, key(k.msgId, 'user:x'));
      expect(other.earlier).toBeUndefined();
      expect(other.duplicate).toBe(false);
      expect(await a.inbox.size(u)).toBe(1);
    });

    it('an inbox key is new again once its window has passed', async () => {
      const windowMs = 1000;
      const a = await node({ idempotencyWindowMs: windowMs });
      const b = opts.distributed ? await node({ idempotencyWindowMs: windowMs }) : a;
      const u = `user:${randomUUID()}`;
      const k = key();
      const started = Date.now();
      expect((await a.inbox.append(u, { envelope: envelope('first', k.msgId) }, LIMITS, k)).earlier).toBeUndefined();
      expect(await a.inbox.remove(u, [k.msgId])).toEqual([k.msgId]);
      expect((await b.inbox.append(u, { envelope: envelope('retry', k.msgId) }, LIMITS, k)).earlier).toBeDefined();
      // Duplicates store nothing, so asking again until the answer changes is harmless.
      let again: Awaited<ReturnType<InboxStore['append']>> | undefined;
      await waitFor(async () => !(again = await b.inbox.append(u, { envelope: envelope('later', k.msgId) }, LIMITS, k)).earlier, windowMs + 5000, 'the inbox key to be new again', 50);
      expect(again?.earlier).toBeUndefined();
      expect(again?.duplicate).toBe(false);
      expect(Date.now() - started).toBeGreaterThanOrEqual(windowMs * 0.9);
    });

    it('a window of 0 turns keys off: every publish and append is stored', async () => {
      const a = await node({ idempotencyWindowMs: 0 });
      const target = { kind: 'channel' as const, channel: channel('idem-off') };
      const k = key();
      const p1 = stored(await a.broker.publish(attempt(target, 1, k.msgId), HISTORY, k));
      const p2 = stored(await a.broker.publish(attempt(target, 2, k.msgId), HISTORY, k));
      expect(p2.offset).toBeGreaterThan(p1.offset);
      const user = { kind: 'user' as const, user: `user-${randomUUID()}` };
      expect(await a.broker.publish(attempt(user, 1, k.msgId), HISTORY, k)).toEqual({ duplicate: false });
      expect(await a.broker.publish(attempt(user, 2, k.msgId), HISTORY, k)).toEqual({ duplicate: false });
      const u = `user:${randomUUID()}`;
      expect((await a.inbox.append(u, { envelope: envelope(1, k.msgId) }, LIMITS, k)).earlier).toBeUndefined();
      expect(await a.inbox.remove(u, [k.msgId])).toEqual([k.msgId]);
      expect((await a.inbox.append(u, { envelope: envelope(2, k.msgId) }, LIMITS, k)).earlier).toBeUndefined();
    });
  });
}
