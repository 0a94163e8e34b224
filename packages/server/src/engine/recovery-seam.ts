/**
 * The recovery seam: where a subscription's `subscribed` reply (its read of the channel's stream)
 * meets the live stream. One subscription of one connection owns one `SubscriptionSeam`, from the
 * subscribe until the seam is crossed.
 *
 * Invariant (docs/reliability.md): after a reply that left the channel's stream at position T, the
 * connection gets the live publications of T's stream with offsets above T, each once, starting
 * with T's successor — or, where that cannot be assured, it is told to reconnect and recover.
 *
 * Why a rule is needed: the read and the live stream reach a node by different paths (on Redis a
 * command connection and a pub/sub connection, on NATS a JetStream read and a core NATS subject,
 * on SQLite a read of the database and a dispatch after the commit), so a publication the read
 * already returned can arrive live after the reply was queued, and one stored just before the read
 * can arrive live before the reply.
 *
 * The rule:
 * - until the reply is queued, live publications are held (`offer` answers `held`);
 * - once it is (`settle(T)`), each held and each later live publication of T's stream with an
 *   offset at or below T is dropped (the reply covered it); the first one above T is delivered only
 *   if it is T's successor: its `prev` is T where the engine names the predecessor (NATS, whose
 *   offsets are stream sequences shared by all channels), else its offset is T + 1. From then on
 *   the subscription is live and the rule is off (each engine's live stream is in offset order);
 * - a publication of another stream (epoch) follows on only if it is that stream's first (offset 1,
 *   or no predecessor): T's stream was lost or forgotten, and the client learns the new epoch from
 *   it exactly as a subscriber past the seam does. A T of no stream (offset 0 of a no-stream epoch:
 *   the channel had no stream at the read) is followed the same way by the first stream to appear;
 * - anything else — a first publication above T that is not T's successor, or a later message of
 *   another stream — is a gap: the caller closes the connection with FORCE_RECONNECT, as it does
 *   for a broker gap, and the client recovers from the last position it saw.
 */
import type { StreamPosition } from '@herald/protocol';
import { isNoStreamPosition, type Dispatch } from './broker.js';

/** Where a live publication sits in its channel's stream. */
export interface LivePoint {
  offset: number;
  epoch: string;
  /** The channel's previous offset, from engines whose offsets are not contiguous (NATS). */
  prev?: number;
}

export type SeamVerdict = 'drop' | 'deliver' | 'gap';

/** The live point of a channel dispatch; undefined when the engine gave it no position. */
export function livePoint(dispatch: Dispatch): LivePoint | undefined {
  const p = dispatch.position;
  if (!p) return undefined;
  return dispatch.prev !== undefined ? { offset: p.offset, epoch: p.epoch, prev: dispatch.prev } : { offset: p.offset, epoch: p.epoch };
}

/** The rule for one live publication after a reply at `top`, before the seam is crossed. */
export function seamVerdict(top: StreamPosition, live: LivePoint): SeamVerdict {
  // Another stream (the old one was lost or forgotten): only its first message follows on.
  if (live.epoch !== top.epoch || isNoStreamPosition(top)) return startsStream(live) ? 'deliver' : 'gap';
  if (live.offset <= top.offset) return 'drop';
  const follows = live.prev !== undefined ? live.prev === top.offset : live.offset === top.offset + 1;
  return follows ? 'deliver' : 'gap';
}

/** The first message of its stream: offset 1, or (non-contiguous offsets) no predecessor. */
function startsStream(live: LivePoint): boolean {
  return live.prev !== undefined ? live.prev === 0 : live.offset === 1;
}

/**
 * One subscription between its subscribe and the live stream. `T` is what the caller delivers
 * (a frame, a sender). Not thread-safe by design: every call comes from the node's one event loop.
 */
export class SubscriptionSeam<T> {
  private held: Array<{ point: LivePoint | undefined; item: T }> = [];
  private top: StreamPosition | undefined;
  private done = false;

  /** True once the reply's position is known (`settle` was called). */
  get settled(): boolean {
    return this.top !== undefined;
  }

  /** True once T's successor went out: the subscription is live and the rule is off. */
  get crossed(): boolean {
    return this.done;
  }

  /** A live publication of the channel: held before the reply, judged after it. */
  offer(point: LivePoint | undefined, item: T): SeamVerdict | 'held' {
    if (!this.top) {
      this.held.push({ point, item });
      return 'held';
    }
    return this.judge(point);
  }

  /**
   * The reply went out, leaving the stream at `top`. Returns what was held and is to go out now,
   * in order, and whether a gap was found (then nothing after it is delivered).
   */
  settle(top: StreamPosition): { deliver: T[]; gap: boolean } {
    this.top = top;
    const held = this.held;
    this.held = [];
    const deliver: T[] = [];
    for (const { point, item } of held) {
      const v = this.judge(point);
      if (v === 'gap') return { deliver, gap: true };
      if (v === 'deliver') deliver.push(item);
    }
    return { deliver, gap: false };
  }

  private judge(point: LivePoint | undefined): SeamVerdict {
    // Without a position there is nothing to order by: such a publication is delivered as it comes.
    if (this.done || !point) return 'deliver';
    const v = seamVerdict(this.top!, point);
    if (v === 'deliver') this.done = true;
    return v;
  }
}

/** The reason a connection is closed at a gap in the seam (with FORCE_RECONNECT). */
export const SEAM_GAP_REASON = 'messages may have been missed: reconnect and recover';
