/**
 * The asking node's own part of a control command (engine/control-bus.ts): answered in process,
 * never over the bus. A lone node's broadcast publishes no command at all and is complete while
 * the broker refuses every publish; with peers, only the peers' part travels, and the node does
 * not run its own command a second time when the broadcast comes back to it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ALL, BusControlPlane, type ControlBus } from '../../src/engine/control-bus.js';
import type { ControlCommand } from '../../src/engine/control.js';
import { MemoryControlBus } from '../../src/engine/memory/control.js';
import { waitFor } from '../helpers/wait.js';

const TIMING = { heartbeatMs: 250, nodeTtlMs: 1500 };

/** A memory bus that records what is published and can be made to refuse every publish. */
class WatchedBus implements ControlBus {
  readonly inner = new MemoryControlBus();
  readonly published: Array<{ channel: string; t: string }> = [];
  refusing = false;

  async publish(channel: string, payload: string): Promise<void> {
    if (this.refusing) throw new Error('broker away');
    this.published.push({ channel, t: (JSON.parse(payload) as { t: string }).t });
    await this.inner.publish(channel, payload);
  }

  subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>> {
    return this.inner.subscribe(channel, onMessage);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  commands(): number {
    return this.published.filter((m) => m.t === 'cmd' || m.t === 'reply').length;
  }
}

const planes: BusControlPlane[] = [];
afterEach(async () => {
  for (const p of planes.splice(0)) await p.close();
});

async function join(bus: WatchedBus, node: string): Promise<{ ran: ControlCommand[]; control: Awaited<ReturnType<BusControlPlane['join']>> }> {
  const plane = new BusControlPlane(bus, TIMING, () => undefined);
  planes.push(plane);
  const ran: ControlCommand[] = [];
  const control = await plane.join({
    node,
    handle: (cmd) => {
      ran.push(cmd);
      return node;
    },
    describe: () => ({ version: '1', startedAt: Date.now(), connections: 0 }),
  });
  return { ran, control };
}

describe('control plane: the asking node answers its own part in process', () => {
  it('a lone node publishes no command, and answers in full while the bus refuses publishes', async () => {
    const bus = new WatchedBus();
    const { control, ran } = await join(bus, 'solo');
    const before = bus.commands();
    expect(await control.broadcast({ op: 'stats' }, 1000)).toEqual({ replies: [{ node: 'solo', result: 'solo' }], replied: ['solo'], missing: [] });
    expect(await control.send('solo', { op: 'one' }, 1000)).toMatchObject({ replied: ['solo'], missing: [] });
    expect(bus.commands() - before).toBe(0);

    bus.refusing = true;
    expect(await control.broadcast({ op: 'stats' }, 300)).toMatchObject({ replied: ['solo'], missing: [] });
    expect(ran.map((c) => c.op)).toEqual(['stats', 'one', 'stats']);
  });

  it('with peers, one command and a reply per peer travel; each node runs the command once', async () => {
    const bus = new WatchedBus();
    const a = await join(bus, 'a');
    const b = await join(bus, 'b');
    const c = await join(bus, 'c');
    await waitFor(() => a.control.nodes().length === 3, 3000, 'a hears b and c');
    const before = bus.published.length;
    expect(await a.control.broadcast({ op: 'stats' }, 1000)).toMatchObject({ replied: ['a', 'b', 'c'], missing: [] });
    const traffic = bus.published.slice(before).filter((m) => m.t === 'cmd' || m.t === 'reply');
    expect(traffic).toEqual([
      { channel: ALL, t: 'cmd' },
      { channel: 'a', t: 'reply' },
      { channel: 'a', t: 'reply' },
    ]);
    // The broadcast reached 'a' too; a second run would show here once the bus has delivered it.
    expect(await a.control.send('b', { op: 'barrier' }, 1000)).toMatchObject({ replied: ['b'] });
    expect([a.ran, b.ran, c.ran].map((r) => r.filter((x) => x.op === 'stats').length)).toEqual([1, 1, 1]);

    bus.refusing = true;
    expect(await a.control.broadcast({ op: 'stats' }, 300)).toMatchObject({ replied: ['a'], missing: ['b', 'c'] });
  });
});
