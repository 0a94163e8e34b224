/**
 * The idempotency window shared by every node of a NATS cluster, in a JetStream Key-Value bucket
 * `<prefix>_idem` whose TTL is the window: a retry that lands on another node, or on this node
 * after a restart, is still recognised. The same contract as the Redis store — hits from memory,
 * a miss asks the bucket, and if NATS cannot answer the publish proceeds (the SDK drops a duplicate
 * by msgId) rather than being refused.
 */
import { nanos, type KV } from 'nats';
import type { StreamPosition } from '../../protocol/frames.js';
import { IdempotencyCache, type IdempotencyEntry, type IdempotencyStore } from '../idempotency.js';
import { checkNatsPrefix, checkNatsReplicas, openJetStream, subjectToken, watchConnection, type JetStreamLink, type NatsEngineOptions } from './nats-jetstream.js';

/**
 * How long a lookup may take before the publish goes ahead without it. A healthy bucket answers in
 * well under a millisecond; a silent network cut would otherwise hold every publish for the
 * client's request timeout, while the broker should be the one to refuse it promptly.
 */
const LOOKUP_TIMEOUT_MS = 250;

export function idempotencyBucket(prefix: string): string {
  return `${prefix}_idem`;
}

export class NatsIdempotency implements IdempotencyStore {
  private readonly local: IdempotencyCache;
  /**
   * False while NATS is unreachable. The client would hold a lookup until it reconnects, and the
   * publish behind it with it; without NATS the broker refuses the publish at once (503), which is
   * what a backend should see.
   */
  private online = true;

  private constructor(
    private readonly link: JetStreamLink,
    private readonly kv: KV | undefined,
    private readonly windowMs: number,
  ) {
    this.local = new IdempotencyCache(windowMs);
  }

  static async connect(opts: NatsEngineOptions, windowMs: number): Promise<NatsIdempotency> {
    checkNatsPrefix(opts.prefix);
    const link = await openJetStream(opts, 'idempotency');
    if (windowMs <= 0) return new NatsIdempotency(link, undefined, windowMs);
    try {
      const bucket = idempotencyBucket(opts.prefix);
      const kv = await link.js.views.kv(bucket, { history: 1, ttl: windowMs, replicas: checkNatsReplicas(opts.replicas), timeout: link.timeoutMs });
      // A bucket made earlier with another window keeps its old TTL unless told.
      const stream = `KV_${bucket}`;
      const info = await link.jsm.streams.info(stream);
      if (info.config.max_age !== nanos(windowMs)) {
        await link.jsm.streams.update(stream, { ...info.config, max_age: nanos(windowMs), duplicate_window: nanos(Math.min(windowMs, 120_000)) });
      }
      const store = new NatsIdempotency(link, kv, windowMs);
      watchConnection(link.nc, { reconnect: () => (store.online = true), disconnect: () => (store.online = false), error: opts.onError });
      return store;
    } catch (err) {
      await link.nc.close().catch(() => undefined);
      throw new Error(`engine.nats.servers=${opts.servers.join(',')}: cannot open the idempotency bucket ${idempotencyBucket(opts.prefix)}: ${(err as Error).message}`, { cause: err });
    }
  }

  async get(key: string): Promise<IdempotencyEntry | undefined> {
    const hit = this.local.get(key);
    if (hit || !this.kv || !this.online) return hit;
    try {
      const entry = await withDeadline(this.kv.get(subjectToken(key)), LOOKUP_TIMEOUT_MS);
      if (!entry || entry.operation !== 'PUT' || entry.length === 0) return undefined;
      const { at, timestamp, position } = JSON.parse(entry.string()) as IdempotencyEntry;
      this.local.set(key, timestamp, position, at);
      return { at, timestamp, position };
    } catch {
      return undefined;
    }
  }

  set(key: string, timestamp: number, position: StreamPosition | undefined): void {
    this.local.set(key, timestamp, position);
    if (!this.kv || !this.online) return;
    this.kv.put(subjectToken(key), JSON.stringify({ at: Date.now(), timestamp, position })).catch(() => undefined);
  }

  async close(): Promise<void> {
    const nc = this.link.nc;
    if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
  }
}

/** The promise's value, or null once `ms` have passed. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
    timer.unref();
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
