/** The broker conformance suite on NATS (core subjects for delivery, JetStream for history). */
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { NatsBroker } from '../../src/server/engine/nats-broker.js';
import { Recorder, runBrokerSuite } from './broker.suite.js';
import { NATS_URL, requireNats, uniquePrefix } from './services.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_test_');

describe.skipIf(!natsUp)('NATS engines', () => {
  afterAll(async () => {
    const nc = await connect({ servers: NATS_URL });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(`${prefix}_history`).catch(() => undefined);
    await nc.close();
  });

  runBrokerSuite(
    'nats',
    async () => {
      const broker = new NatsBroker({ servers: [NATS_URL], prefix });
      return { broker, cleanup: () => broker.close() };
    },
    { distributed: true },
  );

  describe('NatsBroker specifics', () => {
    it('fails start-up with an error naming engine.nats.servers when NATS is unreachable', async () => {
      const broker = new NatsBroker({ servers: ['nats://127.0.0.1:1'], prefix });
      await expect(broker.start(new Recorder().handler)).rejects.toThrow(/engine\.nats\.servers=nats:\/\/127\.0\.0\.1:1/);
      await broker.close();
    });

    it('rejects a prefix that cannot be a subject token or stream name', () => {
      expect(() => new NatsBroker({ servers: [NATS_URL], prefix: 'a.b' })).toThrow(/engine\.nats\.prefix/);
    });
  });
});
