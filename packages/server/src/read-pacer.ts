/**
 * Fairness on the read side. `ws` parses all that one socket read brings (up to 64 KiB, and libuv
 * makes several reads per wake-up) and emits each frame synchronously, so a connection that writes
 * thousands of tiny frames at once would have every one of them handled before any other socket —
 * or a new handshake — is looked at. Here a connection gets at most `FRAMES_PER_TURN` frames
 * handled per event-loop turn: past that its socket is paused, the frames `ws` has already parsed
 * wait in order, and they are handled on the following turns (setImmediate), after the I/O of
 * everyone else. What waits is bounded by one read, since the socket is paused meanwhile.
 */

/** Enough for any interactive client to be served in one turn; small enough that a flood yields within a fraction of a millisecond. */
export const FRAMES_PER_TURN = 64;

/** Numbers the event-loop turns for all of a node's readers: one setImmediate per turn that has traffic. */
export class LoopTurns {
  private turn = 0;
  private ticking = false;

  current(): number {
    if (!this.ticking) {
      this.ticking = true;
      setImmediate(this.advance);
    }
    return this.turn;
  }

  private readonly advance = (): void => {
    this.ticking = false;
    this.turn++;
  };
}

export interface PausableSource {
  pause(): void;
  resume(): void;
}

/** One connection's frames, handled in order, at most `FRAMES_PER_TURN` per event-loop turn. */
export class PacedReader<T> {
  private turn = -1;
  private handled = 0;
  private waiting: T[] = [];
  private next = 0;

  constructor(
    private readonly turns: LoopTurns,
    private readonly source: PausableSource,
    private readonly handle: (frame: T) => void,
    /** True once the connection is closing: waiting frames are dropped and nothing more is paced. */
    private readonly condemned: () => boolean,
  ) {}

  push(frame: T): void {
    if (this.waiting.length === 0 && this.take()) {
      this.handle(frame);
      return;
    }
    this.waiting.push(frame);
    if (this.waiting.length === 1) {
      this.source.pause();
      setImmediate(this.drain);
    }
  }

  private take(): boolean {
    const turn = this.turns.current();
    if (turn !== this.turn) {
      this.turn = turn;
      this.handled = 0;
    }
    return this.handled++ < FRAMES_PER_TURN;
  }

  private readonly drain = (): void => {
    const waiting = this.waiting;
    while (this.next < waiting.length && !this.condemned() && this.take()) this.handle(waiting[this.next++]!);
    if (this.next < waiting.length && !this.condemned()) {
      setImmediate(this.drain);
      return;
    }
    this.waiting = [];
    this.next = 0;
    // Also when condemned: `ws` must read on to see the peer's close frame.
    this.source.resume();
  };
}
