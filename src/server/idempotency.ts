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
