/**
 * The ControlPlane contract, run against every implementation. Each call of `create` is one
 * node's engine; several members may also join one plane (nodes sharing one engine). Distributed
 * implementations' planes reach each other; on memory and SQLite a plane is one process.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '@herald/protocol';
import type { ControlCommand, ControlNode, ControlPlane } from '../../src/engine/control.js';
import { HeraldError } from '../../src/errors.js';
import { SKIP_ONE_NODE } from './services.js';
import { pause, waitFor } from '../helpers/wait.js';

export interface ControlFixture {
  plane: ControlPlane;
  cleanup: () => Promise<void>;
  /** Simulates SIGKILL: the plane's connections drop without a goodbye. */
  crash?: () => Promise<void>;
}

export interface ControlSuiteOptions {
  distributed: boolean;
  /** The timing the fixture's planes were created with. */
  heartbeatMs: number;
  nodeTtlMs: number;
}

type Member = { control: ControlNode; ran: ControlCommand[] };

/** Polls `cond` until it holds; throws after `timeoutMs`. */
const until = (cond: () => boolean, timeoutMs: number): Promise<void> => waitFor(cond, timeoutMs, 'every member listed');

export function runControlSuite(name: string, create: () => Promise<ControlFixture>, opts: ControlSuiteOptions): void {
  describe(`ControlPlane conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function plane(): Promise<ControlFixture> {
      const f = await create();
      cleanups.push(f.cleanup);
      return f;
    }

    /** Joins a member that answers `who` with its name and records every command it ran. */
    async function member(p: ControlPlane, node: string, connections = 0): Promise<Member> {
      const ran: ControlCommand[] = [];
      const control = await p.join({
        node,
        handle: (cmd) => {
          ran.push(cmd);
          if (cmd.op === 'fail') throw new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `not on ${node}`);
          // A node that takes longer than any caller waits: deliberately slow.
          if (cmd.op === 'slow') return pause(3000).then(() => node);
          return { node, args: cmd.args };
        },
        describe: () => ({ version: '9.9.9', startedAt: Date.now() - 5000, connections }),
      });
      cleanups.push(() => control.leave());
      return { control, ran };
    }

    const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const tag = () => randomUUID().slice(0, 8);

    it('a lone node: broadcast and send reach it; it lists itself', async () => {
      const { plane: p } = await plane();
      const n = `solo-${tag()}`;
      const { control, ran } = await member(p, n, 3);
      const all = await control.broadcast({ op: 'echo', args: { x: 1 } }, 1000);
      expect(all).toEqual({ replies: [{ node: n, result: { node: n, args: { x: 1 } } }], replied: [n], missing: [] });
      const one = await control.send(n, { op: 'echo' }, 1000);
      expect(one.replied).toEqual([n]);
      expect(ran).toHaveLength(2);
      const [self] = control.nodes();
      expect(self).toMatchObject({ node: n, version: '9.9.9', connections: 3 });
      expect(self!.uptimeSeconds).toBeGreaterThanOrEqual(4);
    });

    it('members sharing one plane: broadcast collects every reply, send reaches only the one named', async () => {
      const { plane: p } = await plane();
      const ns = names(`shared-${tag()}`, 3);
      const ms: Member[] = [];
      for (const n of ns) ms.push(await member(p, n));
      await until(() => ms.every((m) => m.control.nodes().length === 3), 3000);
      const all = await ms[0]!.control.broadcast({ op: 'echo' }, 2000);
      expect(all.replied).toEqual(ns);
      expect(all.missing).toEqual([]);
      expect(all.replies.map((r) => (r.result as { node: string }).node)).toEqual(ns);
      const one = await ms[0]!.control.send(ns[2]!, { op: 'only' }, 2000);
      expect(one).toMatchObject({ replied: [ns[2]], missing: [] });
      expect(ms.map((m) => m.ran.filter((c) => c.op === 'only').length)).toEqual([0, 0, 1]);
    });

    it('a handler\'s error comes back as the reply\'s error; an unknown node is missing at once', async () => {
      const { plane: p } = await plane();
      const n = `err-${tag()}`;
      const { control } = await member(p, n);
      const g = await control.send(n, { op: 'fail' }, 1000);
      expect(g.replies).toEqual([{ node: n, error: expect.objectContaining({ code: 'connection_not_found', message: `not on ${n}` }) }]);
      const t0 = Date.now();
      expect(await control.send('nobody-here', { op: 'echo' }, 5000)).toEqual({ replies: [], replied: [], missing: ['nobody-here'] });
      expect(Date.now() - t0).toBeLessThan(2500);
    });

    it('a node that does not answer in time is missing, and the answer comes within the bound', async () => {
      const { plane: p } = await plane();
      const n = `slow-${tag()}`;
      const { control } = await member(p, n);
      const t0 = Date.now();
      const g = await control.broadcast({ op: 'slow' }, 300);
      const took = Date.now() - t0;
      expect(g).toEqual({ replies: [], replied: [], missing: [n] });
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(2000);
    });

    it('a member that leaves is gone at once for the others', async () => {
      const { plane: p } = await plane();
      const [a, b] = names(`leave-${tag()}`, 2) as [string, string];
      const ma = await member(p, a);
      const mb = await member(p, b);
      await until(() => ma.control.nodes().length === 2, 3000);
      await mb.control.leave();
      await until(() => ma.control.nodes().length === 1, 1000);
      expect(ma.control.nodes().map((x) => x.node)).toEqual([a]);
      expect((await ma.control.broadcast({ op: 'echo' }, 1000)).replied).toEqual([a]);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'three engines: broadcast reaches every node, send reaches only that node', async () => {
      const ns = names(`dist-${tag()}`, 3);
      const ms: Member[] = [];
      for (const n of ns) ms.push(await member((await plane()).plane, n, ns.indexOf(n)));
      await until(() => ms.every((m) => m.control.nodes().length === 3), 3000);
      expect(ms[1]!.control.nodes().map((x) => [x.node, x.connections, x.version])).toEqual(ns.map((n, i) => [n, i, '9.9.9']));
      const all = await ms[1]!.control.broadcast({ op: 'echo', args: { k: 'v' } }, 2000);
      expect(all).toMatchObject({ replied: ns, missing: [] });
      expect(all.replies.map((r) => r.result)).toEqual(ns.map((n) => ({ node: n, args: { k: 'v' } })));
      const one = await ms[2]!.control.send(ns[0]!, { op: 'only' }, 2000);
      expect(one).toMatchObject({ replied: [ns[0]], missing: [] });
      // A broadcast from the same sender, answered by everyone, comes after the send on every
      // member's bus: had 'only' reached another member, it would have run before this.
      expect(await ms[2]!.control.broadcast({ op: 'barrier' }, 2000)).toMatchObject({ replied: ns, missing: [] });
      expect(ms.map((m) => m.ran.filter((c) => c.op === 'only').length)).toEqual([1, 0, 0]);
    });

    it.skipIf(!opts.distributed)(SKIP_ONE_NODE + 'heartbeats keep a node live; a crashed node makes answers partial, then expires after the TTL', async () => {
      const ns = names(`crash-${tag()}`, 3);
      const fixtures = [await plane(), await plane(), await plane()];
      const ms: Member[] = [];
      for (let i = 0; i < 3; i++) ms.push(await member(fixtures[i]!.plane, ns[i]!));
      await until(() => ms.every((m) => m.control.nodes().length === 3), 3000);
      const firstBeat = ms[0]!.control.nodes().find((x) => x.node === ns[1])!.lastHeartbeat;
      // Longer than the TTL: live nodes stay listed because their heartbeats refresh them.
      await pause(opts.nodeTtlMs + opts.heartbeatMs); // time past the TTL is what this checks
      const later = ms[0]!.control.nodes();
      expect(later.map((x) => x.node)).toEqual(ns);
      expect(later.find((x) => x.node === ns[1])!.lastHeartbeat).toBeGreaterThan(firstBeat);

      expect(fixtures[2]!.crash).toBeTypeOf('function');
      await fixtures[2]!.crash!();
      const t0 = Date.now();
      const partial = await ms[0]!.control.broadcast({ op: 'echo' }, 500);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(partial).toMatchObject({ replied: [ns[0], ns[1]], missing: [ns[2]] });
      expect(await ms[1]!.control.send(ns[2]!, { op: 'echo' }, 300)).toMatchObject({ replied: [], missing: [ns[2]] });

      // Each node expires it on its own timer: wait for the sender's view, not only another node's.
      await until(() => ms[0]!.control.nodes().length === 2 && ms[1]!.control.nodes().length === 2, opts.nodeTtlMs + opts.heartbeatMs * 2 + 1000);
      expect(ms[0]!.control.nodes().map((x) => x.node)).toEqual([ns[0], ns[1]]);
      // Once gone, it is no longer waited for: the answer is complete, well before the bound.
      const t1 = Date.now();
      expect(await ms[1]!.control.broadcast({ op: 'echo' }, 10_000)).toMatchObject({ replied: [ns[0], ns[1]], missing: [] });
      expect(Date.now() - t1).toBeLessThan(5000);
    });
  });
}
