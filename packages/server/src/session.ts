/**
 * One client connection: its identity, subscriptions and the write side. Writes are queued
 * within a byte budget and leave in one write per connection per tick; past the budget the
 * connection is closed as a slow consumer so its client reconnects and recovers from history.
 *
 * The budget (`limits.maxQueueBytes`) is owned here and has no exceptions: every frame for the
 * connection — live messages, recovery replies, inbox batches, RPC replies, retransmissions,
 * errors — goes through `enqueue` (or, with nothing pending, `takeDirect`), which checks it.
 * The one allowance is for recovery replies, which are large by design: a client closed as a
 * slow consumer has missed about a budget's worth, and must be able to recover it. Replies stretch
 * the budget by their size, up to one more budget in all, until the backlog has drained — so a
 * connection never holds more than twice the budget, however often it asks for replays without
 * reading, and live frames behind a replay get the same budget as without it.
 */
import { CloseCode } from '@herald/protocol';
import type { Tags } from '@herald/protocol';
import type { Identity } from './auth.js';
import type { WheelEntry } from './timer-wheel.js';
import type { Transport } from './transport/transport.js';
import type { SubscriptionSeam } from './engine/recovery-seam.js';

/** A subscription not yet past its recovery seam: holds, then judges, its live messages. */
export type RecoveringBuffer = SubscriptionSeam<{ frame: Buffer; send?: (session: Session) => void }>;

/** Settles a server→client request with the client's response, or `{closed: true}` when the connection ended. */
export type PendingResolver = (frame: { data?: unknown; error?: unknown; closed?: true }) => void;

export type SessionState = 'connecting' | 'connected' | 'closed';

export interface SessionOwner {
  /** Marks the session for a flush at the end of this tick. */
  scheduleFlush(session: Session): void;
  /** Number of the current tick; it changes once the end-of-tick flush has run. */
  readonly tick: number;
  /** Frames were written directly in this tick: make sure the tick ends (and counts them). */
  wroteDirectly(count?: number): void;
  /** True while a batch is being fanned out: frames then wait to leave together. */
  readonly holding: boolean;
  /** Reports a slow-consumer close (metrics, logs). */
  onSlowConsumer(session: Session): void;
}

export class Session implements WheelEntry {
  state: SessionState = 'connecting';
  user = '';
  identity: Identity | undefined;
  tags: Tags = {};
  /** channel → undefined when live, or the buffer of a recovery in progress. */
  readonly subs = new Map<string, RecoveringBuffer | undefined>();
  /** How many of `subs` are recovering; while 0, fan-out skips looking the channel up. */
  recovering = 0;
  readonly connectedAt = Date.now();

  // Heartbeat bookkeeping, driven by the node's timer wheel.
  wheelSlot = -1;
  wheelRound = 0;
  awaitingPong = false;
  missedPongs = 0;

  invalidFrames = 0;
  /** Frames that arrived while the token was being verified, replayed once `connect` succeeds. */
  early: string[] | undefined;
  /** Server→client requests waiting for a response, by correlationId. */
  pending: Map<string, PendingResolver> | undefined;

  private queue: Buffer[] = [];
  /** How far recovery replies stretched the budget (≤ maxQueueBytes); 0 once the backlog drained. */
  private replayStretch = 0;
  private queuedBytes = 0;
  private flushScheduled = false;
  /** The owner's tick in which a frame was last written directly (-1: never). */
  private directTick = -1;

  constructor(
    readonly id: string,
    readonly transport: Transport,
    private readonly owner: SessionOwner,
    private readonly maxQueueBytes: number,
  ) {}

  get open(): boolean {
    return this.state !== 'closed';
  }

  /** Bytes waiting in our queue plus what the socket still buffers. */
  get backlogBytes(): number {
    return this.queuedBytes + this.transport.bufferedAmount;
  }

  /** Bytes that may still be queued now before the budget is reached (0 when it is). */
  get room(): number {
    return Math.max(0, this.maxQueueBytes - this.backlogBytes);
  }

  /** The largest recovery reply `enqueue(frame, true)` accepts now: up to twice the budget, less the backlog. */
  get replayRoomBytes(): number {
    return Math.max(0, 2 * this.maxQueueBytes - this.backlogBytes);
  }

  /**
   * Queues one complete wire frame. Returns false when the session is closed or was just closed
   * as slow: a frame that would take the backlog past the budget closes the connection (4003).
   * `replay` marks a recovery reply, which may stretch the budget (see the class comment);
   * callers size it with `replayRoomBytes`.
   */
  enqueue(frame: Buffer, replay = false): boolean {
    if (this.state === 'closed') return false;
    const backlog = this.queuedBytes + this.transport.bufferedAmount;
    if (backlog === 0) this.replayStretch = 0;
    if (replay) this.replayStretch = Math.min(this.maxQueueBytes, this.replayStretch + frame.length);
    if (backlog + frame.length > this.maxQueueBytes + this.replayStretch) {
      this.closeAsSlow('slow consumer: outgoing queue full');
      return false;
    }
    // The common case — one message for this connection in this tick — goes out at once, so the
    // first subscriber is not kept waiting while the rest are queued. Anything behind it in the
    // same tick (or everything, during a batch) is queued and leaves in one write at the flush.
    // Comparing tick numbers keeps the direct path free of per-session flush bookkeeping.
    const owner = this.owner;
    if (!this.flushScheduled && this.directTick !== owner.tick && !owner.holding) {
      this.directTick = owner.tick;
      this.transport.write([frame]);
      owner.wroteDirectly();
      return true;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      owner.scheduleFlush(this);
    }
    return true;
  }

  /**
   * Claims this tick's direct write for a fan-out batch: the descriptor to send `frame` to when
   * it is the connection's first frame of the tick with nothing queued, else -1 (use `enqueue`).
   * Once claimed, anything else written to this session in the tick queues behind it, and the
   * caller must report the send with `sentDirect`.
   */
  takeDirect(frame: Buffer): number {
    const owner = this.owner;
    if (this.flushScheduled || this.directTick === owner.tick || owner.holding || this.state === 'closed' || frame.length > this.maxQueueBytes) return -1;
    const fd = this.transport.directFd?.() ?? -1;
    if (fd >= 0) this.directTick = owner.tick;
    return fd;
  }

  /** A batch send gave this session `written` bytes of `frame`; the rest leaves normally. */
  sentDirect(frame: Buffer, written: number): void {
    if (written !== frame.length) this.transport.finishDirect!(frame, written);
  }

  /** Hands everything queued to the transport in one write. Returns the number of frames written. */
  flush(): number {
    this.flushScheduled = false;
    const n = this.queue.length;
    if (n === 0 || this.state === 'closed') return 0;
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.transport.write(frames);
    return n;
  }

  /** Closes the session as a slow consumer (4003), reported once to the owner (metrics, log). */
  closeAsSlow(reason: string): void {
    if (this.state === 'closed') return;
    this.owner.onSlowConsumer(this);
    this.close(CloseCode.SLOW_CONSUMER, reason);
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    // Flush what is queued first, so a close after a final message still delivers it.
    if (code !== CloseCode.SLOW_CONSUMER) this.flush();
    this.state = 'closed';
    this.queue = [];
    this.queuedBytes = 0;
    this.transport.close(code, reason);
  }
}
