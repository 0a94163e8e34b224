/**
 * The idempotency window in process memory: the memory engine's store of keys, and the SQLite
 * engine's authoritative copy, which it also writes to its table (sqlite/idempotency.ts). The
 * contract is ../idempotency.ts.
 */
import type { AcceptedPublish } from '../idempotency.js';

interface WindowEntry extends AcceptedPublish {
  at: number;
}

/**
 * The window in process memory, bounded by age (`windowMs`) and by count (`maxKeys`, the oldest
 * forgotten first). Synchronous, so a check and the store it guards happen in one turn.
 */
export class IdempotencyWindow {
  private readonly entries = new Map<string, WindowEntry>();

  constructor(
    readonly windowMs: number,
    readonly maxKeys: number,
  ) {}

  /** False when de-duplication is off (`windowMs` or `maxKeys` is 0). */
  get enabled(): boolean {
    return this.windowMs > 0 && this.maxKeys > 0;
  }

  get(id: string, now = Date.now()): AcceptedPublish | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (now - e.at > this.windowMs) {
      this.entries.delete(id);
      return undefined;
    }
    return e.position ? { timestamp: e.timestamp, position: e.position } : { timestamp: e.timestamp };
  }

  /** Remembers `id` as accepted at `at` (the original's time when rebuilding from a store). */
  set(id: string, accepted: AcceptedPublish, at = Date.now()): void {
    if (!this.enabled) return;
    this.entries.delete(id);
    this.entries.set(id, { ...accepted, at });
    this.sweep(Date.now());
  }

  /** Forgets `id` (a publish that claimed it did not go through after all). */
  delete(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(now: number): void {
    // Map iteration is insertion order, so the oldest entries come first.
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxKeys && now - e.at <= this.windowMs) break;
      this.entries.delete(k);
    }
  }
}
