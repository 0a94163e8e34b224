/**
 * A hashed timer wheel: one interval timer for any number of scheduled items, so that heartbeats
 * and handshake deadlines for 50,000 connections cost one timer, not 50,000. Items fire at most
 * one tick late; `schedule` on an already-scheduled item moves it.
 */

export interface WheelEntry {
  /** Slot the entry sits in, or -1 when not scheduled. Owned by the wheel. */
  wheelSlot: number;
  wheelRound: number;
}

export class TimerWheel<T extends WheelEntry> {
  private readonly slots: Set<T>[];
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tickMs: number,
    slotCount: number,
    private readonly onExpire: (item: T) => void,
  ) {
    this.slots = Array.from({ length: slotCount }, () => new Set<T>());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  schedule(item: T, delayMs: number): void {
    this.cancel(item);
    const ticks = Math.max(1, Math.ceil(delayMs / this.tickMs));
    const slot = (this.cursor + ticks) % this.slots.length;
    item.wheelSlot = slot;
    item.wheelRound = Math.floor((ticks - 1) / this.slots.length);
    this.slots[slot]!.add(item);
  }

  cancel(item: T): void {
    if (item.wheelSlot >= 0) this.slots[item.wheelSlot]!.delete(item);
    item.wheelSlot = -1;
  }

  /** Advances one slot; exposed for tests that drive time by hand. */
  tick(): void {
    this.cursor = (this.cursor + 1) % this.slots.length;
    const slot = this.slots[this.cursor]!;
    if (slot.size === 0) return;
    const due: T[] = [];
    for (const item of slot) {
      if (item.wheelRound > 0) item.wheelRound--;
      else due.push(item);
    }
    for (const item of due) {
      slot.delete(item);
      item.wheelSlot = -1;
      this.onExpire(item);
    }
  }
}
