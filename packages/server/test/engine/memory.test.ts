/** The engine conformance suites on the in-process implementations. */
import { MemoryBroker } from '../../src/engine/memory/broker.js';
import { MemoryInbox } from '../../src/engine/memory/inbox.js';
import { MemoryPresence } from '../../src/engine/memory/presence.js';
import { IdempotencyWindow } from '../../src/engine/memory/idempotency.js';
import { createMemoryEngines } from '../../src/engine/memory/index.js';
import { resolveConfig } from '../../src/config.js';
import { runBrokerSuite } from './broker.suite.js';
import { runIdempotencySuite } from './idempotency.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { runControlSuite } from './control.suite.js';
import { runChannelPresenceSuite } from './channel-presence.suite.js';
import { MemoryChannelPresenceStore } from '../../src/engine/memory/channel-presence.js';
import { describe, expect, it } from 'vitest';
import { ALL, BusControlPlane } from '../../src/engine/control-bus.js';
import { MemoryControlBus } from '../../src/engine/memory/control.js';

const WINDOW_MS = 120_000;
const MAX_KEYS = 1_000_000;

runBrokerSuite(
  'memory',
  async ({ idempotencyWindowMs = WINDOW_MS }) => {
    const broker = new MemoryBroker(new IdempotencyWindow(idempotencyWindowMs, MAX_KEYS));
    const inside = broker as unknown as { streams: Map<string, unknown>; historyConfigs: Map<string, unknown> };
    const named = (m: Map<string, unknown>, part: string) => [...m.keys()].filter((k) => k.includes(part)).sort();
    return { broker, cleanup: () => broker.close(), footprint: async (part) => [named(inside.streams, part), named(inside.historyConfigs, part)] };
  },
  { distributed: false },
);

runPresenceSuite(
  'memory',
  async () => {
    const presence = new MemoryPresence();
    return { presence, cleanup: () => presence.close() };
  },
  { distributed: false },
);

runInboxSuite(
  'memory',
  async () => {
    const inbox = new MemoryInbox(new IdempotencyWindow(WINDOW_MS, MAX_KEYS));
    return { inbox, cleanup: () => inbox.close() };
  },
  { distributed: false },
);

runIdempotencySuite(
  'memory',
  async ({ idempotencyWindowMs = WINDOW_MS }) => {
    // The engine factory's wiring: broker and inbox share one in-process window.
    const engines = createMemoryEngines(resolveConfig({ engine: { type: 'memory' }, publish: { idempotencyWindowMs } }));
    return {
      broker: engines.broker,
      inbox: engines.inbox,
      cleanup: async () => {
        await engines.broker.close();
        await engines.inbox.close();
      },
    };
  },
  { distributed: false },
);

const CONTROL = { heartbeatMs: 250, nodeTtlMs: 1500 };

runControlSuite(
  'memory',
  async () => {
    const plane = new BusControlPlane(new MemoryControlBus(), CONTROL);
    return { plane, cleanup: () => plane.close() };
  },
  { distributed: false, ...CONTROL },
);

describe('control bus protocol', () => {
  it('drops malformed messages and keeps answering', async () => {
    const bus = new MemoryControlBus();
    const errors: Error[] = [];
    const plane = new BusControlPlane(bus, CONTROL, (err) => errors.push(err));
    const node = await plane.join({ node: 'n1', handle: () => 'ok', describe: () => ({ version: '1', startedAt: Date.now(), connections: 0 }) });
    try {
      for (const junk of ['not json', '{"t":"beat"}', '{"t":"reply","id":"x"}', 'null']) await bus.publish(ALL, junk);
      await new Promise((r) => setImmediate(r));
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(await node.broadcast({ op: 'any' }, 1000)).toEqual({ replies: [{ node: 'n1', result: 'ok' }], replied: ['n1'], missing: [] });
      expect(node.nodes().map((n) => n.node)).toEqual(['n1']);
    } finally {
      await plane.close();
    }
  });
});

runChannelPresenceSuite(
  'memory',
  async () => {
    const store = new MemoryChannelPresenceStore({ heartbeatMs: 250, nodeTtlMs: 1500 });
    return { store, cleanup: () => store.close() };
  },
  { distributed: false, heartbeatMs: 250, nodeTtlMs: 1500 },
);
