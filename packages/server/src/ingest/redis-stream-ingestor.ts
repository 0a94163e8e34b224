/**
 * Consumes publish requests from a Redis Stream through a consumer group (one entry of
 * `ingest.redisStreams`). Every node of a cluster joins the same group under its own consumer
 * name, so each entry is published by one node.
 *
 * Contract:
 * - The group is created at start if missing (`XGROUP CREATE … 0 MKSTREAM`: entries already in the
 *   stream are delivered too).
 * - Each entry's field `message` holds a record (see ingest-record.ts). Entries are handled one at a
 *   time, in stream order; an entry is XACKed only after the node accepted its message.
 * - After a start or any connection trouble, this consumer's own pending entries (delivered before,
 *   never acknowledged — e.g. a crash between publish and XACK) are read again first (id `0`), then
 *   new ones (`>`). Use a stable consumer name (`consumer`, else `server.nodeName`) for this to
 *   apply across restarts.
 * - A temporary publish failure leaves the entry pending and stops the batch; after a backoff the
 *   consumer starts again from its pending entries, so order is kept.
 * - Entries that other consumers of the group left pending for longer than `claimIdleMs` (a node
 *   that died) are taken over with XAUTOCLAIM and published here.
 * - Invalid entries are counted, logged, copied to `deadLetterStream` (when set) and XACKed in one
 *   MULTI, so they neither loop nor get dead-lettered twice.
 */
import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import { redactUrl } from '../engine/redis/connection.js';
import { ingestCounter, ingestRecord, retryDelay, sleep, type IngestHooks, type IngestorNode, type IngestOutcome } from './ingest-record.js';

export interface RedisStreamIngestorOptions {
  url: string;
  stream: string;
  group: string;
  consumer: string;
  /** Entries per XREADGROUP. */
  batch: number;
  /** How long one XREADGROUP waits for new entries (ms). */
  blockMs: number;
  deadLetterStream?: string;
  /** Pending entries of other consumers idle longer than this are claimed (ms); 0 disables. */
  claimIdleMs: number;
  /** Names the config entry in errors, e.g. `ingest.redisStreams[0]`. */
  configKey: string;
  hooks?: IngestHooks;
}

type StreamEntry = [id: string, fields: string[] | null];
type ReadReply = Array<[stream: string, entries: StreamEntry[]]> | null;

export class RedisStreamIngestor {
  private redis: Redis | undefined;
  private stopping = false;
  private blocked = false;
  private loop: Promise<void> | undefined;
  private lastClaim = 0;
  private lastErrorLog = 0;
  private readonly counter;
  /** Resolves when the consume loop has ended (stop, or a crash simulated by a hook). */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  constructor(
    private readonly node: IngestorNode,
    readonly opts: RedisStreamIngestorOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.counter = ingestCounter(node.metrics.registry);
  }

  async start(): Promise<void> {
    const { url, stream, group, configKey } = this.opts;
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      // XREADGROUP blocks for blockMs: allow that plus a margin before calling it stalled.
      commandTimeout: this.opts.blockMs + 5000,
      connectTimeout: 5000,
      connectionName: `herald:ingest:${this.opts.consumer}`,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
    });
    redis.on('error', (err: Error) => this.logError(err, 'redis connection problem (retrying)'));
    try {
      await redis.connect();
      await this.ensureGroup(redis);
    } catch (err) {
      redis.disconnect();
      throw new Error(`${configKey}: cannot consume stream ${JSON.stringify(stream)} (group ${JSON.stringify(group)}) at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
    }
    this.redis = redis;
    this.loop = this.run(redis);
    this.log.info({ stream, group, consumer: this.opts.consumer }, 'ingesting from Redis stream');
  }

  /** Finishes the entry in hand (so it is acknowledged), then closes. */
  async stop(): Promise<void> {
    this.stopping = true;
    const redis = this.redis;
    if (!redis) return;
    // A blocking read holds nothing in hand: cut it. Otherwise let the current entry finish.
    if (this.blocked) redis.disconnect();
    const finished = await Promise.race([this.loop?.then(() => true), sleep(5000).then(() => false)]);
    if (!finished) this.log.warn({ stream: this.opts.stream }, 'ingest loop did not finish in time; its entry stays pending');
    if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
    else redis.disconnect();
  }

  private async ensureGroup(redis: Redis): Promise<void> {
    try {
      await redis.xgroup('CREATE', this.opts.stream, this.opts.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async run(redis: Redis): Promise<void> {
    const { stream, group, consumer, batch, blockMs } = this.opts;
    let pendingFirst = true;
    let failures = 0;
    while (!this.stopping) {
      try {
        if (await this.claimIdle(redis)) pendingFirst = true;
        this.blocked = !pendingFirst;
        const reply = (await (pendingFirst
          ? redis.xreadgroup('GROUP', group, consumer, 'COUNT', batch, 'STREAMS', stream, '0')
          : redis.xreadgroup('GROUP', group, consumer, 'COUNT', batch, 'BLOCK', blockMs, 'STREAMS', stream, '>'))) as ReadReply;
        this.blocked = false;
        const entries = reply?.[0]?.[1] ?? [];
        if (pendingFirst && entries.length === 0) {
          pendingFirst = false;
          continue;
        }
        let retry = false;
        for (const [id, fields] of entries) {
          if (this.stopping) break;
          if ((await this.handle(redis, id, fields, pendingFirst)) === 'retry') {
            retry = true;
            break;
          }
        }
        if (retry) {
          pendingFirst = true;
          await sleep(retryDelay(++failures));
        } else failures = 0;
      } catch (err) {
        this.blocked = false;
        if (this.stopping || err instanceof SimulatedCrash) break;
        if (/NOGROUP/.test((err as Error).message)) {
          // The stream or the group was deleted under us: make them again.
          await this.ensureGroup(redis).catch(() => undefined);
        }
        this.logError(err as Error, 'ingest read failed (retrying)');
        pendingFirst = true;
        await sleep(retryDelay(++failures));
      }
    }
  }

  /** Publishes one entry and settles it with the stream. */
  private async handle(redis: Redis, id: string, fields: string[] | null, redelivered: boolean): Promise<'done' | 'retry'> {
    const { stream, group } = this.opts;
    if (fields === null) {
      // Deleted (trimmed) while pending: nothing to publish.
      await redis.xack(stream, group, id);
      return 'done';
    }
    const text = fieldValue(fields, 'message');
    const outcome: IngestOutcome = await ingestRecord(this.node, text, redelivered);
    this.counter.inc({ source: 'redis', stream, outcome: outcome.kind });
    switch (outcome.kind) {
      case 'published':
      case 'duplicate':
        await this.beforeAck(outcome.msgId, id);
        await redis.xack(stream, group, id);
        return 'done';
      case 'invalid':
        await this.deadLetter(redis, id, text, outcome);
        return 'done';
      case 'retry':
        this.logError(outcome.error, 'publish failed temporarily; the entry stays pending', { entryId: id, msgId: outcome.msgId });
        return 'retry';
    }
  }

  private async deadLetter(redis: Redis, id: string, text: string | undefined, outcome: Extract<IngestOutcome, { kind: 'invalid' }>): Promise<void> {
    const { stream, group, consumer, deadLetterStream } = this.opts;
    this.log.warn({ stream, entryId: id, msgId: outcome.msgId, code: outcome.code, reason: outcome.reason, deadLetterStream }, 'invalid ingest entry');
    const tx = redis.multi();
    if (deadLetterStream) {
      tx.xadd(deadLetterStream, '*', 'message', text ?? '', 'error', outcome.code, 'reason', outcome.reason, 'stream', stream, 'id', id, 'group', group, 'consumer', consumer);
    }
    tx.xack(stream, group, id);
    const res = await tx.exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw failed?.[0] ?? new Error('MULTI was discarded');
    if (deadLetterStream) this.counter.inc({ source: 'redis', stream, outcome: 'dead_lettered' });
  }

  /** Takes over entries that dead consumers left pending. True when any were claimed. */
  private async claimIdle(redis: Redis): Promise<boolean> {
    const { claimIdleMs, stream, group, consumer, batch } = this.opts;
    if (claimIdleMs <= 0 || Date.now() - this.lastClaim < Math.max(100, claimIdleMs / 2)) return false;
    this.lastClaim = Date.now();
    let cursor = '0-0';
    let claimed = 0;
    for (let round = 0; round < 10; round++) {
      const [next, ids] = (await redis.xautoclaim(stream, group, consumer, claimIdleMs, cursor, 'COUNT', batch, 'JUSTID')) as [string, string[]];
      claimed += ids.length;
      cursor = next;
      if (cursor === '0-0') break;
    }
    if (claimed > 0) this.log.warn({ stream, group, consumer, claimed }, 'claimed entries left pending by other consumers');
    return claimed > 0;
  }

  private async beforeAck(msgId: string, id: string): Promise<void> {
    if (!this.opts.hooks?.beforeAck) return;
    try {
      await this.opts.hooks.beforeAck(msgId, id);
    } catch (err) {
      this.stopping = true;
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

/** Thrown out of the loop when a test hook simulates a crash: nothing more is acknowledged. */
class SimulatedCrash extends Error {}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
