/**
 * The engine conformance suites on NATS: broker (core subjects for delivery, JetStream for
 * history), presence (JetStream KV) and inbox (a JetStream stream).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { NatsBroker } from '../../src/engine/nats/broker.js';
import { NatsInbox } from '../../src/engine/nats/inbox.js';
import { NatsPresence } from '../../src/engine/nats/presence.js';
import { freePort } from '../helpers/processes.js';
import { envelope, Recorder, runBrokerSuite } from './broker.suite.js';
import { waitFor, waitForValue } from '../helpers/wait.js';
import { runIdempotencySuite } from './idempotency.suite.js';
import { runInboxSuite } from './inbox.suite.js';
import { runPresenceSuite } from './presence.suite.js';
import { runControlSuite } from './control.suite.js';
import { runChannelPresenceSuite } from './channel-presence.suite.js';
import { NatsChannelPresenceStore } from '../../src/engine/nats/channel-presence.js';
import { BusControlPlane } from '../../src/engine/control-bus.js';
import { NatsControlBus } from '../../src/engine/nats/control.js';
import { dropNatsStreams, NATS_URL, requireNats, uniquePrefix } from './services.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_test_');
const PRESENCE_TTL_MS = 1000;
const INBOX_RETAIN_MS = 600_000;
const CONTROL = { heartbeatMs: 250, nodeTtlMs: 1500 };
const CHANNEL_PRESENCE = { heartbeatMs: 250, nodeTtlMs: 1500 };
const hasNatsServer = spawnSync('nats-server', ['--version']).status === 0;
if (!hasNatsServer) console.warn('!!! nats-server is not on PATH: skipping the NATS-restart test of the NATS presence and inbox');

/**
 * The history stream's state and its consumers: channel names are not readable from subjects (they
 * are tokens), so this is the whole stream's, which reads must leave unchanged.
 */
async function historyFootprint(streamPrefix: string): Promise<unknown> {
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(`${streamPrefix}_history`);
    return { messages: info.state.messages, lastSeq: info.state.last_seq, subjects: info.state.num_subjects, consumers: info.state.consumer_count };
  } finally {
    await nc.close();
  }
}

describe.skipIf(!natsUp)('NATS engines', () => {
  afterAll(() => dropNatsStreams(prefix));

  // A fixture with its own idempotency window gets its own prefix: the window is the streams'.
  const windowPrefixes = new Map<number, string>();
  afterAll(async () => {
    for (const p of windowPrefixes.values()) await dropNatsStreams(p);
  });

  runBrokerSuite(
    'nats',
    async ({ idempotencyWindowMs }) => {
      let own = prefix;
      if (idempotencyWindowMs !== undefined) {
        own = windowPrefixes.get(idempotencyWindowMs) ?? uniquePrefix('herald_test_w_');
        windowPrefixes.set(idempotencyWindowMs, own);
      }
      const broker = new NatsBroker({ servers: [NATS_URL], prefix: own, ...(idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {}) });
      return { broker, cleanup: () => broker.close(), footprint: () => historyFootprint(own) };
    },
    { distributed: true },
  );

  runChannelPresenceSuite(
    'nats',
    async () => {
      const store = await NatsChannelPresenceStore.connect({ servers: [NATS_URL], prefix, timing: CHANNEL_PRESENCE });
      return { store, cleanup: () => store.close() };
    },
    { distributed: true, ...CHANNEL_PRESENCE },
  );

  runPresenceSuite(
    'nats',
    async () => {
      const presence = await NatsPresence.connect({ servers: [NATS_URL], prefix, ttlMs: PRESENCE_TTL_MS });
      return { presence, cleanup: () => presence.close(), crash: () => presence.abandon() };
    },
    { distributed: true, ttlMs: PRESENCE_TTL_MS },
  );

  runControlSuite(
    'nats',
    async () => {
      const bus = await NatsControlBus.connect({ servers: [NATS_URL], prefix });
      const plane = new BusControlPlane(bus, CONTROL);
      return { plane, cleanup: () => plane.close(), crash: () => bus.abandon() };
    },
    { distributed: true, ...CONTROL },
  );

  runInboxSuite(
    'nats',
    async () => {
      const inbox = await NatsInbox.connect({ servers: [NATS_URL], prefix, retainMs: INBOX_RETAIN_MS });
      return { inbox, cleanup: () => inbox.close() };
    },
    { distributed: true },
  );

  runIdempotencySuite(
    'nats',
    async ({ idempotencyWindowMs }) => {
      // The window belongs to the streams and the bucket, so a fixture with its own gets its own prefix.
      let own = prefix;
      if (idempotencyWindowMs !== undefined) {
        own = windowPrefixes.get(idempotencyWindowMs) ?? uniquePrefix('herald_test_w_');
        windowPrefixes.set(idempotencyWindowMs, own);
      }
      const window = idempotencyWindowMs !== undefined ? { idempotencyWindowMs } : {};
      const broker = new NatsBroker({ servers: [NATS_URL], prefix: own, ...window });
      const inbox = await NatsInbox.connect({ servers: [NATS_URL], prefix: own, retainMs: INBOX_RETAIN_MS, ...window });
      return {
        broker,
        inbox,
        cleanup: async () => {
          await broker.close();
          await inbox.close();
        },
      };
    },
    { distributed: true },
  );

  describe('NatsPresence and NatsInbox specifics', () => {
    it('fail to connect with an error naming engine.nats.servers when NATS is unreachable', async () => {
      const servers = ['nats://127.0.0.1:1'];
      await expect(NatsPresence.connect({ servers, prefix, ttlMs: PRESENCE_TTL_MS })).rejects.toThrow(/engine\.nats\.servers=nats:\/\/127\.0\.0\.1:1/);
      await expect(NatsInbox.connect({ servers, prefix, retainMs: INBOX_RETAIN_MS })).rejects.toThrow(/engine\.nats\.servers=nats:\/\/127\.0\.0\.1:1/);
    });

    it('reject a bad prefix, replica count or TTL before connecting', async () => {
      await expect(NatsPresence.connect({ servers: [NATS_URL], prefix: 'a.b', ttlMs: 1000 })).rejects.toThrow(/engine\.nats\.prefix/);
      await expect(NatsInbox.connect({ servers: [NATS_URL], prefix, replicas: 2.5, retainMs: INBOX_RETAIN_MS })).rejects.toThrow(/engine\.nats\.replicas/);
      await expect(NatsPresence.connect({ servers: [NATS_URL], prefix, ttlMs: 0 })).rejects.toThrow(/engine\.nats\.presenceTtlMs/);
    });

    it('the presence bucket takes the TTL of the node that started last', async () => {
      const own = uniquePrefix('herald_ttl_');
      const first = await NatsPresence.connect({ servers: [NATS_URL], prefix: own, ttlMs: 1000 });
      const second = await NatsPresence.connect({ servers: [NATS_URL], prefix: own, ttlMs: 4000 });
      try {
        const nc = await connect({ servers: NATS_URL });
        const info = await (await nc.jetstreamManager()).streams.info(`KV_${own}_presence`);
        await nc.close();
        expect(info.config.max_age).toBe(4000 * 1_000_000);
      } finally {
        await first.close();
        await second.close();
        await dropNatsStreams(own);
      }
    });
  });

  // A private nats-server (free port, temp store) that the test can stop and start again.
  describe.skipIf(!hasNatsServer)('NatsPresence and NatsInbox across a NATS server restart', () => {
    let proc: ChildProcess | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'herald-nats-restart-'));
    afterAll(async () => {
      proc?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    async function startNatsServer(port: number): Promise<void> {
      proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
      await waitFor(
        async () => {
          const nc = await connect({ servers: `nats://127.0.0.1:${port}`, timeout: 500 }).catch(() => undefined);
          if (!nc) return false;
          const ok = await nc.jetstreamManager().then(() => true, () => false);
          await nc.close();
          return ok;
        },
        10_000,
        'the private nats-server to serve JetStream',
        100,
      );
    }

    async function stopNatsServer(): Promise<void> {
      const p = proc!;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }

    it('presence comes back on its own (rebuilt by its node); stored inbox entries are still there', async () => {
      const port = await freePort();
      await startNatsServer(port);
      const servers = [`nats://127.0.0.1:${port}`];
      const presence = await NatsPresence.connect({ servers, prefix, ttlMs: 3000 });
      const inbox = await NatsInbox.connect({ servers, prefix, retainMs: INBOX_RETAIN_MS });
      try {
        const info = { connectionId: 'c-1', user: 'restart-user', node: 'n1', connectedAt: Date.now(), remoteAddress: '127.0.0.1', tags: {}, channels: ['x'] };
        await presence.add(info);
        const limits = { maxMessages: 100, maxAgeMs: 600_000 };
        const stored = await inbox.append('restart-user', { envelope: envelope('kept') }, limits);

        await stopNatsServer();
        await startNatsServer(port);

        // The memory bucket is gone with the server; the node recreates it and writes its entries back.
        const listed = await waitForValue(
          async () => {
            const found = await presence.userConnections('restart-user').catch(() => []);
            return found.length > 0 ? found : undefined;
          },
          15_000,
          'the presence entry to be written back',
          100,
        );
        expect(listed).toEqual([info]);
        const after = await inbox.list('restart-user', 0, 10, limits);
        expect(after.entries.map((e) => [e.seq, e.envelope.payload])).toEqual([[stored.seq, 'kept']]);
        expect((await inbox.append('restart-user', { envelope: envelope('next') }, limits)).seq).toBeGreaterThan(stored.seq);
      } finally {
        await presence.close();
        await inbox.close();
      }
    }, 40_000);
  });

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
