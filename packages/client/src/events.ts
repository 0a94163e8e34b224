/** Removes the registration that returned it. Calling it twice is harmless. */
export type Disposer = () => void;

/** Maps each event name to the tuple of arguments its listeners receive. */
export type EventMap = { [event: string]: unknown[] };

type AnyListener = (...args: any[]) => unknown;

/** Stands in `emit()`'s results for a listener that threw (the error was already reported). */
export const THREW: unique symbol = Symbol('threw');

/**
 * A small typed event emitter. `on()` returns a disposer; a listener that throws is reported to
 * `onListenerError` instead of unwinding into the emitter's caller, so a bad handler can never
 * break the connection loop.
 */
export class Emitter<M extends EventMap> {
  readonly #listeners = new Map<keyof M, Set<AnyListener>>();
  readonly #onListenerError: ((err: unknown, event: keyof M) => void) | undefined;

  constructor(onListenerError?: (err: unknown, event: keyof M) => void) {
    this.#onListenerError = onListenerError;
  }

  on<K extends keyof M>(event: K, listener: (...args: M[K]) => unknown): Disposer {
    if (typeof listener !== 'function') throw new TypeError(`listener for "${String(event)}" must be a function`);
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    // Wrap so the same function can be registered twice and disposed independently.
    const entry: AnyListener = (...args) => listener(...(args as M[K]));
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  once<K extends keyof M>(event: K, listener: (...args: M[K]) => unknown): Disposer {
    const dispose = this.on(event, (...args) => {
      dispose();
      return listener(...args);
    });
    return dispose;
  }

  /**
   * Calls every listener in registration order and returns what they returned (a listener that
   * threw contributes `THREW`), so callers can wait for async handlers.
   */
  emit<K extends keyof M>(event: K, ...args: M[K]): unknown[] {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return [];
    const results: unknown[] = [];
    for (const listener of [...set]) {
      try {
        results.push(listener(...args));
      } catch (err) {
        results.push(THREW);
        this.#report(err, event);
      }
    }
    return results;
  }

  listenerCount(event: keyof M): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Drops every listener of every event. */
  clear(): void {
    this.#listeners.clear();
  }

  #report(err: unknown, event: keyof M): void {
    if (!this.#onListenerError) return;
    try {
      this.#onListenerError(err, event);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  }
}
