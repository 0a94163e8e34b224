/**
 * The idempotency window shared by every node of a Redis cluster: a retry that lands on another
 * node, or on this node after a restart, is still recognised. Hits are answered from memory; a
 * miss asks Redis. If Redis cannot answer, the publish proceeds (the SDK drops a duplicate by
 * msgId), rather than refusing the publish.
 */
import type { StreamPosition } from '../../protocol/frames.js';
import { IdempotencyCache, type IdempotencyEntry, type IdempotencyStore } from '../idempotency.js';
import { closeRedis, openRedis, type RedisClient, type RedisEngineOptions } from './redis-connection.js';

export class RedisIdempotency implements IdempotencyStore {
  private readonly local: IdempotencyCache;

  private constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly windowMs: number,
  ) {
    this.local = new IdempotencyCache(windowMs);
  }

  static async connect(opts: RedisEngineOptions, windowMs: number): Promise<RedisIdempotency> {
    return new RedisIdempotency(await openRedis(opts, 'idempotency'), opts.prefix, windowMs);
  }

  async get(key: string): Promise<IdempotencyEntry | undefined> {
    const hit = this.local.get(key);
    if (hit || this.windowMs <= 0) return hit;
    try {
      const raw = await this.redis.get(`${this.prefix}:idem:${key}`);
      if (!raw) return undefined;
      const { at, timestamp, position } = JSON.parse(raw) as IdempotencyEntry;
      this.local.set(key, timestamp, position, at);
      return { at, timestamp, position };
    } catch {
      return undefined;
    }
  }

  set(key: string, timestamp: number, position: StreamPosition | undefined): void {
    this.local.set(key, timestamp, position);
    if (this.windowMs <= 0) return;
    const value = JSON.stringify({ at: Date.now(), timestamp, position });
    this.redis.set(`${this.prefix}:idem:${key}`, value, 'PX', this.windowMs).catch(() => undefined);
  }

  close(): Promise<void> {
    return closeRedis(this.redis);
  }
}
