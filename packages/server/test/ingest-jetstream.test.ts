/**
 * Stream ingestion from a NATS JetStream durable pull consumer into a real Herald, checked with
 * real WebSocket clients: delivery, terminated invalid messages, a crash between publish and ack,
 * and temporary failures (NAK with delay).
 */
import { AckPolicy, connect, DeliverPolicy, nanos, type JetStreamManager, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../src/errors.js';
import { JetStreamIngestor, type JetStreamIngestorOptions } from '../src/ingest/jetstream-ingestor.js';
import type { HeraldServer } from '../src/server.js';
import { NATS_URL, requireNats, uniquePrefix } from './engine/services.js';
import { messagesBesideMarkers, publishMarker, startTestServer, TestSocket, untilUserReachable } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const natsUp = await requireNats();
const prefix = uniquePrefix('herald_ingest_');
let n = 0;
let seq = 0;
const envelope = (payload: unknown, msgId = `m-${prefix}-${++seq}`) => ({ msgId, timestamp: Date.now(), source: 'billing', eventType: 'invoice.paid', version: '2.0', payload });

async function counterValue(server: HeraldServer, outcome: string): Promise<number> {
  const metric = server.node.metrics.registry.getSingleMetric('herald_ingest_messages_total');
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => v.labels.outcome === outcome).reduce((a, v) => a + v.value, 0);
}

describe.skipIf(!natsUp)('ingest from a JetStream durable consumer', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const streams: string[] = [];
  const servers: HeraldServer[] = [];
  const sockets: TestSocket[] = [];

  /** A fresh stream name and subject for one test. */
  function names(): { stream: string; subject: string } {
    const stream = `${prefix}_${++n}`;
    streams.push(stream);
    return { stream, subject: `${prefix}.in.${n}` };
  }

  const send = (subject: string, record: unknown) => nc.jetstream().publish(subject, typeof record === 'string' ? record : JSON.stringify(record));
  const idle = async (stream: string, durable = 'herald') => {
    const info = await jsm.consumers.info(stream, durable);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  };

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all(servers.map((s) => s.close()));
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
  });

  async function server(nodeName: string, ingest?: object): Promise<HeraldServer> {
    const s = await startTestServer({ server: { nodeName }, ...(ingest ? { ingest } : {}) });
    servers.push(s);
    return s;
  }

  async function reader(s: HeraldServer, channel: string): Promise<TestSocket> {
    const sock = await TestSocket.connect(s, { sub: 'reader' });
    sockets.push(sock);
    await sock.subscribe(channel);
    return sock;
  }

  function ingestor(s: HeraldServer, stream: string, subject: string, extra: Partial<JetStreamIngestorOptions> = {}): JetStreamIngestor {
    return new JetStreamIngestor(s.node, { servers: [NATS_URL], stream, subject, durable: 'herald', batch: 10, expiresMs: 1000, ackWaitMs: 30_000, configKey: 'test', ...extra }, s.node.log);
  }

  it('creates the stream and durable consumer, publishes what arrives, acknowledges everything', async () => {
    const { stream, subject } = names();
    const s = await server('js-a', { jetstream: [{ servers: [NATS_URL], stream, subject }] });
    const r = await reader(s, 'billing:eu');
    const alice = await TestSocket.connect(s, { sub: 'alice' });
    sockets.push(alice);
    await untilUserReachable(s, alice, 'alice');
    await send(subject, { channel: 'billing:eu', envelope: envelope({ i: 1 }) });
    await send(subject, { user: 'alice', envelope: envelope({ i: 2 }) });
    await send(subject, { broadcast: true, envelope: envelope({ i: 3 }) });
    expect(await r.next((f) => f.type === 'message' && f.target === 'channel')).toMatchObject({ channel: 'billing:eu', message: { source: 'billing', eventType: 'invoice.paid', version: '2.0', payload: { i: 1 } } });
    expect(await alice.next((f) => f.type === 'message' && f.target === 'user' && f.message.eventType !== 'ready')).toMatchObject({ message: { payload: { i: 2 } } });
    expect(await r.next((f) => f.type === 'message' && f.target === 'broadcast')).toMatchObject({ message: { payload: { i: 3 } } });
    await waitFor(() => idle(stream), 5000, 'consumer idle');
    const info = await jsm.consumers.info(stream, 'herald');
    expect(info.config.filter_subject).toBe(subject);
    expect(info.config.ack_policy).toBe(AckPolicy.Explicit);
  });

  it('terminates invalid messages (counted, not redelivered) and keeps going', async () => {
    const { stream, subject } = names();
    const s = await server('js-b', { jetstream: [{ servers: [NATS_URL], stream, subject }] });
    const r = await reader(s, 'billing:dl');
    await send(subject, { channel: 'billing:dl', envelope: { ...envelope(1), version: '' } });
    await send(subject, '[]');
    await send(subject, { channel: 'billing:dl', envelope: envelope(2), extra: true });
    await send(subject, { channel: 'billing:dl', envelope: envelope('ok') });
    expect(await r.next((f) => f.type === 'message')).toMatchObject({ message: { payload: 'ok' } });
    // Idle means nothing pending and nothing awaiting an ACK: the invalid ones were terminated,
    // so none can come back.
    await waitFor(() => idle(stream), 5000, 'consumer idle');
    expect(await counterValue(s, 'invalid')).toBe(3);
    await publishMarker(s, r, { channel: 'billing:dl' });
    expect(messagesBesideMarkers(r)).toHaveLength(1);
  });

  it('an ingestor that dies between publish and ack: the message is redelivered after the ack wait and delivered once', async () => {
    const { stream, subject } = names();
    await jsm.streams.add({ name: stream, subjects: [subject] });
    await jsm.consumers.add(stream, { durable_name: 'herald', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: subject, ack_wait: nanos(1000) });
    const s = await server('js-c');
    const r = await reader(s, 'billing:crash');
    const first = ingestor(s, stream, subject, { hooks: { beforeAck: () => Promise.reject(new Error('simulated crash before ack')) } });
    await first.start();
    await send(subject, { channel: 'billing:crash', envelope: envelope('once') });
    await first.done;
    await first.stop();
    await r.next((f) => f.type === 'message');
    expect((await jsm.consumers.info(stream, 'herald')).num_ack_pending).toBe(1);

    const second = ingestor(s, stream, subject);
    await second.start();
    await waitFor(() => idle(stream), 8000, 'redelivered and acknowledged');
    await second.stop();
    await publishMarker(s, r, { channel: 'billing:crash' });
    expect(messagesBesideMarkers(r).map((m) => m.message.payload)).toEqual(['once']);
    expect(await counterValue(s, 'duplicate')).toBe(1);
  });

  it('a temporary publish failure NAKs; the message comes back and is published once', async () => {
    const { stream, subject } = names();
    const s = await server('js-d');
    const r = await reader(s, 'billing:retry');
    const real = s.node.publish.bind(s.node);
    let failures = 0;
    const spy = vi.spyOn(s.node, 'publish').mockImplementation(async (req) => {
      if (req.payload === 'flaky' && failures < 2) {
        failures++;
        throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
      }
      return real(req);
    });
    const ing = ingestor(s, stream, subject);
    await ing.start();
    await send(subject, { channel: 'billing:retry', envelope: envelope('flaky') });
    await r.next((f) => f.type === 'message', 8000);
    await waitFor(() => idle(stream), 8000, 'consumer idle');
    await ing.stop();
    spy.mockRestore();
    expect(failures).toBe(2);
    expect(r.messages().map((m) => m.message.payload)).toEqual(['flaky']);
  });

  it('fails start-up naming the config entry when NATS is unreachable', async () => {
    await expect(startTestServer({ ingest: { jetstream: [{ servers: ['nats://127.0.0.1:1'], stream: 'x', subject: 'x.y' }] } })).rejects.toThrow(/ingest\.jetstream\[0\]/);
  });
});
