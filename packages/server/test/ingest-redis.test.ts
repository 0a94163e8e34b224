/**
 * Stream ingestion from a Redis Stream consumer group into real Herald nodes (engine redis),
 * checked with real WebSocket clients: delivery, dead letters, a crash between publish and XACK
 * (ingestor-only and whole-node), claiming a dead consumer's entries, and temporary failures.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../src/errors.js';
import { RedisStreamIngestor, type RedisStreamIngestorOptions } from '../src/ingest/redis-stream-ingestor.js';
import type { HeraldServer } from '../src/server.js';
import { REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { messagesBesideMarkers, publishMarker, startTestServer, TestSocket, untilUserReachable } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const prefix = uniquePrefix('herald-ingest-');
const engine = { type: 'redis', redis: { url: REDIS_URL, prefix, presenceTtlMs: 3000 } };

let n = 0;
const streamName = () => `${prefix}:in:${++n}`;
let seq = 0;
const envelope = (payload: unknown, msgId = `m-${prefix}-${++seq}`) => ({ msgId, timestamp: Date.now(), source: 'orders-svc', eventType: 'order.created', version: '1.0', payload });

async function pendingCount(r: Redis, stream: string, group = 'herald'): Promise<number> {
  const [count] = (await r.xpending(stream, group)) as [number, ...unknown[]];
  return Number(count);
}

async function counterValue(server: HeraldServer, outcome: string): Promise<number> {
  const metric = server.node.metrics.registry.getSingleMetric('herald_ingest_messages_total');
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => v.labels.outcome === outcome).reduce((a, v) => a + v.value, 0);
}

describe.skipIf(!redisUp)('ingest from a Redis Stream', () => {
  let r: Redis;
  const servers: HeraldServer[] = [];
  const sockets: TestSocket[] = [];
  const track = <T extends HeraldServer | TestSocket>(x: T): T => ((x instanceof TestSocket ? sockets.push(x) : servers.push(x as HeraldServer)), x);

  beforeAll(() => {
    r = new Redis(REDIS_URL);
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all(servers.map((s) => s.close()));
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
    await r.quit();
  });

  function ingestor(server: HeraldServer, stream: string, extra: Partial<RedisStreamIngestorOptions> = {}): RedisStreamIngestor {
    return new RedisStreamIngestor(
      server.node,
      { url: REDIS_URL, stream, group: 'herald', consumer: server.node.name, batch: 10, blockMs: 200, claimIdleMs: 0, configKey: 'test', ...extra },
      server.node.log,
    );
  }

  it('publishes XADDed entries to channel, user and broadcast audiences, then leaves nothing pending', async () => {
    const stream = streamName();
    const dead = `${stream}:dead`;
    const server = track(await startTestServer({ server: { nodeName: 'ingest-a' }, engine, ingest: { redisStreams: [{ stream, deadLetterStream: dead, blockMs: 200 }] } }));
    const reader = track(await TestSocket.connect(server, { sub: 'reader' }));
    await reader.subscribe('orders:eu');
    const alice = track(await TestSocket.connect(server, { sub: 'alice' }));
    await untilUserReachable(server, alice, 'alice');
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:eu', envelope: envelope({ i: 1 }) }));
    await r.xadd(stream, '*', 'message', JSON.stringify({ user: 'alice', delivery: 'at-most-once', envelope: envelope({ i: 2 }) }));
    await r.xadd(stream, '*', 'message', JSON.stringify({ broadcast: true, envelope: envelope({ i: 3 }) }));
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:eu', filter: { tag: 'region', op: 'eq', value: 'nowhere' }, envelope: envelope({ i: 4 }) }));

    const ch = await reader.next((f) => f.type === 'message' && f.target === 'channel');
    expect(ch).toMatchObject({ channel: 'orders:eu', message: { source: 'orders-svc', eventType: 'order.created', version: '1.0', payload: { i: 1 } } });
    expect(await alice.next((f) => f.type === 'message' && f.target === 'user' && f.message.eventType !== 'ready')).toMatchObject({ message: { payload: { i: 2 } } });
    expect(await reader.next((f) => f.type === 'message' && f.target === 'broadcast')).toMatchObject({ message: { payload: { i: 3 } } });
    await waitFor(async () => (await pendingCount(r, stream)) === 0, 5000, 'nothing pending');
    // The filtered one matched nobody: published (counted) but not delivered.
    await publishMarker(server, reader, { channel: 'orders:eu' });
    expect(messagesBesideMarkers(reader).map((m) => m.message.payload.i)).toEqual([1, 3]);
    expect(await counterValue(server, 'published')).toBe(4);
    expect(await r.xlen(dead)).toBe(0);
    // Defaults: group "herald", consumer named after the node.
    const consumers = (await r.xinfo('CONSUMERS', stream, 'herald')) as unknown[][];
    expect(consumers.map((c) => c[1])).toEqual(['ingest-a']);
  });

  it('dead-letters and acknowledges invalid entries, and keeps going', async () => {
    const stream = streamName();
    const dead = `${stream}:dead`;
    const server = track(await startTestServer({ server: { nodeName: 'ingest-b' }, engine, ingest: { redisStreams: [{ stream, deadLetterStream: dead, blockMs: 200 }] } }));
    const reader = track(await TestSocket.connect(server, { sub: 'reader' }));
    await reader.subscribe('orders:dl');
    const bad = [
      ['message', JSON.stringify({ channel: 'orders:dl', envelope: { ...envelope(1), eventType: 'has spaces' } })],
      ['message', JSON.stringify({ channel: 'orders:dl', envelope: { timestamp: 1, source: 's', eventType: 'e', version: '1', payload: null } })],
      ['message', '{not json'],
      ['other', 'no message field'],
      ['message', JSON.stringify({ channel: 'bad channel!', envelope: envelope(2) })],
      ['message', JSON.stringify({ channel: 'orders:dl', user: 'x', envelope: envelope(3) })],
    ];
    for (const [k, v] of bad) await r.xadd(stream, '*', k!, v!);
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:dl', envelope: envelope('ok') }));

    expect(await reader.next((f) => f.type === 'message')).toMatchObject({ message: { payload: 'ok' } });
    await waitFor(async () => (await r.xlen(dead)) === bad.length, 5000, 'dead letters');
    expect(await pendingCount(r, stream)).toBe(0);
    const letters = (await r.xrange(dead, '-', '+')).map(([, f]) => Object.fromEntries(chunk(f)));
    expect(letters.map((l) => l.error)).toEqual([ErrorCode.INVALID_ENVELOPE, ErrorCode.INVALID_ENVELOPE, ErrorCode.INVALID_JSON, ErrorCode.BAD_REQUEST, ErrorCode.INVALID_CHANNEL, ErrorCode.BAD_REQUEST]);
    expect(letters[0]).toMatchObject({ stream, group: 'herald', consumer: 'ingest-b', message: bad[0]![1] });
    expect(letters[0]!.reason).toMatch(/envelope\.eventType/);
    expect(await counterValue(server, 'invalid')).toBe(bad.length);
    expect(await counterValue(server, 'dead_lettered')).toBe(bad.length);
    await publishMarker(server, reader, { channel: 'orders:dl' });
    expect(messagesBesideMarkers(reader)).toHaveLength(1);
  });

  it('an ingestor that dies between publish and XACK: the entry is re-read on restart and delivered once', async () => {
    const stream = streamName();
    const server = track(await startTestServer({ server: { nodeName: 'ingest-c' }, engine }));
    const reader = track(await TestSocket.connect(server, { sub: 'reader' }));
    await reader.subscribe('orders:crash');
    for (const target of [{ channel: 'orders:crash' }, { broadcast: true }]) {
      const first = ingestor(server, stream, { hooks: { beforeAck: () => Promise.reject(new Error('simulated crash before XACK')) } });
      await first.start();
      await r.xadd(stream, '*', 'message', JSON.stringify({ ...target, envelope: envelope(target) }));
      await first.done; // the hook "crashed" it right after publish
      await first.stop();
      await reader.next((f) => f.type === 'message');
      expect(await pendingCount(r, stream)).toBe(1); // published but never acknowledged

      const second = ingestor(server, stream);
      await second.start();
      await waitFor(async () => (await pendingCount(r, stream)) === 0, 5000, 'the redelivered entry acknowledged');
      await second.stop();
    }
    // Channel messages and broadcasts travel apart: one marker down each path.
    await publishMarker(server, reader, { channel: 'orders:crash' });
    await publishMarker(server, reader, { broadcast: true });
    expect(messagesBesideMarkers(reader).map((m) => m.target)).toEqual(['channel', 'broadcast']); // once each
    expect(await counterValue(server, 'duplicate')).toBe(2);
  });

  it('a whole node that dies between publish and XACK: its restart finds the channel message in history and does not publish it again', async () => {
    const stream = streamName();
    const stable = track(await startTestServer({ server: { nodeName: 'ingest-stable' }, engine }));
    const reader = track(await TestSocket.connect(stable, { sub: 'reader' }));
    await reader.subscribe('orders:node-crash');
    const doomed = await startTestServer({ server: { nodeName: 'ingest-d' }, engine });
    const crashing = ingestor(doomed, stream, { hooks: { beforeAck: () => Promise.reject(new Error('simulated crash before XACK')) } });
    await crashing.start();
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:node-crash', envelope: envelope('once') }));
    await crashing.done;
    await crashing.stop();
    await doomed.close(); // its in-memory idempotency window is gone with it
    expect(await reader.next((f) => f.type === 'message')).toMatchObject({ message: { payload: 'once' } });
    expect(await pendingCount(r, stream)).toBe(1);

    // The same node name comes back (as after a restart) with the ingest configured.
    const again = track(await startTestServer({ server: { nodeName: 'ingest-d' }, engine, ingest: { redisStreams: [{ stream, blockMs: 200 }] } }));
    await waitFor(async () => (await pendingCount(r, stream)) === 0, 5000, 'pending re-read and acknowledged');
    expect(await counterValue(again, 'duplicate')).toBe(1);
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:node-crash', envelope: envelope('next') }));
    await reader.next((f) => f.type === 'message' && f.message.payload === 'next');
    expect(reader.messages().map((m) => m.message.payload)).toEqual(['once', 'next']);
  });

  it('claims entries a dead consumer left pending (XAUTOCLAIM)', async () => {
    const stream = streamName();
    const server = track(await startTestServer({ server: { nodeName: 'ingest-e' }, engine }));
    const reader = track(await TestSocket.connect(server, { sub: 'reader' }));
    await reader.subscribe('orders:claim');
    await r.xgroup('CREATE', stream, 'herald', '0', 'MKSTREAM');
    await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:claim', envelope: envelope('orphan') }));
    // A consumer on a node that then died: it read the entry and never acknowledged it.
    await r.xreadgroup('GROUP', 'herald', 'dead-node', 'COUNT', 10, 'STREAMS', stream, '>');
    expect(await pendingCount(r, stream)).toBe(1);
    const ing = ingestor(server, stream, { claimIdleMs: 300 });
    await ing.start();
    expect(await reader.next((f) => f.type === 'message', 5000)).toMatchObject({ message: { payload: 'orphan' } });
    await waitFor(async () => (await pendingCount(r, stream)) === 0, 5000, 'claimed entry acknowledged');
    await ing.stop();
  });

  it('a temporary publish failure leaves the entry pending; it is published later, in order, once', async () => {
    const stream = streamName();
    const server = track(await startTestServer({ server: { nodeName: 'ingest-f' }, engine }));
    const reader = track(await TestSocket.connect(server, { sub: 'reader' }));
    await reader.subscribe('orders:retry');
    const real = server.node.publish.bind(server.node);
    let failures = 0;
    const spy = vi.spyOn(server.node, 'publish').mockImplementation(async (req) => {
      if (req.payload === 2 && failures < 3) {
        failures++;
        throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
      }
      return real(req);
    });
    const ing = ingestor(server, stream);
    await ing.start();
    for (let i = 1; i <= 4; i++) await r.xadd(stream, '*', 'message', JSON.stringify({ channel: 'orders:retry', envelope: envelope(i) }));
    await reader.waitMessages(4, 8000);
    await waitFor(async () => (await pendingCount(r, stream)) === 0, 5000, 'all acknowledged');
    await ing.stop();
    spy.mockRestore();
    await publishMarker(server, reader, { channel: 'orders:retry' });
    expect(failures).toBe(3);
    expect(messagesBesideMarkers(reader).map((m) => m.message.payload)).toEqual([1, 2, 3, 4]);
    expect(await counterValue(server, 'retry')).toBe(3);
  });

  it('fails start-up naming the config entry when the stream\'s Redis is unreachable', async () => {
    await expect(startTestServer({ engine, ingest: { redisStreams: [{ stream: 'x', url: 'redis://127.0.0.1:1' }] } })).rejects.toThrow(/ingest\.redisStreams\[0\].*127\.0\.0\.1:1/);
  });

});

function chunk(fields: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < fields.length; i += 2) out.push([fields[i]!, fields[i + 1]!]);
  return out;
}
