/**
 * The WebhookOutbox contract (engine/webhook-outbox.ts), run against every implementation. Each
 * call of `create` is one node; distributed implementations' instances share one outbox, and
 * `restart` (the single-node ones) closes the node and opens its store again.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClaimedWebhook, ClaimWant, WebhookOutbox, WebhookOutboxLimits, WebhookRecord } from '../../src/engine/webhook-outbox.js';

const ENDPOINTS = ['ep1', 'ep2'];

/** Up to `limit` due entries of each of the suite's endpoints. */
function claim(outbox: WebhookOutbox, limit: number): Promise<ClaimedWebhook[]> {
  return outbox.claim(ENDPOINTS.map((endpoint) => ({ endpoint, limit })));
}
import { SKIP_ONE_NODE } from './services.js';
import { waitForValue } from '../helpers/wait.js';

export interface WebhookOutboxFixture {
  outbox: WebhookOutbox;
  cleanup: () => Promise<void>;
  /** Closes this node and opens its store again (the single-node engines). */
  restart?: () => Promise<WebhookOutbox>;
  /** What a distributed fixture shares: pass it to the factory for a second node on the same outbox. */
  shared?: string;
}

export interface WebhookOutboxSuiteOptions {
  distributed: boolean;
}

/** Each case gets an outbox of its own (its own prefix or file): the depth assertions count everything. */
export type WebhookOutboxFactory = (limits: WebhookOutboxLimits, shared?: string) => Promise<WebhookOutboxFixture>;

const LIMITS: WebhookOutboxLimits = { leaseMs: 60_000, maxEntries: 1000, maxDeadLetters: 100 };

function record(endpoint: string, key: string, n: number): WebhookRecord {
  return { id: randomUUID(), endpoint, key, body: JSON.stringify({ n, text: 'ünï ✓' }) };
}

export function runWebhookOutboxSuite(name: string, create: WebhookOutboxFactory, opts: WebhookOutboxSuiteOptions): void {
  describe(`WebhookOutbox conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    /** A node on a fresh outbox, or (with `shared`) on the outbox another node of this case opened. */
    async function node(limits: Partial<WebhookOutboxLimits> = {}, shared?: string): Promise<WebhookOutboxFixture> {
      const f = await create({ ...LIMITS, ...limits }, shared);
      cleanups.push(f.cleanup);
      return f;
    }

    /** Claims until `n` entries came back (a NATS fetch may return fewer than are due). */
    async function claimN(outbox: WebhookOutbox, n: number, want?: ClaimWant[]): Promise<ClaimedWebhook[]> {
      const got: ClaimedWebhook[] = [];
      await waitForValue(async () => {
        got.push(...(await (want ? outbox.claim(want.map((w) => ({ ...w, limit: Math.min(w.limit, n - got.length) }))) : claim(outbox, n - got.length))));
        return got.length >= n ? got : undefined;
      }, 10_000, `${n} claimable entries`);
      return got;
    }

    it('commits, leases, acknowledges; a leased entry is claimed by nobody else', async () => {
      const { outbox } = await node();
      const r = record('ep1', 'k', 1);
      expect(await outbox.append([r])).toEqual({ stored: 1, refused: 0 });
      expect(await outbox.depth()).toEqual({ pending: 1, dead: 0 });
      const [c] = await claimN(outbox, 1);
      expect(c).toMatchObject({ id: r.id, endpoint: 'ep1', key: 'k', body: r.body, attempts: 1 });
      expect(c!.createdAt).toBeGreaterThan(Date.now() - 60_000);
      expect(await claim(outbox, 10)).toEqual([]);
      expect(await outbox.ack(c!)).toBe(true);
      expect(await outbox.depth()).toEqual({ pending: 0, dead: 0 });
      expect(await claim(outbox, 10)).toEqual([]);
    });

    it('entries appended while claims run are each claimed on their first attempt, none waits out a lease', async () => {
      const { outbox } = await node();
      const total = 300;
      const attempts = new Map<string, number>();
      let producing = true;
      const producer = (async () => {
        for (let i = 0; i < total; i++) {
          await outbox.append([record('ep1', `k${i}`, i)]);
          if (i % 5 === 0) await new Promise((r) => setTimeout(r, 1));
        }
        producing = false;
      })();
      const deadline = Date.now() + 15_000;
      while ((producing || attempts.size < total) && Date.now() < deadline) {
        const claimed = await outbox.claim([{ endpoint: 'ep1', limit: 16 }]);
        for (const c of claimed) {
          attempts.set(c.id, c.attempts);
          await outbox.ack(c);
        }
        if (claimed.length === 0) await new Promise((r) => setTimeout(r, 2));
      }
      await producer;
      expect(attempts.size).toBe(total);
      expect([...attempts.values()].filter((a) => a !== 1)).toEqual([]);
    }, 30_000);

    it('an append retried with the same id stores the event once', async () => {
      const { outbox } = await node();
      const r = record('ep1', 'k', 1);
      await outbox.append([r]);
      await outbox.append([r]);
      expect((await outbox.depth()).pending).toBe(1);
    });

    it('a lease that runs out (its holder died) makes the entry claimable again, one attempt higher', async () => {
      const { outbox } = await node({ leaseMs: 1000 });
      const r = record('ep1', 'k', 1);
      await outbox.append([r]);
      const [first] = await claimN(outbox, 1);
      const [again] = await claimN(outbox, 1);
      expect(again).toMatchObject({ id: r.id, attempts: 2 });
      expect(again!.lease).not.toBe(first!.lease);
      expect(await outbox.ack(again!)).toBe(true);
      expect((await outbox.depth()).pending).toBe(0);
    });

    it('retry keeps the entry back for the delay and records the error', async () => {
      const { outbox } = await node();
      const r = record('ep1', 'k', 1);
      await outbox.append([r]);
      const [c] = await claimN(outbox, 1);
      const t0 = Date.now();
      expect(await outbox.retry(c!, 2500, 'HTTP 503')).toBe(true);
      expect(await claim(outbox, 10)).toEqual([]);
      const [again] = await claimN(outbox, 1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2400);
      expect(again).toMatchObject({ id: r.id, attempts: 2, lastError: 'HTTP 503' });
    });

    it('bury moves the entry to the dead letters; requeue brings it back with attempts reset; discard deletes', async () => {
      const { outbox } = await node();
      const a = record('ep1', 'k', 1);
      const b = record('ep2', 'k2', 2);
      await outbox.append([a, b]);
      const claimed = await claimN(outbox, 2);
      for (const c of claimed) expect(await outbox.bury(c, `gave up on ${c.id}`)).toBe(true);
      expect(await outbox.depth()).toEqual({ pending: 0, dead: 2 });
      const dead = await outbox.deadLetters(10);
      expect(dead.map((d) => d.id).sort()).toEqual([a.id, b.id].sort());
      const deadA = dead.find((d) => d.id === a.id)!;
      expect(deadA).toMatchObject({ endpoint: 'ep1', key: 'k', body: a.body, attempts: 1, lastError: `gave up on ${a.id}` });
      expect(deadA.deadAt).toBeGreaterThan(Date.now() - 60_000);
      expect(await outbox.deadLetters(1)).toHaveLength(1);

      expect(await outbox.requeue(a.id)).toBe(true);
      expect(await outbox.requeue(a.id)).toBe(false);
      expect(await outbox.depth()).toEqual({ pending: 1, dead: 1 });
      const [again] = await claimN(outbox, 1);
      expect(again).toMatchObject({ id: a.id, body: a.body, attempts: 1 });
      expect(await outbox.ack(again!)).toBe(true);

      expect(await outbox.discard(b.id)).toBe(true);
      expect(await outbox.discard(b.id)).toBe(false);
      expect(await outbox.requeue('no-such-id')).toBe(false);
      expect(await outbox.depth()).toEqual({ pending: 0, dead: 0 });
    });

    it('claims only the endpoints asked for, at most the limit of each', async () => {
      const { outbox } = await node();
      const slow = [1, 2, 3].map((n) => record('ep1', `k${n}`, n));
      const other = record('ep2', 'k', 9);
      await outbox.append([...slow, other]);
      const one = await claimN(outbox, 1, [{ endpoint: 'ep1', limit: 1 }]);
      expect(one.map((c) => c.endpoint)).toEqual(['ep1']);
      // ep1's backlog does not stand in front of ep2.
      const theOther = await claimN(outbox, 1, [{ endpoint: 'ep2', limit: 5 }]);
      expect(theOther.map((c) => c.id)).toEqual([other.id]);
      expect(await outbox.claim([{ endpoint: 'ep3', limit: 5 }, { endpoint: 'ep1', limit: 0 }])).toEqual([]);
      const rest = await claimN(outbox, 2, [{ endpoint: 'ep1', limit: 5 }]);
      expect(rest.map((c) => c.id).sort()).toEqual(slow.map((r) => r.id).filter((id) => id !== one[0]!.id).sort());
    });

    it('refuses appends past maxEntries and keeps what was committed', async () => {
      const { outbox } = await node({ maxEntries: 3 });
      const rs = [1, 2, 3, 4, 5].map((n) => record('ep1', `k${n}`, n));
      expect(await outbox.append(rs)).toEqual({ stored: 3, refused: 2 });
      expect((await outbox.depth()).pending).toBe(3);
      const claimed = await claimN(outbox, 3);
      expect(claimed.map((c) => c.id).sort()).toEqual(rs.slice(0, 3).map((r) => r.id).sort());
    });

    it('keeps at most maxDeadLetters, dropping the oldest', async () => {
      const { outbox } = await node({ maxDeadLetters: 2 });
      const rs = [1, 2, 3].map((n) => record('ep1', `k${n}`, n));
      for (const r of rs) {
        await outbox.append([r]);
        const [c] = await claimN(outbox, 1);
        await outbox.bury(c!, 'x');
      }
      expect((await outbox.deadLetters(10)).map((d) => d.id)).toEqual([rs[1]!.id, rs[2]!.id]);
      expect((await outbox.depth()).dead).toBe(2);
    });

    it('ack, retry and bury with a lease that is no longer current do nothing', async () => {
      const { outbox } = await node({ leaseMs: 1000 });
      await outbox.append([record('ep1', 'k', 1)]);
      const [stale] = await claimN(outbox, 1);
      const [current] = await claimN(outbox, 1);
      expect(await outbox.retry({ ...stale!, lease: 'not-a-lease' }, 0, 'x')).toBe(false);
      expect(await outbox.bury({ ...stale!, lease: 'not-a-lease' }, 'x')).toBe(false);
      expect(await outbox.ack({ ...stale!, lease: 'not-a-lease' })).toBe(false);
      expect(await outbox.ack(current!)).toBe(true);
      expect((await outbox.depth()).pending).toBe(0);
    });

    it('where ordered by key: only the oldest entry of an (endpoint, key) is claimable', async (ctx) => {
      const { outbox } = await node();
      if (!outbox.orderedByKey) ctx.skip();
      const a1 = record('ep1', 'A', 1);
      const a2 = record('ep1', 'A', 2);
      const b1 = record('ep1', 'B', 1);
      const a1other = record('ep2', 'A', 1);
      await outbox.append([a1, a2, b1, a1other]);
      const first = await claim(outbox, 10);
      expect(first.map((c) => c.id).sort()).toEqual([a1.id, b1.id, a1other.id].sort());
      const c1 = first.find((c) => c.id === a1.id)!;
      expect(await outbox.retry(c1, 0, 'HTTP 500')).toBe(true);
      // a1 waits for its retry: a2 stays behind it.
      const next = await claim(outbox, 10);
      expect(next.map((c) => c.id)).toEqual([a1.id]);
      expect(await outbox.ack(next[0]!)).toBe(true);
      expect((await claim(outbox, 10)).map((c) => c.id)).toEqual([a2.id]);
    });

    it('where ordered by key: a key\'s queue moves on after an ack or a bury, a requeued entry goes to its back, and entries queued behind a retried head take no claim slot', async (ctx) => {
      const { outbox } = await node();
      if (!outbox.orderedByKey) ctx.skip();
      const as = Array.from({ length: 40 }, (_, i) => record('ep1', 'A', i));
      const others = ['B', 'C', 'D'].map((k) => record('ep1', k, 0));
      await outbox.append([...as, ...others]);
      const first = await claimN(outbox, 4, [{ endpoint: 'ep1', limit: 4 }]);
      expect(first.map((c) => c.id).sort()).toEqual([as[0]!.id, ...others.map((o) => o.id)].sort());
      const headA = first.find((c) => c.id === as[0]!.id)!;
      for (const c of first.filter((c) => c !== headA)) expect(await outbox.ack(c)).toBe(true);
      await outbox.append([record('ep1', 'E', 0), record('ep1', 'F', 0)]);
      // A's head waits for a retry an hour away: the 39 entries behind it are not due, E and F are.
      expect(await outbox.retry(headA, 3_600_000, 'HTTP 503')).toBe(true);
      expect((await claim(outbox, 2)).map((c) => JSON.parse(c.body).n + c.key).sort()).toEqual(['0E', '0F']);
      // Nothing else is due: A's head is waiting, E and F are leased, the rest queue behind A's head.
      expect(await claim(outbox, 10)).toEqual([]);
    });

    it('where ordered by key: a bury moves the queue on, and a requeued entry is delivered after what queued since', async (ctx) => {
      const { outbox } = await node({ leaseMs: 300 });
      if (!outbox.orderedByKey) ctx.skip();
      const as = Array.from({ length: 4 }, (_, i) => record('ep1', 'A', i));
      await outbox.append(as);
      const [head] = await claimN(outbox, 1);
      expect(head!.id).toBe(as[0]!.id);
      expect(await outbox.bury(head!, 'HTTP 410')).toBe(true);
      const [second] = await claimN(outbox, 1);
      expect(second!.id).toBe(as[1]!.id);
      expect(await outbox.requeue(as[0]!.id)).toBe(true);
      const order = [second!.id];
      expect(await outbox.ack(second!)).toBe(true);
      for (let i = 0; i < 3; i++) {
        const [next] = await claimN(outbox, 1);
        order.push(next!.id);
        expect(await outbox.ack(next!)).toBe(true);
      }
      expect(order).toEqual([as[1]!.id, as[2]!.id, as[3]!.id, as[0]!.id]);
      expect((await outbox.depth()).pending).toBe(0);
    });

    it('pending events survive a restart of the node', async () => {
      const f = await node();
      const rs = [record('ep1', 'k', 1), record('ep1', 'k2', 2)];
      await f.outbox.append(rs);
      const [leased] = await claimN(f.outbox, 1);
      expect(leased).toBeDefined();
      let reopened: WebhookOutbox;
      if (f.restart) reopened = await f.restart();
      else {
        if (!opts.distributed) throw new Error('a single-node fixture must offer restart');
        await f.outbox.close();
        reopened = (await node({}, sharedOf(f))).outbox;
      }
      expect((await reopened.depth()).pending).toBe(2);
      const free = await claimN(reopened, 1);
      expect(free.map((c) => c.id)).not.toContain(leased!.id);
    });

    it.skipIf(!opts.distributed)(`${SKIP_ONE_NODE}two nodes on one outbox: each event is claimed by one of them at a time`, async () => {
      const a = await node();
      const b = await node({}, sharedOf(a));
      const rs = Array.from({ length: 40 }, (_, n) => record('ep1', `k${n}`, n));
      await a.outbox.append(rs.slice(0, 20));
      await b.outbox.append(rs.slice(20));
      const seen = new Map<string, number>();
      const drain = async (o: WebhookOutbox) => {
        const deadline = Date.now() + 15_000;
        while (Date.now() < deadline && [...seen.keys()].length < rs.length) {
          for (const c of await claim(o, 5)) {
            seen.set(c.id, (seen.get(c.id) ?? 0) + 1);
            expect(await o.ack(c)).toBe(true);
          }
        }
      };
      await Promise.all([drain(a.outbox), drain(b.outbox)]);
      expect([...seen.keys()].sort()).toEqual(rs.map((r) => r.id).sort());
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      expect((await a.outbox.depth()).pending).toBe(0);
    });
  });
}

/** The name a distributed fixture's outbox is shared under (set by the factory). */
export function sharedOf(f: WebhookOutboxFixture): string {
  const s = f.shared;
  if (!s) throw new Error('a distributed fixture must say what it shares (fixture.shared)');
  return s;
}
