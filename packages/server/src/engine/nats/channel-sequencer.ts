/**
 * Puts a channel's live dispatches back in offset order when the transport mixes them up. On
 * NATS, a node stores a message in JetStream and then sends the live dispatch on core NATS from
 * its own connection; two nodes publishing to one channel can have their dispatches reach a third
 * node in the opposite order of the offsets JetStream gave them. Each dispatch carries the offset
 * of the channel's previous message (`prev`, exact because stores are a compare-and-set on it), so
 * a gap is known, not guessed: a dispatch whose predecessor has not arrived waits — at most
 * `holdMs`, at most `maxHeld` per channel — and goes out as soon as the predecessor does. If the
 * predecessor never comes (lost with a dropped connection, which the broker reports as a gap so
 * that clients recover from history), what waited goes out in offset order after `holdMs`.
 */

interface Held<T> {
  offset: number;
  item: T;
}

interface ChannelState<T> {
  epoch: string;
  /** Offset of the last dispatch passed on. */
  last: number;
  /** Waiting dispatches by the offset they follow. */
  held: Map<number, Held<T>>;
  timer: NodeJS.Timeout | undefined;
}

export class ChannelSequencer<T> {
  private readonly channels = new Map<string, ChannelState<T>>();

  constructor(
    private readonly deliver: (item: T) => void,
    private readonly holdMs = 100,
    private readonly maxHeld = 1000,
  ) {}

  /** One live dispatch of `channel` at `offset`, following `prev`. */
  push(channel: string, epoch: string, offset: number, prev: number, item: T): void {
    const st = this.channels.get(channel);
    // The first dispatch seen (or the first of a new stream) has nothing to be ordered against.
    if (!st || st.epoch !== epoch) {
      if (st) this.flush(channel);
      this.channels.set(channel, { epoch, last: offset, held: new Map(), timer: undefined });
      this.deliver(item);
      return;
    }
    if (prev === st.last || offset <= st.last) {
      // In order — or late, after its successors were let go: passing it on beats losing it.
      this.deliver(item);
      if (offset > st.last) st.last = offset;
      this.release(st);
      return;
    }
    st.held.set(prev, { offset, item });
    if (st.held.size > this.maxHeld) this.flush(channel);
    else if (!st.timer) {
      st.timer = setTimeout(() => this.flush(channel), this.holdMs);
      st.timer.unref();
    }
  }

  /** Lets everything waiting on `channel` go, in offset order, and forgets the channel. */
  forget(channel: string): void {
    this.flush(channel);
    this.channels.delete(channel);
  }

  /** `forget` for every channel (the link to NATS dropped: what follows is a new sequence). */
  reset(): void {
    for (const channel of [...this.channels.keys()]) this.forget(channel);
  }

  /** Dispatches waiting for a predecessor, over all channels (for tests and metrics). */
  get waiting(): number {
    let n = 0;
    for (const st of this.channels.values()) n += st.held.size;
    return n;
  }

  /** Passes on the held dispatches that now follow `st.last`, one after another. */
  private release(st: ChannelState<T>): void {
    for (let next = st.held.get(st.last); next; next = st.held.get(st.last)) {
      st.held.delete(st.last);
      st.last = next.offset;
      this.deliver(next.item);
    }
    if (st.held.size === 0 && st.timer) {
      clearTimeout(st.timer);
      st.timer = undefined;
    }
  }

  private flush(channel: string): void {
    const st = this.channels.get(channel);
    if (!st) return;
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    const held = [...st.held.values()].sort((x, y) => x.offset - y.offset);
    st.held.clear();
    for (const h of held) {
      if (h.offset > st.last) st.last = h.offset;
      this.deliver(h.item);
    }
  }
}
