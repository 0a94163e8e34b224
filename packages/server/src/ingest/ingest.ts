/**
 * Starts every ingestor named in `ingest` (Redis Streams, JetStream) for a started node. Start-up fails, naming
 * the config entry, when one cannot reach its stream; those already started are stopped again.
 * The returned function stops them all: each finishes (and acknowledges) the entry in hand first.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../node.js';
import type { IngestHooks, IngestorNode } from './ingest-record.js';

export { ingestRecord, parseRecord, type IngestHooks, type IngestOutcome } from './ingest-record.js';

/** Defaults for what `ingest.*` entries leave out. */
export const INGEST_DEFAULTS = {
  group: 'herald',
  durable: 'herald',
  batch: 100,
  blockMs: 5000,
  claimIdleMs: 60_000,
  ackWaitMs: 30_000,
} as const;

export interface Ingestor {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly done: Promise<void>;
}

/**
 * Builds (without starting) the ingestors the config names. Each kind's module, and with it its
 * client library, is loaded only when the config has an entry of that kind.
 */
export async function createIngestors(node: IngestorNode & Pick<HeraldNode, 'name'>, config: Readonly<HeraldConfig>, log: FastifyBaseLogger, hooks?: IngestHooks): Promise<Ingestor[]> {
  const out: Ingestor[] = [];
  if (config.ingest.redisStreams.length > 0) {
    const { RedisStreamIngestor } = await import('./redis-stream-ingestor.js');
    config.ingest.redisStreams.forEach((s, i) => {
      out.push(
        new RedisStreamIngestor(
          node,
          {
            url: s.url ?? config.engine.redis.url,
            stream: s.stream,
            group: s.group ?? INGEST_DEFAULTS.group,
            consumer: s.consumer || node.name,
            batch: s.batch ?? INGEST_DEFAULTS.batch,
            blockMs: s.blockMs ?? INGEST_DEFAULTS.blockMs,
            ...(s.deadLetterStream ? { deadLetterStream: s.deadLetterStream } : {}),
            claimIdleMs: INGEST_DEFAULTS.claimIdleMs,
            configKey: `ingest.redisStreams[${i}]`,
            ...(hooks ? { hooks } : {}),
          },
          log,
        ),
      );
    });
  }
  if (config.ingest.jetstream.length > 0) {
    const { JetStreamIngestor } = await import('./jetstream-ingestor.js');
    config.ingest.jetstream.forEach((s, i) => {
      out.push(
        new JetStreamIngestor(
          node,
          {
            servers: s.servers && s.servers.length > 0 ? s.servers : config.engine.nats.servers,
            stream: s.stream,
            subject: s.subject,
            durable: s.durable ?? INGEST_DEFAULTS.durable,
            batch: s.batch ?? INGEST_DEFAULTS.batch,
            expiresMs: INGEST_DEFAULTS.blockMs,
            ackWaitMs: INGEST_DEFAULTS.ackWaitMs,
            configKey: `ingest.jetstream[${i}]`,
            ...(hooks ? { hooks } : {}),
          },
          log,
        ),
      );
    });
  }
  return out;
}

/** Starts all configured ingestors; resolves with the function that stops them. */
export async function startIngest(node: IngestorNode & Pick<HeraldNode, 'name'>, config: Readonly<HeraldConfig>, log: FastifyBaseLogger): Promise<() => Promise<void>> {
  const ingestors = await createIngestors(node, config, log);
  const started: Ingestor[] = [];
  const stopAll = async () => {
    await Promise.all(started.map((i) => i.stop().catch((err: Error) => log.warn({ err: err.message }, 'ingestor stop failed'))));
  };
  try {
    for (const i of ingestors) {
      await i.start();
      started.push(i);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
}
