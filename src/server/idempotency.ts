/**
 * Remembers accepted msgIds for a window so that a retried publish is acknowledged again without
 * a second delivery. Bounded by the window: entries are swept in insertion order.
 */
import type { StreamPosition } from '../protocol/frames.js';

export interface IdempotencyEntry {
  at: number;
  timestamp: number;
  position: StreamPosition | undefined;
}

export interface IdempotencyStore {
  /** The earlier result for this key within the window; may answer asynchronously (shared stores). */
  get(key: string): IdempotencyEntry | undefined | Promise<IdempotencyEntry | undefined>;
  set(key: string, timestamp: number, position: StreamPosition | undefined): void;
}

export class IdempotencyCache implements IdempotencyStore {
  protected readonly entries = new Map<string, IdempotencyEntry>();

  constructor(protected readonly windowMs: number) {}

  get(key: string, now = Date.now()): IdempotencyEntry | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now - e.at > this.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  set(key: string, timestamp: number, position: StreamPosition | undefined, now = Date.now()): void {
    if (this.windowMs <= 0) return;
    this.entries.set(key, { at: now, timestamp, position });
    this.sweep(now);
  }

  private sweep(now: number): void {
    // Map iteration is insertion order, so the oldest entries come first.
    for (const [k, e] of this.entries) {
      if (now - e.at <= this.windowMs) break;
      this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * A window shared through a store every node reads (Redis, a JetStream bucket): a retry that lands
 * on another node, or on this one after a restart, is still recognised. Hits are answered from
 * memory; a miss asks the store. If the store cannot answer, the publish proceeds (the SDK drops a
 * duplicate by msgId) rather than being refused.
 */
export abstract class SharedIdempotency implements IdempotencyStore {
  private readonly local: IdempotencyCache;

  constructor(protected readonly windowMs: number) {
    this.local = new IdempotencyCache(windowMs);
  }

  /** The stored JSON of `key`, or undefined. May throw: the lookup then counts as a miss. */
  protected abstract read(key: string): Promise<string | undefined>;
  protected abstract write(key: string, json: string): Promise<unknown>;

  /** False while the store cannot be asked (disconnected): lookups and writes are skipped. */
  protected available(): boolean {
    return true;
  }

  async get(key: string): Promise<IdempotencyEntry | undefined> {
    const hit = this.local.get(key);
    if (hit || this.windowMs <= 0 || !this.available()) return hit;
    try {
      const raw = await this.read(key);
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
    if (this.windowMs <= 0 || !this.available()) return;
    this.write(key, JSON.stringify({ at: Date.now(), timestamp, position })).catch(() => undefined);
  }
}
