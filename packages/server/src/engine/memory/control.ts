/**
 * The control bus in one process: for a single node, and for several nodes sharing one memory
 * engine (tests). Delivery is asynchronous, as on a network bus, so no handler runs inside the
 * publisher's call.
 */
import type { ControlBus } from '../control-bus.js';

export class MemoryControlBus implements ControlBus {
  private readonly channels = new Map<string, Set<(payload: string) => void>>();

  async publish(channel: string, payload: string): Promise<void> {
    const listeners = this.channels.get(channel);
    if (!listeners) return;
    for (const on of [...listeners]) setImmediate(() => on(payload));
  }

  async subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>> {
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    const listener = (payload: string) => onMessage(payload);
    set.add(listener);
    return async () => {
      set.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
