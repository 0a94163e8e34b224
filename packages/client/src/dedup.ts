/** What the client did with a message it has seen. */
export type SeenState = 'handling' | 'acked';

/**
 * The msgIds of recently delivered messages, at most `capacity` of them; the least recently seen
 * is forgotten first. A redelivery of a forgotten msgId is treated as new.
 */
export class SeenMessages {
  readonly #entries = new Map<string, SeenState>();
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(msgId: string): SeenState | undefined {
    const state = this.#entries.get(msgId);
    if (state !== undefined) this.#touch(msgId, state);
    return state;
  }

  set(msgId: string, state: SeenState): void {
    this.#touch(msgId, state);
    while (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
  }

  /** Forgets a msgId so that a redelivery runs the handlers again (used when a handler failed). */
  delete(msgId: string): void {
    this.#entries.delete(msgId);
  }

  clear(): void {
    this.#entries.clear();
  }

  #touch(msgId: string, state: SeenState): void {
    this.#entries.delete(msgId);
    this.#entries.set(msgId, state);
  }
}
