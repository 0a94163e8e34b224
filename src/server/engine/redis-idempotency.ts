/** The idempotency window in Redis, shared by every node of a Redis cluster (see SharedIdempotency). */
import { SharedIdempotency } from '../idempotency.js';
import { closeRedis, openRedis, type RedisClient, type RedisEngineOptions } from './redis-connection.js';

export class RedisIdempotency extends SharedIdempotency {
  private constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    windowMs: number,
  ) {
    super(windowMs);
  }

  static async connect(opts: RedisEngineOptions, windowMs: number): Promise<RedisIdempotency> {
    return new RedisIdempotency(await openRedis(opts, 'idempotency'), opts.prefix, windowMs);
  }

  protected async read(key: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.prefix}:idem:${key}`)) ?? undefined;
  }

  protected write(key: string, json: string): Promise<unknown> {
    return this.redis.set(`${this.prefix}:idem:${key}`, json, 'PX', this.windowMs);
  }

  close(): Promise<void> {
    return closeRedis(this.redis);
  }
}
