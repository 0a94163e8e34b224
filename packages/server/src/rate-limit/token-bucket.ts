/**
 * Token buckets: one for a single owner (a connection), and a map of them by key (user, IP, API
 * key) whose memory stays bounded under churn. Time comes from a clock passed in, so tests drive
 * it; production uses `performance.now()` (monotonic, unaffected by wall-clock jumps).
 *
 * Contract: a bucket holds up to `burst` tokens and gains `perSecond` a second. `wait` says how
 * long until one token is there (0: now) without taking it; `take` removes one. A refused request
 * takes nothing, so a client that waits the time it was told is let through (unless it spent the
 * token elsewhere meanwhile).
 */
import type { BucketConfig } from '../config.js';

export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();

export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly spec: BucketSpec,
    now: number,
  ) {
    this.tokens = spec.burst;
    this.at = now;
  }

  /** Milliseconds until a token is available; 0 when one is available now. */
  wait(now: number): number {
    const tokens = this.refill(now);
    // The epsilon keeps float noise (0.99 tokens at 10/s → 1.0000000000000009 ms) from adding a millisecond.
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.spec.perMs - 1e-9));
  }

  /** Takes one token; call only after `wait` returned 0. */
  take(now: number): void {
    this.tokens = this.refill(now) - 1;
    this.at = now;
  }

  /** True when the bucket has refilled to `burst` by `now`: it then carries no state worth keeping. */
  full(now: number): boolean {
    return this.refill(now) >= this.spec.burst;
  }

  private refill(now: number): number {
    return Math.min(this.spec.burst, this.tokens + Math.max(0, now - this.at) * this.spec.perMs);
  }
}

/** A bucket configuration checked once: `undefined` when the limit is off (`perSecond: 0`). */
export interface BucketSpec {
  readonly burst: number;
  /** Tokens gained per millisecond. */
  readonly perMs: number;
}

export function bucketSpec(config: BucketConfig | undefined): BucketSpec | undefined {
  if (!config || !(config.perSecond > 0)) return undefined;
  return { burst: config.burst, perMs: config.perSecond / 1000 };
}

/**
 * Buckets by key, bounded in memory. A bucket that has refilled to `burst` is indistinguishable
 * from a new one, so it is dropped: at most once per `sweepEveryMs` a sweep removes them, and a
 * key that goes quiet costs nothing once its bucket is full.
 *
 * At `maxKeys` (many keys active at once, e.g. an attacker churning IPs or user ids) a sweep runs
 * first; if it frees too little, the oldest-created buckets are forgotten until a tenth of the
 * room is free again. A forgotten key starts over with a full bucket: at worst it gets one extra
 * burst, while memory stays capped and every recent key stays limited. The tenth of headroom makes
 * that O(n) work happen at most once per `maxKeys / 10` new keys.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private lastSweep: number;

  constructor(
    private readonly spec: BucketSpec,
    private readonly maxKeys: number,
    private readonly clock: Clock = monotonicClock,
    private readonly sweepEveryMs = 10_000,
  ) {
    this.lastSweep = clock();
  }

  /**
   * Takes a token for `key` and returns 0, or returns the milliseconds until one is available
   * (nothing taken).
   */
  take(key: string, now = this.clock()): number {
    const bucket = this.get(key, now);
    const wait = bucket.wait(now);
    if (wait === 0) bucket.take(now);
    return wait;
  }

  /** The bucket of `key`, created full if there is none; for callers that check several buckets before taking from any. */
  get(key: string, now: number): TokenBucket {
    if (now - this.lastSweep >= this.sweepEveryMs) this.sweep(now);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.makeRoom(now);
      bucket = new TokenBucket(this.spec, now);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Number of keys held (for tests and introspection). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(key);
  }

  private makeRoom(now: number): void {
    this.sweep(now);
    const target = Math.floor(this.maxKeys * 0.9);
    if (this.buckets.size <= target) return;
    // Map iteration is in insertion order: the first keys are the oldest buckets.
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (this.buckets.size <= target) break;
    }
  }
}
