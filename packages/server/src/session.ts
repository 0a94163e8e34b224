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
import type { Transport } from './transport/transport.js';

/** A subscription whose recovery is still running buffers live messages here, in order. */
export interface RecoveringBuffer {
  frames: Array<{ offset: number; frame: Buffer; send?: (session: Session) => void }>;
}

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

export class Session {
  private stateNow: SessionState = 'connecting';
  private identityNow: Identity | undefined;
  private userNow = '';
  private tagsNow: Tags = {};
  /** channel → undefined when live, or the buffer of a recovery in progress. */
  private readonly channels = new Map<string, RecoveringBuffer | undefined>();
  /** How many of `channels` are recovering; while 0, fan-out skips looking the channel up. */
  private recovering = 0;
  readonly connectedAt = Date.now();

  private invalidFrames = 0;
  /** Frames that arrived while the token was being verified, replayed once `connect` succeeds. */
  private early: string[] | undefined;
  /** Server→client requests waiting for a response, by correlationId. */
  private pending: Map<string, PendingResolver> | undefined;

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
    return this.stateNow !== 'closed';
  }

  // ---- lifecycle and identity ------------------------------------------------------------------
  // connecting → connected (`authenticate`) → closed (`close`, or `transportClosed` when the peer
  // or the socket ended it). Nothing leaves `closed`.

  get state(): SessionState {
    return this.stateNow;
  }

  /** Set once `connect` succeeded; undefined before. */
  get identity(): Identity | undefined {
    return this.identityNow;
  }

  get user(): string {
    return this.userNow;
  }

  get tags(): Tags {
    return this.tagsNow;
  }

  /** `connect` succeeded with this identity: the session is connected under its user and tags. */
  authenticate(identity: Identity): void {
    if (this.stateNow !== 'connecting') return;
    this.identityNow = identity;
    this.userNow = identity.user;
    this.tagsNow = identity.tags;
    this.stateNow = 'connected';
  }

  /** The transport has closed, whoever closed it. */
  transportClosed(): void {
    this.stateNow = 'closed';
    this.queue = [];
    this.queuedBytes = 0;
  }

  /** Frames that arrive from now on are kept (see `keepEarly`) until `takeEarly`. */
  holdEarlyFrames(): void {
    this.early = [];
  }

  /**
   * While early frames are held: keeps `text` and returns true, or returns 'full' when `max` are
   * already kept. Returns false when frames are not being held.
   */
  keepEarly(text: string, max: number): boolean | 'full' {
    if (!this.early) return false;
    if (this.early.length >= max) return 'full';
    this.early.push(text);
    return true;
  }

  /** Stops holding early frames and returns those kept. */
  takeEarly(): string[] {
    const early = this.early ?? [];
    this.early = undefined;
    return early;
  }

  /** Counts one more invalid frame from the client; returns the count so far (never reset). */
  countInvalidFrame(): number {
    return ++this.invalidFrames;
  }

  // ---- subscriptions -------------------------------------------------------------------------
  // Membership in the hub's channel index mirrors this map; both change through the subscriptions
  // part (subscriptions.ts) only.

  get subscriptionCount(): number {
    return this.channels.size;
  }

  isSubscribed(channel: string): boolean {
    return this.channels.has(channel);
  }

  subscribedChannels(): IterableIterator<string> {
    return this.channels.keys();
  }

  /** Adds a subscription; a recovering one buffers live frames (returned) until `recovered`. */
  addSubscription(channel: string, recovering: boolean): RecoveringBuffer | undefined {
    const buffer = recovering ? { frames: [] } : undefined;
    this.channels.set(channel, buffer);
    if (recovering) this.recovering++;
    return buffer;
  }

  /** The buffer of the channel's recovery in progress, if any. */
  recoveryBuffer(channel: string): RecoveringBuffer | undefined {
    return this.recovering > 0 ? this.channels.get(channel) : undefined;
  }

  /** A subscription's recovery is done: live frames go straight to the connection again. */
  recovered(channel: string): void {
    if (!this.channels.get(channel)) return;
    this.channels.set(channel, undefined);
    this.recovering--;
  }

  /** Returns false when not subscribed. */
  removeSubscription(channel: string): boolean {
    if (!this.channels.has(channel)) return false;
    if (this.channels.get(channel)) this.recovering--;
    this.channels.delete(channel);
    return true;
  }

  // ---- server → client requests ---------------------------------------------------------------

  get pendingRequests(): number {
    return this.pending?.size ?? 0;
  }

  awaitResponse(correlationId: string, resolve: PendingResolver): void {
    (this.pending ??= new Map()).set(correlationId, resolve);
  }

  /** Removes and returns the resolver waiting for `correlationId`, if any. */
  takeResponder(correlationId: string): PendingResolver | undefined {
    const resolve = this.pending?.get(correlationId);
    if (resolve) this.pending!.delete(correlationId);
    return resolve;
  }

  /** Settles every waiting request with `{closed: true}`. */
  failPendingRequests(): void {
    if (!this.pending) return;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const resolve of waiting) resolve({ closed: true });
  }

  // ---- writing -------------------------------------------------------------------------------

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
    this.stateNow = 'closed';
    this.queue = [];
    this.queuedBytes = 0;
    this.transport.close(code, reason);
  }
}
