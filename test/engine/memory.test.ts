/** The engine conformance suites on the in-process implementations. */
import { MemoryBroker } from '../../src/server/engine/memory-broker.js';
import { MemoryInbox } from '../../src/server/engine/memory-inbox.js';
import { MemoryPresence } from '../../src/server/engine/memory-presence.js';
import { runBrokerSuite } from './broker.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';

runBrokerSuite(
  'memory',
  async () => {
    const broker = new MemoryBroker();
    return { broker, cleanup: () => broker.close() };
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
    const inbox = new MemoryInbox();
    return { inbox, cleanup: () => inbox.close() };
  },
  { distributed: false },
);
