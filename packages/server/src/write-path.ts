/**
 * The write path: how already-encoded frames reach a connection's socket. One module owns it.
 *
 * INVARIANT: frames offered to one connection are written to its socket in the order they were
 * offered, whichever of the three paths each one takes:
 *
 * - direct:  the connection's first frame of a tick, with nothing queued for it and no batch
 *            publish holding writes, is written at once (`Transport.write`);
 * - batched: during a fan-out, a frame for a connection that could take it directly is gathered
 *            with the other recipients of the same bytes and sent by one native call per chunk
 *            (`DirectBatch`); whatever the kernel did not take goes to `Transport.finishDirect`,
 *            i.e. behind everything, before anything else is written to that socket;
 * - queued:  everything else waits in the connection's queue and leaves in one write at the end of
 *            the tick (`WriteScheduler.flushAll`), or, for fan-out frames during a hold, at the
 *            hold's release.
 *
 * It holds because (1) a connection takes the direct or batched path at most once per tick and
 * only while its queue is empty, and claiming it marks the tick, so every later frame of the tick
 * queues behind it; (2) a batch is sent before its fan-out loop returns, so nothing can be written
 * to a gathered socket between its claim and the send; (3) the queue is only ever written whole,
 * in order, and once something is queued nothing takes the direct path until it was flushed; and
 * (4) a transport with bytes still buffered refuses direct sends (`directFd` is -1), so the
 * remainder of a partial send is never overtaken.
 *
 * The byte budget (`limits.maxQueueBytes`) is enforced here too, because what counts against it
 * is exactly what this module holds plus what the socket still buffers: every frame passes
 * `ConnectionWriter.enqueue` (or a batch's `takeDirect`, which refuses frames larger than the
 * budget), and a frame that would take the backlog past the budget closes the connection as a
 * slow consumer instead of being queued. Recovery replies may stretch the budget by their size,
 * up to one more budget in all, until the backlog has drained (see `enqueue`).
 */
import { sendMany as nativeSendMany, type SendMany } from './transport/direct-send.js';
import type { Transport } from './transport/transport.js';

/** What the scheduler reports: slow-consumer closes are the connection's, flushes the node's metrics. */
export interface WriteEvents {
  /** After an end-of-tick flush or a release: how many frames left (direct ones included). */
  onFlushed(frames: number): void;
}

/** One connection's side of the write path: its queue, its budget, its place in the tick. */
export class ConnectionWriter {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** How far recovery replies stretched the budget (≤ maxQueueBytes); 0 once the backlog drained. */
  private replayStretch = 0;
  private flushScheduled = false;
  /** The scheduler's tick in which a frame was last written directly or claimed by a batch (-1: never). */
  private directTick = -1;
  private closed = false;

  constructor(
    readonly transport: Transport,
    private readonly scheduler: WriteScheduler,
    private readonly maxQueueBytes: number,
    /** Called when a frame would pass the budget; the owner closes the connection (4003). */
    private readonly onOverflow: () => void,
  ) {}

  /** Bytes waiting in the queue plus what the socket still buffers. */
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
   * Offers one complete wire frame. Returns false when the writer is closed or the frame would
   * take the backlog past the budget (then `onOverflow` ran). `replay` marks a recovery reply,
   * which may stretch the budget; callers size it with `replayRoomBytes`.
   */
  enqueue(frame: Buffer, replay = false): boolean {
    if (this.closed) return false;
    const backlog = this.queuedBytes + this.transport.bufferedAmount;
    if (backlog === 0) this.replayStretch = 0;
    if (replay) this.replayStretch = Math.min(this.maxQueueBytes, this.replayStretch + frame.length);
    if (backlog + frame.length > this.maxQueueBytes + this.replayStretch) {
      this.onOverflow();
      return false;
    }
    // The common case — one message for this connection in this tick — goes out at once, so the
    // first subscriber is not kept waiting while the rest are queued. Comparing tick numbers keeps
    // the direct path free of per-connection flush bookkeeping.
    const scheduler = this.scheduler;
    if (!this.flushScheduled && this.directTick !== scheduler.tick && !scheduler.holding) {
      this.directTick = scheduler.tick;
      this.transport.write([frame]);
      scheduler.wroteDirectly();
      return true;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      scheduler.scheduleFlush(this);
    }
    return true;
  }

  /**
   * Claims this tick's direct write for a fan-out batch: the descriptor to send `frame` to when
   * it may go directly now, else -1 (use `enqueue`). Once claimed, anything else offered in the
   * tick queues behind it, and the batch must report the send with `sentDirect`.
   */
  takeDirect(frame: Buffer): number {
    const scheduler = this.scheduler;
    if (this.flushScheduled || this.directTick === scheduler.tick || scheduler.holding || this.closed || frame.length > this.maxQueueBytes) return -1;
    const fd = this.transport.directFd?.() ?? -1;
    if (fd >= 0) this.directTick = scheduler.tick;
    return fd;
  }

  /** A batch send gave this connection `written` bytes of `frame` (negative: −errno); the rest leaves normally. */
  sentDirect(frame: Buffer, written: number): void {
    if (written !== frame.length) this.transport.finishDirect!(frame, written);
  }

  /** Hands everything queued to the transport in one write. Returns the number of frames written. */
  flush(): number {
    this.flushScheduled = false;
    const n = this.queue.length;
    if (n === 0 || this.closed) return 0;
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.transport.write(frames);
    return n;
  }

  /**
   * No more writes. With `flushFirst`, what is queued is written before (a final message before
   * a close still arrives); without it (a slow consumer) it is dropped, so the close frame the
   * caller sends next follows only what the socket already holds.
   */
  close(flushFirst: boolean): void {
    if (this.closed) return;
    if (flushFirst) this.flush();
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
  }
}

/**
 * This node's side of the write path: ticks, the end-of-tick flush, holds (a batch publish) and
 * the fan-out's direct-send batch.
 */
export class WriteScheduler {
  private dirty: ConnectionWriter[] = [];
  private flushQueued = false;
  /** Frames written directly (not queued) since the last end of tick, for the flush metrics. */
  private directWrites = 0;
  /** Advances at every end-of-tick flush; a connection writes directly at most once per tick. */
  tick = 0;
  /** Reused by every fan-out; undefined without a `sendMany`. */
  private readonly batch: DirectBatch | undefined;
  /** The batch of the fan-out loop running now, if any (`offer` adds to it). */
  private activeBatch: DirectBatch | undefined;
  private holds = 0;
  /** Fan-out loops running now: frames they queue during a hold wait for its release. */
  private fanningOut = 0;
  /** Connections holding fan-out frames of a hold, flushed at the next release. */
  private readonly deferred = new Set<ConnectionWriter>();
  /** Milliseconds spent in fan-out loops while held: a batch publish sizes its slices by it. */
  heldFanoutMs = 0;

  /** `sendMany`: the native batch send (default: the addon's, when it is loaded); tests pass a fake. */
  constructor(
    private readonly events: WriteEvents,
    sendMany: SendMany | undefined = nativeSendMany,
  ) {
    this.batch = sendMany ? new DirectBatch(sendMany, (count) => this.wroteDirectly(count)) : undefined;
  }

  get holding(): boolean {
    return this.holds > 0;
  }

  // ---- fan-out -------------------------------------------------------------------------------

  /**
   * Starts a fan-out loop over `audience` connections; returns its batch, or undefined when
   * frames should simply be enqueued (no batch send, a hold, a nested loop, or one recipient).
   * Every call must be matched by `endFanout` in a `finally`.
   */
  beginFanout(audience: number): { batch: DirectBatch | undefined; began: number } {
    this.fanningOut++;
    const began = this.holds > 0 ? performance.now() : -1;
    if (!this.batch || audience < 2 || this.holds > 0 || this.activeBatch) return { batch: undefined, began };
    this.activeBatch = this.batch;
    return { batch: this.batch, began };
  }

  /** Ends a fan-out loop: whatever happened in it, the sockets that claimed a direct send get their frame. */
  endFanout(run: { batch: DirectBatch | undefined; began: number }): void {
    this.fanningOut--;
    if (run.began >= 0) this.heldFanoutMs += performance.now() - run.began;
    if (!run.batch) return;
    this.activeBatch = undefined;
    run.batch.send();
  }

  /** Writes `frame` as part of the fan-out in progress (its batch) when it can, else through `enqueue`. */
  offer(w: ConnectionWriter, frame: Buffer): boolean {
    if (this.activeBatch?.add(w, frame)) return true;
    return w.enqueue(frame);
  }

  // ---- holds and flushing --------------------------------------------------------------------

  /**
   * While held, frames are queued rather than written at once, and a connection that fan-out
   * frames were queued for is flushed only at a release: the messages of one batch that reach the
   * same connection leave in one write, even when the batch yields to the event loop between
   * slices. Other frames (a pong, a reply) to connections no fan-out has reached still leave at
   * the end of their tick. Any release flushes everything deferred so far, so overlapping batches
   * cannot keep a connection waiting longer than one batch. Every hold must be released.
   */
  hold(): void {
    this.holds++;
  }

  release(): void {
    this.holds--;
    for (const w of this.deferred) this.dirty.push(w);
    this.deferred.clear();
    this.flushAll();
  }

  /** Marks a writer for a flush at the end of this tick (or at the release of the hold). */
  scheduleFlush(w: ConnectionWriter): void {
    this.dirty.push(w);
    if (this.holds > 0 && this.fanningOut > 0) this.deferred.add(w);
    this.endTickSoon();
  }

  /** Frames were written directly in this tick: make sure the tick ends (and counts them). */
  wroteDirectly(count = 1): void {
    this.directWrites += count;
    this.endTickSoon();
  }

  private endTickSoon(): void {
    if (!this.flushQueued) {
      this.flushQueued = true;
      // After the current job and its promise chain, before the event loop polls again: every
      // message a publish (or a whole batch) fans out is queued by then, so one write per
      // connection carries them all, without waiting behind unrelated I/O callbacks.
      process.nextTick(this.flushAll);
    }
  }

  /** The end of a tick: every marked writer's queue goes out (deferred ones wait for the release). */
  readonly flushAll = (): void => {
    this.flushQueued = false;
    this.tick++;
    const dirty = this.dirty;
    this.dirty = [];
    let frames = this.directWrites;
    this.directWrites = 0;
    const deferring = this.holds > 0 && this.deferred.size > 0;
    for (const w of dirty) {
      // Still marked for a flush, so later frames join its queue; `release` writes them all.
      if (deferring && this.deferred.has(w)) continue;
      frames += w.flush();
    }
    if (frames > 0) this.events.onFlushed(frames);
  };
}

/**
 * Sockets that take the same frame directly, sent with one native call per chunk of `CHUNK`
 * connections. Chunks keep the first recipients from waiting while the loop looks at the rest,
 * while still taking the per-call cost off almost every send. A writer is added only when
 * nothing is pending on it, and nothing else is written to it between `add` and the chunk's
 * send, so its frames keep their order.
 */
export class DirectBatch {
  private static readonly CHUNK = 32;
  private readonly fds = new Int32Array(DirectBatch.CHUNK);
  private readonly results = new Int32Array(DirectBatch.CHUNK);
  private readonly writers: Array<ConnectionWriter | undefined> = new Array<ConnectionWriter | undefined>(DirectBatch.CHUNK).fill(undefined);
  private count = 0;
  /** The frame every gathered socket gets; a different frame is refused (the caller enqueues it). */
  private frame: Buffer | undefined;

  constructor(
    private readonly sendMany: SendMany,
    private readonly onSent: (count: number) => void,
  ) {}

  /** Takes `w` into the batch when it can be sent to directly; false means: enqueue instead. */
  add(w: ConnectionWriter, frame: Buffer): boolean {
    if (this.count > 0 && frame !== this.frame) return false;
    const fd = w.takeDirect(frame);
    if (fd < 0) return false;
    this.frame = frame;
    this.fds[this.count] = fd;
    this.writers[this.count++] = w;
    if (this.count === DirectBatch.CHUNK) this.send();
    return true;
  }

  /** Sends what is gathered (the loop calls it once more at its end). */
  send(): void {
    const count = this.count;
    const frame = this.frame;
    if (count === 0 || !frame) return;
    this.count = 0;
    this.frame = undefined;
    this.sendMany(this.fds, count, frame, this.results);
    for (let i = 0; i < count; i++) {
      this.writers[i]!.sentDirect(frame, this.results[i]!);
      // Drop the reference so a closed connection is not kept alive until the next fan-out.
      this.writers[i] = undefined;
    }
    this.onSent(count);
  }
}
