/**
 * One client connection: its identity, subscriptions, pending requests and its writer. The
 * session's state changes only through its own methods. Writing — the order of frames across the
 * direct, batched and queued paths, and the byte budget (`limits.maxQueueBytes`) every frame
 * counts against — is owned by write-path.ts; a frame that would pass the budget closes the
 * connection as a slow consumer (4003) so its client reconnects and recovers from history.
 */
import { CloseCode } from '@herald/protocol';
import type { Tags } from '@herald/protocol';
import type { Identity } from './auth.js';
import type { Transport } from './transport/transport.js';
import { SubscriptionSeam } from './engine/recovery-seam.js';
import { ConnectionWriter, type WriteScheduler } from './write-path.js';

/** A subscription not yet past its recovery seam: holds, then judges, its live messages. */
export type RecoveringBuffer = SubscriptionSeam<{ frame: Buffer; send?: (session: Session) => void }>;

/** Settles a server→client request with the client's response, or `{closed: true}` when the connection ended. */
export type PendingResolver = (frame: { data?: unknown; error?: unknown; closed?: true }) => void;

export type SessionState = 'connecting' | 'connected' | 'closed';

export interface SessionOwner {
  /** This node's write scheduler (ticks, holds, batches). */
  readonly writes: WriteScheduler;
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

  /** The connection's side of the write path (write-path.ts). */
  readonly writer: ConnectionWriter;

  constructor(
    readonly id: string,
    readonly transport: Transport,
    private readonly owner: SessionOwner,
    maxQueueBytes: number,
  ) {
    this.writer = new ConnectionWriter(transport, owner.writes, maxQueueBytes, () => this.closeAsSlow('slow consumer: outgoing queue full'));
  }

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

  /** A connected session's refreshed credentials for the same user (token refresh); its user never changes. */
  reauthenticate(identity: Identity): void {
    if (this.stateNow !== 'connected' || identity.user !== this.userNow) return;
    this.identityNow = identity;
    this.tagsNow = identity.tags;
  }

  /** The transport has closed, whoever closed it. */
  transportClosed(): void {
    this.stateNow = 'closed';
    this.writer.close(false);
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

  /** Adds a subscription; a recovering one holds live frames in its seam (returned) until `recovered`. */
  addSubscription(channel: string, recovering: boolean): RecoveringBuffer | undefined {
    const buffer: RecoveringBuffer | undefined = recovering ? new SubscriptionSeam() : undefined;
    this.channels.set(channel, buffer);
    if (recovering) this.recovering++;
    return buffer;
  }

  /** The seam of the channel's recovery in progress, if any. */
  recoveryBuffer(channel: string): RecoveringBuffer | undefined {
    return this.recovering > 0 ? this.channels.get(channel) : undefined;
  }

  /** A subscription crossed its recovery seam: live frames go straight to the connection again. */
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

  /** Bytes waiting in the writer's queue plus what the socket still buffers. */
  get backlogBytes(): number {
    return this.writer.backlogBytes;
  }

  /** Bytes that may still be queued now before the budget is reached (0 when it is). */
  get room(): number {
    return this.writer.room;
  }

  /** The largest recovery reply `enqueue(frame, true)` accepts now. */
  get replayRoomBytes(): number {
    return this.writer.replayRoomBytes;
  }

  /**
   * Offers one complete wire frame (write-path.ts). Returns false when the session is closed or
   * was just closed as slow. `replay` marks a recovery reply, sized with `replayRoomBytes`.
   */
  enqueue(frame: Buffer, replay = false): boolean {
    if (this.stateNow === 'closed') return false;
    return this.writer.enqueue(frame, replay);
  }

  /** Closes the session as a slow consumer (4003), reported once to the owner (metrics, log). */
  closeAsSlow(reason: string): void {
    if (this.stateNow === 'closed') return;
    this.owner.onSlowConsumer(this);
    this.close(CloseCode.SLOW_CONSUMER, reason);
  }

  close(code: number, reason: string): void {
    if (this.stateNow === 'closed') return;
    // Flush what is queued first, so a close after a final message still delivers it; a slow
    // consumer's queue is dropped, so its close frame follows only what the socket holds.
    this.writer.close(code !== CloseCode.SLOW_CONSUMER);
    this.stateNow = 'closed';
    this.transport.close(code, reason);
  }
}
