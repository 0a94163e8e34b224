/**
 * Consumes publish requests from a NATS JetStream stream through a durable pull consumer (one
 * entry of `ingest.jetstream`). Every node pulls from the same durable, so JetStream hands each
 * message to one node.
 *
 * Contract:
 * - At start the stream is created if missing (subjects: [subject], file storage, limits
 *   retention), and so is the durable consumer (explicit acks, filtered on `subject`, delivering
 *   everything the stream holds, ack wait `ackWaitMs`). Existing ones are used as they are.
 * - The message data is a record (see ingest-record.ts). Messages of one fetched batch are handled
 *   one at a time, in order; a message is acknowledged (`ackAck`, confirmed by the server) only
 *   after the node accepted it.
 * - A temporary publish failure NAKs the message and the rest of its batch with a delay, so they
 *   are redelivered later (JetStream gives no order guarantee across such a redelivery unless the
 *   consumer's max_ack_pending is 1).
 * - A message not acknowledged within the consumer's ack wait (the node died between publish and
 *   ack) is redelivered, to this node or another; redelivered channel messages already in the
 *   channel's history are acknowledged without publishing again.
 * - Invalid messages are counted, logged and terminated (`term`, an acknowledgement that ends
 *   redelivery and emits JetStream's MSG_TERMINATED advisory, which is where to watch for them).
 */
import type { FastifyBaseLogger } from 'fastify';
import { AckPolicy, DeliverPolicy, nanos, RetentionPolicy, StorageType, type ConsumerMessages, type JsMsg, type NatsConnection } from 'nats';
import { apiErrorCode, closeLink, ensureStream, JsErr, openJetStream } from '../engine/nats/jetstream.js';
import { ingestCounter, ingestRecord, retryDelay, sleep, type IngestHooks, type IngestorNode } from './ingest-record.js';

export interface JetStreamIngestorOptions {
  servers: string[];
  stream: string;
  subject: string;
  durable: string;
  /** Messages per fetch. */
  batch: number;
  /** How long one fetch waits for messages (ms, at least 1000). */
  expiresMs: number;
  /** Ack wait of a consumer created here (ms). */
  ackWaitMs: number;
  configKey: string;
  hooks?: IngestHooks;
}

export class JetStreamIngestor {
  private nc: NatsConnection | undefined;
  private stopping = false;
  private current: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private lastErrorLog = 0;
  private readonly counter;

  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  constructor(
    private readonly node: IngestorNode,
    readonly opts: JetStreamIngestorOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.counter = ingestCounter(node.metrics.registry);
  }

  async start(): Promise<void> {
    const { servers, stream, subject, durable, configKey } = this.opts;
    const { nc, jsm } = await openJetStream({ servers, requestTimeoutMs: 5000, configKey: `${configKey}.servers` }, `herald:ingest:${durable}`);
    try {
      // An existing stream is used as it is.
      await ensureStream(jsm, { name: stream, subjects: [subject], storage: StorageType.File, retention: RetentionPolicy.Limits }, () => undefined);
      try {
        await jsm.consumers.info(stream, durable);
      } catch (err) {
        if (apiErrorCode(err) !== JsErr.CONSUMER_NOT_FOUND) throw err;
        await jsm.consumers.add(stream, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: subject,
          ack_wait: nanos(this.opts.ackWaitMs),
        });
      }
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new Error(`${configKey}: cannot consume stream ${JSON.stringify(stream)} (durable ${JSON.stringify(durable)}): ${(err as Error).message}`, { cause: err });
    }
    this.nc = nc;
    this.loop = this.run(nc);
    this.log.info({ stream, subject, durable }, 'ingesting from JetStream');
  }

  /** Finishes the message in hand (so it is acknowledged), then closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.current?.stop();
    const finished = await Promise.race([this.loop?.then(() => true), sleep(5000).then(() => false)]);
    if (!finished) this.log.warn({ stream: this.opts.stream }, 'ingest loop did not finish in time; its message will be redelivered');
    await closeLink(this.nc);
  }

  private async run(nc: NatsConnection): Promise<void> {
    const { stream, durable, batch, expiresMs } = this.opts;
    const js = nc.jetstream({ timeout: 5000 });
    let failures = 0;
    while (!this.stopping) {
      try {
        const consumer = await js.consumers.get(stream, durable);
        const msgs = await consumer.fetch({ max_messages: batch, expires: Math.max(1000, expiresMs) });
        this.current = msgs;
        let retryFrom: JsMsg | undefined;
        for await (const m of msgs) {
          if (this.stopping || retryFrom) {
            // Not handled: give it back at once (after the failed one's delay when retrying).
            m.nak(retryFrom ? retryDelay(failures) : undefined);
            continue;
          }
          if ((await this.handle(m)) === 'retry') {
            retryFrom = m;
            failures++;
            m.nak(retryDelay(failures));
          } else failures = 0;
        }
        this.current = undefined;
        if (retryFrom) await sleep(retryDelay(failures));
      } catch (err) {
        this.current = undefined;
        if (this.stopping || err instanceof SimulatedCrash) break;
        this.logError(err as Error, 'ingest fetch failed (retrying)');
        await sleep(retryDelay(++failures));
      }
    }
  }

  private async handle(m: JsMsg): Promise<'done' | 'retry'> {
    const { stream } = this.opts;
    const outcome = await ingestRecord(this.node, m.string(), m.redelivered);
    this.counter.inc({ source: 'jetstream', stream, outcome: outcome.kind });
    switch (outcome.kind) {
      case 'published':
      case 'duplicate':
        await this.beforeAck(outcome.msgId, String(m.seq));
        if (!(await m.ackAck())) throw new Error(`ack of stream sequence ${m.seq} was not confirmed`);
        return 'done';
      case 'invalid':
        this.log.warn({ stream, seq: m.seq, msgId: outcome.msgId, code: outcome.code, reason: outcome.reason }, 'invalid ingest message (terminated)');
        // No reason text: `+TERM <reason>` needs nats-server 2.10; the log above carries it.
        m.term();
        return 'done';
      case 'retry':
        this.logError(outcome.error, 'publish failed temporarily; the message will be redelivered', { seq: m.seq, msgId: outcome.msgId });
        return 'retry';
    }
  }

  private async beforeAck(msgId: string, id: string): Promise<void> {
    if (!this.opts.hooks?.beforeAck) return;
    try {
      await this.opts.hooks.beforeAck(msgId, id);
    } catch (err) {
      this.stopping = true;
      this.current?.stop();
      throw new SimulatedCrash((err as Error).message);
    }
  }

  private logError(err: Error, msg: string, extra: Record<string, unknown> = {}): void {
    const now = Date.now();
    if (now - this.lastErrorLog < 5000) return;
    this.lastErrorLog = now;
    this.log.warn({ err: err.message, stream: this.opts.stream, ...extra }, msg);
  }
}

class SimulatedCrash extends Error {}
