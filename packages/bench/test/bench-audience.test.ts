/**
 * The loadgen's idea of who should get what (packages/bench/src/loadgen/audience.ts) against Herald's own
 * routing: the `filter` and `users` scenarios count a delivery as lost when a connection the
 * harness expected to reach did not get it, so the harness's audiences must be Herald's exactly.
 * A HeraldNode with fake transports stands in for the server; each fake connection carries the
 * identity the loadgen's token for connection g would carry.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connectionsOfUser,
  FILTER_CASES,
  filterAudience,
  filterSeqMap,
  tagsOf,
  userCount,
  userName,
  userOfConnection,
} from '../src/loadgen/audience.js';
import { resolveConfig } from 'herald/internal/config.js';
import { HeraldNode } from 'herald/internal/node.js';
import { compileFilter } from 'herald/internal/tag-filter.js';
import { FakeTransport } from '../../server/test/helpers/fake-transport.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
let node: HeraldNode | undefined;

afterEach(async () => {
  await node?.close();
  node = undefined;
});

/** Connections 0…n−1 attached to a fresh node as the loadgen would authenticate them. */
async function connect(n: number, identity: (g: number) => { user: string; tags: Record<string, string> }): Promise<FakeTransport[]> {
  node = new HeraldNode(resolveConfig({ log: { level: 'silent' }, engine: { type: 'memory' } }), pino({ level: 'silent' }));
  await node.start();
  const transports: FakeTransport[] = [];
  for (let g = 0; g < n; g++) {
    const t = new FakeTransport();
    const s = node.attach(t);
    const { user, tags } = identity(g);
    s.authenticate({ ...node.anonymousIdentity(), user, tags });
    await node.activate(s);
    transports.push(t);
  }
  return transports;
}

/** Seqs of the deliveries each transport received. */
function seqsReceived(transports: FakeTransport[]): number[][] {
  return transports.map((t) =>
    t
      .texts()
      .map((text) => JSON.parse(text) as { type: string; message?: { payload?: { seq?: number } } })
      .filter((f) => f.type === 'message')
      .map((f) => f.message!.payload!.seq!),
  );
}

describe('bench audiences', () => {
  it('each filter case matches, by hand, exactly the tag sets Herald’s compiled filter matches', () => {
    for (const c of FILTER_CASES) {
      const herald = compileFilter(c.filter);
      expect(herald.plan, `${JSON.stringify(c.filter)} should use the tag index`).toBeDefined();
      for (let g = 0; g < 48; g++) expect(c.matches(tagsOf(g)), `${JSON.stringify(c.filter)} on ${JSON.stringify(tagsOf(g))}`).toBe(herald.test(tagsOf(g)));
    }
  });

  it('filtered broadcasts reach exactly the expected connections, and each sees its own seqs 1, 2, 3…', async () => {
    const n = 60;
    const transports = await connect(n, (g) => ({ user: `user-${g}`, tags: tagsOf(g) }));
    const publishes = FILTER_CASES.length * 3;
    const okByFilter = FILTER_CASES.map(() => 0);
    for (let seq = 1; seq <= publishes; seq++) {
      const f = (seq - 1) % FILTER_CASES.length;
      await node!.publish({ broadcast: true, filter: FILTER_CASES[f]!.filter, eventType: 'bench', payload: { seq, sentAt: 0 } } as Parameters<HeraldNode['publish']>[0]);
      okByFilter[f]!++;
    }
    await tick();
    const received = seqsReceived(transports);
    let total = 0;
    received.forEach((seqs, g) => {
      const local = seqs.map(filterSeqMap(g));
      expect(local.every((s) => s > 0), `connection ${g} got a publish not meant for it`).toBe(true);
      expect(local).toEqual(local.map((_, i) => i + 1));
      total += seqs.length;
    });
    const expected = okByFilter.reduce((s, ok, f) => s + ok * filterAudience(n, f), 0);
    expect(total).toBe(expected);
    expect(total).toBeGreaterThan(0);
  });

  it('a user publish reaches every device of that user and nobody else', async () => {
    const n = 25;
    const maxDevices = 3;
    const transports = await connect(n, (g) => ({ user: userName(userOfConnection(g, maxDevices)), tags: {} }));
    const users = userCount(n, maxDevices);
    for (let u = 0; u < users; u++) await node!.publish({ user: userName(u), eventType: 'bench', payload: { seq: u + 1, sentAt: 0 } } as Parameters<HeraldNode['publish']>[0]);
    await tick();
    const received = seqsReceived(transports);
    received.forEach((seqs, g) => expect(seqs).toEqual([userOfConnection(g, maxDevices) + 1]));
    for (let u = 0; u < users; u++) expect(received.filter((seqs) => seqs[0] === u + 1).length).toBe(connectionsOfUser(u, n, maxDevices));
  });

  it('user layout: users hold consecutive connections, 1…maxDevices each, and the counts add up', () => {
    for (const maxDevices of [1, 2, 3, 5]) {
      for (const n of [1, 7, 100, 1001]) {
        const users = userCount(n, maxDevices);
        const perUser = new Array<number>(users).fill(0);
        let last = 0;
        for (let g = 0; g < n; g++) {
          const u = userOfConnection(g, maxDevices);
          expect(u).toBeGreaterThanOrEqual(last);
          last = u;
          perUser[u]!++;
        }
        expect(perUser.every((c, u) => c === connectionsOfUser(u, n, maxDevices) && c >= 1 && c <= maxDevices)).toBe(true);
        expect(perUser.reduce((s, c) => s + c, 0)).toBe(n);
      }
    }
  });
});
