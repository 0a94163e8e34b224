/**
 * A hashed timer wheel: one interval timer for any number of scheduled items, so that heartbeats
 * and handshake deadlines for 50,000 connections cost one timer, not 50,000. Items fire at most
 * one tick late; `schedule` on an already-scheduled item moves it. An empty wheel stops its
 * interval: an idle server then never wakes up for it (each wake-up of an idle core costs far
 * more than the tick itself on a VM), and the first schedule starts it again.
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
  /** Between start() and stop(): tick whenever something is scheduled. */
  private running = false;
  private items = 0;

  constructor(
    private readonly tickMs: number,
    slotCount: number,
    private readonly onExpire: (item: T) => void,
  ) {
    this.slots = Array.from({ length: slotCount }, () => new Set<T>());
  }

  start(): void {
    this.running = true;
    if (this.items > 0) this.arm();
  }

  stop(): void {
    this.running = false;
    this.disarm();
  }

  /** Items scheduled and not yet fired or cancelled. */
  get size(): number {
    return this.items;
  }

  /** Whether the interval timer is set (for tests). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  private disarm(): void {
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
    if (++this.items === 1 && this.running) this.arm();
  }

  cancel(item: T): void {
    if (item.wheelSlot < 0) return;
    this.slots[item.wheelSlot]!.delete(item);
    item.wheelSlot = -1;
    this.items--;
  }

  /** Advances one slot; exposed for tests that drive time by hand. */
  tick(): void {
    this.cursor = (this.cursor + 1) % this.slots.length;
    const slot = this.slots[this.cursor]!;
    // Disarming here rather than when the last item leaves spares a re-arm when an expiring item
    // reschedules itself (every heartbeat does).
    if (this.items === 0) return this.disarm();
    if (slot.size === 0) return;
    const due: T[] = [];
    for (const item of slot) {
      if (item.wheelRound > 0) item.wheelRound--;
      else due.push(item);
    }
    for (const item of due) {
      // An earlier callback of this tick may have cancelled or moved it.
      if (item.wheelSlot !== this.cursor || !slot.has(item)) continue;
      slot.delete(item);
      item.wheelSlot = -1;
      this.items--;
      this.onExpire(item);
    }
  }
}
