/**
 * The engine conformance suites on NATS: broker (core subjects for delivery, JetStream for
 * history), presence (JetStream KV) and inbox (a JetStream stream).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NatsBroker } from '../../src/server/engine/nats-broker.js';
import { NatsInbox } from '../../src/server/engine/nats-inbox.js';
import { NatsPresence } from '../../src/server/engine/nats-presence.js';
import { Recorder, runBrokerSuite } from './broker.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { dropNatsStreams, NATS_URL, requireNats, uniquePrefix } from './services.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_test_');
const PRESENCE_TTL_MS = 1000;
const INBOX_RETAIN_MS = 600_000;

describe.skipIf(!natsUp)('NATS engines', () => {
  afterAll(() => dropNatsStreams(prefix));

  runBrokerSuite(
    'nats',
    async () => {
      const broker = new NatsBroker({ servers: [NATS_URL], prefix });
      return { broker, cleanup: () => broker.close() };
    },
    { distributed: true },
  );

  runPresenceSuite(
    'nats',
    async () => {
      const presence = await NatsPresence.connect({ servers: [NATS_URL], prefix, ttlMs: PRESENCE_TTL_MS });
      return { presence, cleanup: () => presence.close(), crash: () => presence.abandon() };
    },
    { distributed: true, ttlMs: PRESENCE_TTL_MS },
  );

  runInboxSuite(
    'nats',
    async () => {
      const inbox = await NatsInbox.connect({ servers: [NATS_URL], prefix, retainMs: INBOX_RETAIN_MS });
      return { inbox, cleanup: () => inbox.close() };
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
