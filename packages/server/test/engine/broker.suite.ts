/**
 * The Broker contract, run against every implementation (memory, SQLite, Redis, NATS). Each call of
 * `create` is one node; distributed implementations' instances share one bus and one history.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Envelope, StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../src/config.js';
import { noStreamPosition, type Broker, type Dispatch, type DispatchTarget, type Published } from '../../src/engine/broker.js';
import { SKIP_ONE_NODE } from './services.js';
import { livePoint, SubscriptionSeam, type LivePoint } from '../../src/engine/recovery-seam.js';
import { pause, waitFor } from '../helpers/wait.js';

export interface BrokerFixture {
  /** Not yet started: the suite starts it with its own handler. */
  broker: Broker;
  /** Closes the broker (and anything else the fixture opened). */
  cleanup: () => Promise<void>;
  /**
   * What the backend holds for channels whose names contain `part` (rows, keys, streams…), as any
   * comparable value — or for all channels, where names cannot be told from what is stored: reads of
   * channels that were never published must leave it unchanged.
   */
  footprint?: (part: string) => Promise<unknown>;
}

export interface BrokerCreateOptions {
  /** publish.idempotencyWindowMs for this node (default: the configuration's default, 120 000). */
  idempotencyWindowMs?: number;
}

export interface BrokerSuiteOptions {
  /**
   * Instances created by `create` are nodes of one cluster: they share history, and each gets only
   * the channels and users it subscribed. False for the memory broker (one process; it hands every
   * dispatch to its handler and the node filters).
   */
  distributed: boolean;
}

const HISTORY: HistoryConfig = { size: 100, ttlMs: 60_000 };
/** The seam case: how many recoveries it aims for, how many it needs, and its time budget. */
const SEAM_RECOVERIES = 300;
const SEAM_MIN_RECOVERIES = 150;
const SEAM_BUDGET_MS = 12_000;

export class Recorder {
  readonly got: Dispatch[] = [];
  /** Sees every dispatch as it arrives, after it is recorded. */
  tap: ((d: Dispatch) => void) | undefined;
  readonly handler = {
    onDispatch: (d: Dispatch) => {
      this.got.push(d);
      this.tap?.(d);
    },
  };

  /** What was dispatched, markers left out. */
  get messages(): Dispatch[] {
    return this.got.filter((d) => d.envelope.eventType !== MARKER);
  }

  /** What was dispatched to `target`, markers left out. */
  for(target: DispatchTarget): Dispatch[] {
    return this.messages.filter((d) => JSON.stringify(d.target) === JSON.stringify(target));
  }

  async waitFor(target: DispatchTarget, n: number, timeoutMs = 3000): Promise<Dispatch[]> {
    await waitFor(() => this.for(target).length >= n, timeoutMs, `${n} dispatches for ${JSON.stringify(target)} (got ${this.for(target).length})`, 5);
    return this.for(target);
  }
}

const MARKER = 'marker';

/**
 * Publishes a marker to `target` through `broker` and waits until every recorder in `recs` has it.
 * One path (a channel, a user, broadcast) delivers a publisher's dispatches in publish order, so
 * whatever that path would have delivered earlier has arrived by then: how a case shows that
 * something did not arrive without waiting a fixed time.
 */
export async function marker(broker: Broker, target: DispatchTarget, ...recs: Recorder[]): Promise<void> {
  const env = { ...envelope(null), eventType: MARKER };
  await broker.publish({ target, envelope: env }, { size: 100, ttlMs: 60_000 });
  await waitFor(() => recs.every((r) => r.got.some((d) => d.envelope.msgId === env.msgId)), 3000, `a marker on ${JSON.stringify(target)}`, 5);
}

export function envelope(payload: unknown, msgId: string = randomUUID()): Envelope {
  return { msgId, timestamp: Date.now(), source: 'suite', eventType: 'test.event', version: '1.0', payload };
}

/** The position of a publish that must have been stored. */
function stored(p: Published): StreamPosition {
  expect(p.duplicate).toBe(false);
  expect(p.position).toBeDefined();
  return p.position!;
}

export function runBrokerSuite(name: string, create: (options: BrokerCreateOptions) => Promise<BrokerFixture>, opts: BrokerSuiteOptions): void {
  describe(`Broker conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function node(options: BrokerCreateOptions = {}): Promise<{ broker: Broker; rec: Recorder; footprint?: (part: string) => Promise<unknown> }> {
      const f = await create(options);
      cleanups.push(f.cleanup);
      const rec = new Recorder();
      await f.broker.start(rec.handler);
      return { broker: f.broker, rec, ...(f.footprint ? { footprint: f.footprint } : {}) };
    }

    const channel = (tag: string) => `suite:${tag}.${randomUUID().slice(0, 8)}-x_y`;

    async function publishN(broker: Broker, ch: string, n: number, history = HISTORY): Promise<{ positions: StreamPosition[]; envelopes: Envelope[] }> {
      const positions: StreamPosition[] = [];
      const envelopes: Envelope[] = [];
      for (let i = 0; i < n; i++) {
        const env = envelope({ i, text: `message ${i} ünïcødé`, nested: { ok: true, big: 2 ** 53 - 1, float: 0.1 } });
        envelopes.push(env);
        positions.push(stored(await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: env }, history)));
      }
      return { positions, envelopes };
    }

    it('delivers each publication to a subscribed channel exactly once, in order, with increasing offsets and one epoch', async () => {
      const { broker, rec } = await node();
      const ch = channel('order');
      await broker.subscribe({ kind: 'channel', channel: ch });
      const filter = { tags: { plan: { eq: 'pro' } } } as unknown as Dispatch['filter'];
      const first = stored(await broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope('f'), filter }, HISTORY));
      const { positions, envelopes } = await publishN(broker, ch, 20);
      const all = [first, ...positions];
      for (let i = 1; i < all.length; i++) {
        expect(all[i]!.offset).toBeGreaterThan(all[i - 1]!.offset);
        expect(all[i]!.epoch).toBe(all[0]!.epoch);
      }
      const target = { kind: 'channel' as const, channel: ch };
      const got = await rec.waitFor(target, 21);
      await marker(broker, target, rec);
      expect(rec.for(target)).toHaveLength(21);
      expect(got[0]!.filter).toEqual(filter);
      expect(got.map((d) => d.position)).toEqual(all);
      expect(got.slice(1).map((d) => d.envelope)).toEqual(envelopes);
    });

    it('keeps the order of concurrent publishes to one channel (received order = offset order)', async () => {
      const { broker, rec } = await node();
      const ch = channel('concurrent');
      await broker.subscribe({ kind: 'channel', channel: ch });
      const positions = await Promise.all(
        Array.from({ length: 30 }, (_, i) => broker.publish({ target: { kind: 'channel', channel: ch }, envelope: envelope(i) }, HISTORY)),
      );
      expect(new Set(positions.map((p) => stored(p).offset)).size).toBe(30);
      const got = await rec.waitFor({ kind: 'channel', channel: ch }, 30);
      const offsets = got.map((d) => d.position!.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      expect(new Set(got.map((d) => d.envelope.msgId)).size).toBe(30);
    });

    it('delivers user and broadcast dispatches to a node that subscribed them, without a position', async () => {
      const { broker, rec } = await node();
      const user = `user-${randomUUID()}`;
      await broker.subscribe({ kind: 'user', user });
      expect(await broker.publish({ target: { kind: 'user', user }, envelope: envelope('u') }, HISTORY)).toEqual({ duplicate: false });
      expect(await broker.publish({ target: { kind: 'broadcast' }, envelope: envelope('b') }, HISTORY)).toEqual({ duplicate: false });
      const [u] = await rec.waitFor({ kind: 'user', user }, 1);
      const [b] = await rec.waitFor({ kind: 'broadcast' }, 1);
      expect(u!.envelope.payload).toBe('u');
      expect(u!.position).toBeUndefined();
      expect(b!.envelope.payload).toBe('b');
    });

    it('publish resolves only after acceptance: the message is in history as soon as it resolves', async () => {
      const a = await node();
      const reader = opts.distributed ? await node() : a;
      const ch = channel('accept');
      for (let i = 0; i < 5; i++) {
        const env = envelope(i);
        const pos = stored(await a.broker.publish({ target: { kind: 'channel', channel: ch }, envelope: env }, HISTORY));
        const h = await reader.broker.history(ch, { limit: 1 });
        expect(h.position).toEqual(pos);
        expect(h.entries.map((e) => e.envelope)).toEqual([env]);
      }
    });

    it('history since a position returns the missed entries in order, complete', async () => {
      const { broker } = await node();
      const ch = channel('since');
      const { positions, envelopes } = await publishN(broker, ch, 6);
      const h = await broker.history(ch, { since: positions[1]!, limit: 100 });
      expect(h.complete).toBe(true);
      expect(h.position).toEqual(positions[5]);
      expect(h.entries.map((e) => e.offset)).toEqual(positions.slice(2).map((p) => p.offset));
      expect(h.entries.map((e) => e.envelope)).toEqual(envelopes.slice(2));
      const none = await broker.history(ch, { since: positions[5]!, limit: 100 });
      expect(none).toEqual({ entries: [], position: positions[5], complete: true });
      const exact = await broker.history(ch, { since: positions[2]!, limit: 3 });
      expect(exact.complete).toBe(true);
      expect(exact.entries).toHaveLength(3);
    });

    it('history since a position is incomplete when the epoch differs, more than `limit` are missed, or the position is ahead', async () => {
      const { broker } = await node();
      const ch = channel('incomplete');
      const { positions } = await publishN(broker, ch, 5);
      const otherEpoch = await broker.history(ch, { since: { offset: positions[1]!.offset, epoch: `${positions[1]!.epoch}x` }, limit: 100 });
      expect(otherEpoch.complete).toBe(false);
      expect(otherEpoch.entries).toEqual([]);
      expect(otherEpoch.position).toEqual(positions[4]);
      const tooMany = await broker.history(ch, { since: positions[0]!, limit: 3 });
      expect(tooMany.complete).toBe(false);
      expect(tooMany.position).toEqual(positions[4]);
      const ahead = await broker.history(ch, { since: { offset: positions[4]!.offset + 1000, epoch: positions[4]!.epoch }, limit: 100 });
      expect(ahead.complete).toBe(false);
    });

    it('history is bounded by size: a pruned position is incomplete, a retained one complete', async () => {
      const { broker } = await node();
      const ch = channel('size');
      const small = { size: 3, ttlMs: 60_000 };
      const { positions, envelopes } = await publishN(broker, ch, 7, small);
      const pruned = await broker.history(ch, { since: positions[1]!, limit: 100 });
      expect(pruned.complete).toBe(false);
      expect(pruned.position).toEqual(positions[6]);
      const kept = await broker.history(ch, { since: positions[3]!, limit: 100 });
      expect(kept.complete).toBe(true);
      expect(kept.entries.map((e) => e.envelope)).toEqual(envelopes.slice(4));
      const newest = await broker.history(ch, { limit: 100 });
      expect(newest.entries.map((e) => e.envelope)).toEqual(envelopes.slice(4));
    });

    it('history is bounded by age: expired entries are gone and their positions incomplete', async () => {
      const { broker } = await node();
      const ch = channel('ttl');
      const short = { size: 100, ttlMs: 300 };
      const { positions } = await publishN(broker, ch, 3, short);
      // The entries' age is what this case is about, so the TTL has to pass on the clock.
      await pause(450);
      const late = await publishN(broker, ch, 1, short);
      const expired = await broker.history(ch, { since: positions[0]!, limit: 100 });
      expect(expired.complete).toBe(false);
      expect(expired.position).toEqual(late.positions[0]);
      const fresh = await broker.history(ch, { since: positions[2]!, limit: 100 });
      expect(fresh.complete).toBe(true);
      expect(fresh.entries.map((e) => e.offset)).toEqual([late.positions[0]!.offset]);
      expect((await broker.history(ch, { limit: 100 })).entries).toHaveLength(1);
    });

    it('history without `since` returns the newest `limit` entries, oldest first', async () => {
      const { broker } = await node();
      const ch = channel('newest');
      const { positions, envelopes } = await publishN(broker, ch, 5);
      const h = await broker.history(ch, { limit: 2 });
      expect(h.complete).toBe(true);
      expect(h.position).toEqual(positions[4]);
      expect(h.entries.map((e) => e.envelope)).toEqual(envelopes.slice(3));
      expect(h.entries.map((e) => e.offset)).toEqual(positions.slice(3).map((p) => p.offset));
      const zero = await broker.history(ch, { limit: 0 });
      expect(zero).toEqual({ entries: [], position: positions[4], complete: true });
    });

    it('a never-published channel reads as offset 0; its reader recovers everything published later, unless the start is gone', async () => {
      const { broker } = await node();
      const ch = channel('empty');
      const first = await broker.history(ch, { limit: 10, config: HISTORY });
      expect(first.entries).toEqual([]);
      expect(first.position.offset).toBe(0);
      expect(first.complete).toBe(true);
      const nothingYet = await broker.history(ch, { since: first.position, limit: 100, config: HISTORY });
      expect(nothingYet).toMatchObject({ entries: [], complete: true, position: { offset: 0 } });
      const { positions, envelopes } = await publishN(broker, ch, 3);
      const rec = await broker.history(ch, { since: first.position, limit: 100, config: HISTORY });
      expect(rec.complete).toBe(true);
      expect(rec.position).toEqual(positions[2]);
      expect(rec.entries.map((e) => e.envelope)).toEqual(envelopes);
      expect(rec.entries.map((e) => e.offset)).toEqual(positions.map((p) => p.offset));

      // Its first messages were pruned by size: the reader cannot have everything.
      const pruned = channel('empty-pruned');
      const small = { size: 2, ttlMs: 60_000 };
      const seen = await broker.history(pruned, { limit: 10, config: small });
      await publishN(broker, pruned, 3, small);
      expect((await broker.history(pruned, { since: seen.position, limit: 100, config: small })).complete).toBe(false);

      // A reader who saw it empty longer ago than the history TTL is not vouched for either: a
      // stream may have come and gone meanwhile.
      const late = channel('empty-late');
      await publishN(broker, late, 1);
      const old = noStreamPosition(Date.now() - 2 * HISTORY.ttlMs);
      expect((await broker.history(late, { since: old, limit: 100, config: HISTORY })).complete).toBe(false);
      expect((await broker.history(channel('empty-never'), { since: old, limit: 100, config: HISTORY })).complete).toBe(false);
    });

    it('reads of channels that were never published store nothing', async () => {
      const { broker, footprint } = await node();
      const part = `never${randomUUID().slice(0, 8)}`;
      // One published channel among them, so the footprint is not trivially empty.
      await publishN(broker, channel(`${part}-real`), 1);
      const before = await footprint?.(part);
      for (let i = 0; i < 200; i++) {
        const h = await broker.history(channel(`${part}-${i}`), { limit: 10, config: HISTORY, ...(i % 2 ? { since: { offset: 0, epoch: 'nope' } } : {}) });
        expect(h.entries).toEqual([]);
        expect(h.position.offset).toBe(0);
      }
      if (footprint) expect(await footprint(part)).toEqual(before);
    });

    it('channels are independent streams', async () => {
      const { broker } = await node();
      const a = channel('indep-a');
      const b = channel('indep-b');
      const pa = await publishN(broker, a, 3);
      await publishN(broker, b, 2);
      const ha = await broker.history(a, { since: pa.positions[0]!, limit: 100 });
      expect(ha.complete).toBe(true);
      expect(ha.entries.map((e) => e.envelope)).toEqual(pa.envelopes.slice(1));
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'a node gets only the channels and users it subscribed; broadcast reaches every node', async () => {
      const a = await node();
      const b = await node();
      const x = channel('only-x');
      const y = channel('only-y');
      const user = `user-${randomUUID()}`;
      await a.broker.subscribe({ kind: 'channel', channel: x });
      await b.broker.subscribe({ kind: 'channel', channel: y });
      await a.broker.subscribe({ kind: 'user', user });
      await b.broker.publish({ target: { kind: 'channel', channel: x }, envelope: envelope('x') }, HISTORY);
      await a.broker.publish({ target: { kind: 'channel', channel: y }, envelope: envelope('y') }, HISTORY);
      await b.broker.publish({ target: { kind: 'user', user }, envelope: envelope('u') }, HISTORY);
      await b.broker.publish({ target: { kind: 'broadcast' }, envelope: envelope('all') }, HISTORY);
      await a.rec.waitFor({ kind: 'channel', channel: x }, 1);
      await b.rec.waitFor({ kind: 'channel', channel: y }, 1);
      await a.rec.waitFor({ kind: 'user', user }, 1);
      await a.rec.waitFor({ kind: 'broadcast' }, 1);
      await b.rec.waitFor({ kind: 'broadcast' }, 1);
      // Where a node is not subscribed there is no path to mark, so each publisher marks the path
      // both nodes share after its own publishes: a stray dispatch of theirs would be in by then.
      await marker(a.broker, { kind: 'broadcast' }, a.rec, b.rec);
      await marker(b.broker, { kind: 'broadcast' }, a.rec, b.rec);
      expect(a.rec.messages.map((d) => d.envelope.payload).sort()).toEqual(['all', 'u', 'x']);
      expect(b.rec.messages.map((d) => d.envelope.payload).sort()).toEqual(['all', 'y']);
      // History is shared: B reads what A published.
      const h = await b.broker.history(y, { limit: 10 });
      expect(h.entries.map((e) => e.envelope.payload)).toEqual(['y']);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'a user dispatch reaches every node subscribed to that user', async () => {
      const a = await node();
      const b = await node();
      const c = await node();
      const user = `user-${randomUUID()}`;
      await a.broker.subscribe({ kind: 'user', user });
      await c.broker.subscribe({ kind: 'user', user });
      await b.broker.publish({ target: { kind: 'user', user }, envelope: envelope('hi') }, HISTORY);
      await a.rec.waitFor({ kind: 'user', user }, 1);
      await c.rec.waitFor({ kind: 'user', user }, 1);
      await marker(b.broker, { kind: 'user', user }, a.rec, c.rec);
      await marker(b.broker, { kind: 'broadcast' }, a.rec, b.rec, c.rec);
      expect(b.rec.messages).toHaveLength(0);
      expect(a.rec.messages).toHaveLength(1);
      expect(c.rec.messages).toHaveLength(1);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'unsubscribe stops delivery; subscribe is idempotent', async () => {
      const { broker, rec } = await node();
      const ch = channel('unsub');
      const user = `user-${randomUUID()}`;
      const target = { kind: 'channel' as const, channel: ch };
      await broker.subscribe(target);
      await broker.subscribe(target);
      await broker.subscribe({ kind: 'user', user });
      await broker.publish({ target, envelope: envelope(1) }, HISTORY);
      await broker.publish({ target: { kind: 'user', user }, envelope: envelope('u1') }, HISTORY);
      await rec.waitFor(target, 1);
      await rec.waitFor({ kind: 'user', user }, 1);
      await marker(broker, target, rec);
      expect(rec.for(target)).toHaveLength(1);
      await broker.unsubscribe(target);
      await broker.unsubscribe(target);
      await broker.unsubscribe({ kind: 'user', user });
      await broker.publish({ target, envelope: envelope(2) }, HISTORY);
      await broker.publish({ target: { kind: 'user', user }, envelope: envelope('u2') }, HISTORY);
      // Subscribed again, the next publication on each path comes after 2 and u2 would have: had
      // the unsubscribes not held, those would show up here first.
      await broker.subscribe(target);
      await broker.subscribe({ kind: 'user', user });
      await broker.publish({ target, envelope: envelope(3) }, HISTORY);
      await broker.publish({ target: { kind: 'user', user }, envelope: envelope('u3') }, HISTORY);
      const got = await rec.waitFor(target, 2);
      const gotUser = await rec.waitFor({ kind: 'user', user }, 2);
      expect(got.map((d) => d.envelope.payload)).toEqual([1, 3]);
      expect(gotUser.map((d) => d.envelope.payload)).toEqual(['u1', 'u3']);
    });

    // The recovery seam (src/engine/recovery-seam.ts, docs/reliability.md): a subscriber reads the
    // stream since its last position (the `subscribed` reply) while live dispatches keep coming, as
    // the frame handler does; the live stream reaches the node by another path than the read, so a
    // publication the read returned can still arrive live afterwards. Every recovery must see the
    // channel's publications strictly in order, none twice, across the read and the live stream.
    it(`recovery seam: ${SEAM_RECOVERIES} recoveries while ${opts.distributed ? 'another node' : 'another publisher'} publishes continuously see every offset once, in order`, async () => {
      const sub = await node();
      const pub = opts.distributed ? await node() : sub;
      const ch = channel('seam');
      const target = { kind: 'channel' as const, channel: ch };
      await sub.broker.subscribe(target);
      const history: HistoryConfig = { size: 1000, ttlMs: 60_000 };
      const order: StreamPosition[] = [];
      let stop = false;
      const publishing = (async () => {
        for (let i = 0; !stop; i++) {
          order.push(stored(await pub.broker.publish({ target, envelope: envelope(i) }, history)));
          // Let the subscriber's reads and dispatches in between (the memory broker answers at once).
          await new Promise((r) => setImmediate(r));
        }
      })();
      try {
        await waitFor(() => order.length >= 5, 5000, 'the first publications', 5);
        let since = (await sub.broker.history(ch, { limit: 0, config: history })).position;
        const runs: Array<{ since: StreamPosition; seen: LivePoint[]; gap: boolean }> = [];
        const deadline = Date.now() + SEAM_BUDGET_MS;
        while (runs.length < SEAM_RECOVERIES && Date.now() < deadline) {
          const seam = new SubscriptionSeam<Dispatch>();
          const run = { since, seen: [] as LivePoint[], gap: false };
          let live = 0;
          const take = (d: Dispatch) => {
            run.seen.push(livePoint(d)!);
            live++;
          };
          sub.rec.tap = (d) => {
            if (d.target.kind !== 'channel' || d.target.channel !== ch) return;
            const verdict = seam.offer(livePoint(d), d);
            if (verdict === 'deliver') take(d);
            else if (verdict === 'gap') run.gap = true;
          };
          const h = await sub.broker.history(ch, { since, limit: 1000, config: history });
          expect(h.complete, `recovery ${runs.length} from ${JSON.stringify(since)}`).toBe(true);
          run.seen.push(...h.entries.map((e) => ({ offset: e.offset, epoch: h.position.epoch })));
          const settled = seam.settle(h.position);
          run.gap ||= settled.gap;
          for (const d of settled.deliver) take(d);
          // Stay for a few live publications past the seam, then "disconnect".
          await waitFor(() => run.gap || live >= 3, 3000, `live publications past the seam in recovery ${runs.length}`, 1);
          sub.rec.tap = undefined;
          runs.push(run);
          expect(run.gap, `recovery ${runs.length - 1}: a gap at the seam`).toBe(false);
          since = run.seen.length > 0 ? { offset: run.seen[run.seen.length - 1]!.offset, epoch: run.seen[run.seen.length - 1]!.epoch } : h.position;
        }
        stop = true;
        await publishing;
        expect(runs.length).toBeGreaterThanOrEqual(SEAM_MIN_RECOVERIES);
        // The channel's order is the publisher's (it publishes one at a time): each recovery must see
        // a run of it that starts right after its `since`, without a repeat or a hole.
        const index = new Map(order.map((p, i) => [`${p.epoch}/${p.offset}`, i]));
        for (const [r, run] of runs.entries()) {
          const first = index.get(`${run.since.epoch}/${run.since.offset}`) ?? -1;
          const got = run.seen.map((p) => index.get(`${p.epoch}/${p.offset}`));
          expect(got, `recovery ${r} from ${JSON.stringify(run.since)}: ${JSON.stringify(run.seen.map((p) => p.offset))}`).toEqual(got.map((_, i) => first + 1 + i));
        }
      } finally {
        stop = true;
        await publishing.catch(() => undefined);
      }
    }, SEAM_BUDGET_MS + 15_000);
  });
}
