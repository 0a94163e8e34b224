/**
 * The engine-health counters the dashboard and the HeraldEngineFailing alert read: a publish the
 * engine cannot take is answered 503 broker_unavailable and counted; a broker gap is counted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBroker } from '../src/engine/memory/broker.js';
import type { HeraldServer } from '../src/server.js';
import { api, startTestServer } from './helpers/server.js';

/** A memory broker whose store has failed: every publish throws. */
class FailingBroker extends MemoryBroker {
  override async publish(): Promise<never> {
    throw new Error('disk full');
  }
}

const servers: HeraldServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function counter(server: HeraldServer, name: string): Promise<number> {
  const text = await server.node.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('engine health metrics', () => {
  it('counts publishes the engine refused, each answered 503 broker_unavailable', async () => {
    const server = await startTestServer({}, { broker: new FailingBroker() });
    servers.push(server);
    expect(await counter(server, 'herald_engine_publish_failures_total')).toBe(0);
    for (let i = 0; i < 3; i++) {
      const r = await api(server, 'POST', '/api/v1/publish', { channel: 'news', eventType: 'x', payload: i });
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('broker_unavailable');
    }
    expect(await counter(server, 'herald_engine_publish_failures_total')).toBe(3);
  });

  it('counts broker gaps', async () => {
    const server = await startTestServer();
    servers.push(server);
    server.node.onBrokerGap();
    server.node.onBrokerGap();
    expect(await counter(server, 'herald_broker_gaps_total')).toBe(2);
  });
});
