import { ClientErrorCode, HeraldError } from './errors.js';

/** A client publish the server has not confirmed yet. */
export interface OutboxEntry {
  msgId: string;
  channel: string;
  eventType: string;
  payload: unknown;
  version?: string;
  /** ms since the epoch when `publish()` was called. */
  createdAt: number;
}

/** The subset of the Web Storage API the outbox persists to (e.g. `localStorage`). */
export interface OutboxStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface OutboxOptions {
  maxSize: number;
  storage?: OutboxStorage | undefined;
  storageKey: string;
  /** Persistence failures (quota, private mode) are reported, not thrown. */
  onError?: (err: HeraldError) => void;
}

/**
 * Unconfirmed publishes in the order they were made, keyed by msgId, at most `maxSize` of them.
 * With a storage it writes itself through on every change and reloads at construction, so
 * publishes survive a page reload.
 */
export class Outbox {
  readonly #entries = new Map<string, OutboxEntry>();
  readonly #opts: OutboxOptions;

  constructor(opts: OutboxOptions) {
    this.#opts = opts;
    this.#load();
  }

  get size(): number {
    return this.#entries.size;
  }

  get maxSize(): number {
    return this.#opts.maxSize;
  }

  /** Adds an entry; an entry with the same msgId already here is kept as is. Throws `outbox_full`. */
  add(entry: OutboxEntry): void {
    if (this.#entries.has(entry.msgId)) return;
    if (this.#entries.size >= this.#opts.maxSize) {
      throw new HeraldError(ClientErrorCode.OUTBOX_FULL, `outbox is full (${this.#opts.maxSize} unconfirmed publishes)`);
    }
    this.#entries.set(entry.msgId, entry);
    this.#save();
  }

  get(msgId: string): OutboxEntry | undefined {
    return this.#entries.get(msgId);
  }

  has(msgId: string): boolean {
    return this.#entries.has(msgId);
  }

  /** Returns whether the entry was there. */
  remove(msgId: string): boolean {
    const had = this.#entries.delete(msgId);
    if (had) this.#save();
    return had;
  }

  /** Entries oldest first. */
  entries(): OutboxEntry[] {
    return [...this.#entries.values()];
  }

  #load(): void {
    const { storage, storageKey } = this.#opts;
    if (!storage) return;
    let raw: string | null;
    try {
      raw = storage.getItem(storageKey);
    } catch (err) {
      this.#report('read', err);
      return;
    }
    if (!raw) return;
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      list = undefined;
    }
    if (!Array.isArray(list)) {
      this.#report('read', new Error('stored outbox is not a JSON array; discarded'));
      return;
    }
    for (const e of list as Partial<OutboxEntry>[]) {
      const ok = typeof e === 'object' && e !== null && typeof e.msgId === 'string' && typeof e.channel === 'string' && typeof e.eventType === 'string';
      if (ok && this.#entries.size < this.#opts.maxSize) {
        this.#entries.set(e.msgId!, { ...e, createdAt: typeof e.createdAt === 'number' ? e.createdAt : Date.now() } as OutboxEntry);
      }
    }
  }

  #save(): void {
    const { storage, storageKey } = this.#opts;
    if (!storage) return;
    try {
      if (this.#entries.size === 0) storage.removeItem(storageKey);
      else storage.setItem(storageKey, JSON.stringify([...this.#entries.values()]));
    } catch (err) {
      this.#report('write', err);
    }
  }

  #report(op: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#opts.onError?.(new HeraldError(ClientErrorCode.STORAGE_FAILED, `outbox storage ${op} failed: ${message}`));
  }
}
