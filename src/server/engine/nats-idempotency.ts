/**
 * The idempotency window shared by every node of a NATS cluster, in a JetStream Key-Value bucket
 * `<prefix>_idem` whose TTL is the window (see SharedIdempotency for the contract).
 */
import { nanos, type KV } from 'nats';
import { SharedIdempotency } from '../idempotency.js';
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

export class NatsIdempotency extends SharedIdempotency {
  /**
   * False while NATS is unreachable. The client would hold a lookup until it reconnects, and the
   * publish behind it with it; without NATS the broker refuses the publish at once (503), which is
   * what a backend should see.
   */
  private online = true;

  private constructor(
    private readonly link: JetStreamLink,
    private readonly kv: KV | undefined,
    windowMs: number,
  ) {
    super(windowMs);
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

  protected override available(): boolean {
    return this.kv !== undefined && this.online;
  }

  protected async read(key: string): Promise<string | undefined> {
    const entry = await withDeadline(this.kv!.get(subjectToken(key)), LOOKUP_TIMEOUT_MS);
    return entry && entry.operation === 'PUT' && entry.length > 0 ? entry.string() : undefined;
  }

  protected write(key: string, json: string): Promise<unknown> {
    return this.kv!.put(subjectToken(key), json);
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
