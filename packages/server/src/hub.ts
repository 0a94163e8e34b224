/**
 * The hub is this node's registry of sessions and its indexes — by channel, by user and by tag —
 * and the fan-out loop. A message for N sessions is encoded into one wire frame and the same
 * bytes go to all N: a connection's first frame of a tick is sent at once (with the native addon,
 * 32 sockets per call), later ones queue and leave in one write at the end of the tick.
 */
import { sendMany, type SendMany } from './transport/direct-send.js';
import type { RecoveringBuffer, Session, SessionOwner } from './session.js';
import { indexKey, type CompiledFilter } from './tag-filter.js';

/** Serves one recipient of an at-least-once message. */
export type Recipient = (session: Session) => void;

export interface HubEvents {
  onSlowConsumer(session: Session): void;
  /** After a flush: how many frames left, and for latency metrics when the oldest was accepted. */
  onFlushed(frames: number): void;
}

export class Hub implements SessionOwner {
  readonly sessions = new Map<string, Session>();
  private readonly byUser = new Map<string, Set<Session>>();
  private readonly byChannel = new Map<string, Set<Session>>();
  private readonly byTag = new Map<string, Map<string, Set<Session>>>();
  /** Sessions per client IP key (IPv6 by prefix), pending and authenticated alike. */
  private readonly byIp = new Map<string, number>();
  /** Each session's per-IP key, kept so `remove` decrements what `addPending` counted. */
  private readonly ipKeys = new Map<Session, string>();
  /** Sessions that have not been sent `connected` yet: counted apart from the authenticated ones. */
  private readonly pending = new Set<Session>();
  /** Pending sessions that hold a reserved slot (admitted from the overload queue). */
  private readonly reserved = new Set<Session>();
  private dirty: Session[] = [];
  private flushQueued = false;
  /** Frames written directly (not queued) since the last end of tick, for the flush metrics. */
  private directWrites = 0;
  /** Advances at every end-of-tick flush; a session writes directly at most once per tick. */
  tick = 0;
  /** Reused by every fan-out; undefined without the native addon. */
  private readonly batch = sendMany ? new DirectBatch(sendMany, (count) => this.wroteDirectly(count)) : undefined;
  /** The batch of the fan-out loop running now, if any (`offer` adds to it). */
  private activeBatch: DirectBatch | undefined;
  private holds = 0;
  /** Fan-out loops running now: frames they queue during a hold wait for its release. */
  private fanningOut = 0;
  /** Sessions holding fan-out frames of a hold, flushed at the next release. */
  private readonly deferred = new Set<Session>();
  /** Milliseconds spent in fan-out loops while held: a batch sizes its slices by it. */
  heldFanoutMs = 0;
  subscriptionCount = 0;

  constructor(private readonly events: HubEvents) {}

  // ---- registry ------------------------------------------------------------------------------

  // Admission counts (the gateway and the connect handler decide with them):
  //   pendingCount   sessions not yet authenticated — capped by limits.maxPendingConnections;
  //   connectedCount authenticated sessions — capped by limits.maxConnections;
  //   reservedCount  pending sessions admitted from the overload queue, whose slot is kept for them.

  /** Sessions counted under this per-IP key (see `ClientIps.key`). */
  countForIp(ipKey: string): number {
    return this.byIp.get(ipKey) ?? 0;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get connectedCount(): number {
    return this.sessions.size - this.pending.size;
  }

  get reservedCount(): number {
    return this.reserved.size;
  }

  /**
   * Whether `session` may become authenticated under a cap of `max` connections: slots kept for
   * queue-admitted sessions count as taken, except the session's own.
   */
  hasRoomFor(session: Session, max: number): boolean {
    const others = this.reserved.size - (this.reserved.has(session) ? 1 : 0);
    return this.connectedCount + others < max;
  }

  /** Registers a new, not yet authenticated session under its per-IP key. */
  addPending(session: Session, ipKey = session.transport.remoteAddress): void {
    this.sessions.set(session.id, session);
    this.pending.add(session);
    this.ipKeys.set(session, ipKey);
    this.byIp.set(ipKey, (this.byIp.get(ipKey) ?? 0) + 1);
  }

  /** Keeps a slot for a pending session (admitted from the overload queue) until it authenticates or closes. */
  reserve(session: Session): void {
    if (this.pending.has(session)) this.reserved.add(session);
  }

  /** Indexes an authenticated session by user and tags; it no longer counts as pending. */
  activate(session: Session): void {
    this.pending.delete(session);
    this.reserved.delete(session);
    addTo(this.byUser, session.user, session);
    for (const [tag, value] of Object.entries(session.tags)) {
      let values = this.byTag.get(tag);
      if (!values) this.byTag.set(tag, (values = new Map()));
      addTo(values, indexKey(value), session);
    }
  }

  /** Removes a session from every index; returns channels and whether its user has no sessions left here. */
  remove(session: Session): { emptiedChannels: string[]; userGone: boolean } {
    if (!this.sessions.delete(session.id)) return { emptiedChannels: [], userGone: false };
    this.pending.delete(session);
    this.reserved.delete(session);
    const ip = this.ipKeys.get(session) ?? session.transport.remoteAddress;
    this.ipKeys.delete(session);
    const n = (this.byIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.byIp.delete(ip);
    else this.byIp.set(ip, n);
    const emptiedChannels: string[] = [];
    for (const channel of [...session.subscribedChannels()]) if (this.unsubscribe(session, channel)) emptiedChannels.push(channel);
    let userGone = false;
    if (session.identity) {
      userGone = removeFrom(this.byUser, session.user, session);
      for (const [tag, value] of Object.entries(session.tags)) {
        const values = this.byTag.get(tag);
        if (values && removeFrom(values, indexKey(value), session) && values.size === 0) this.byTag.delete(tag);
      }
    }
    return { emptiedChannels, userGone };
  }

  userSessions(user: string): ReadonlySet<Session> | undefined {
    return this.byUser.get(user);
  }

  hasUser(user: string): boolean {
    return this.byUser.has(user);
  }

  /**
   * Adds the subscription to the session and to the channel's index. `first`: this is the
   * channel's first local subscriber. `buffer`: where live frames wait while it recovers.
   */
  subscribe(session: Session, channel: string, recovering: boolean): { first: boolean; buffer: RecoveringBuffer | undefined } {
    const buffer = session.addSubscription(channel, recovering);
    this.subscriptionCount++;
    return { first: addTo(this.byChannel, channel, session), buffer };
  }

  /** A subscription's recovery is done: live frames go straight to the connection again. */
  recovered(session: Session, channel: string): void {
    session.recovered(channel);
  }

  /** Returns true when the channel has no local subscribers left. */
  unsubscribe(session: Session, channel: string): boolean {
    if (!session.removeSubscription(channel)) return false;
    this.subscriptionCount--;
    return removeFrom(this.byChannel, channel, session);
  }

  channelCounts(): Array<{ channel: string; subscribers: number }> {
    return [...this.byChannel].map(([channel, set]) => ({ channel, subscribers: set.size }));
  }

  channelSubscribers(channel: string): number {
    return this.byChannel.get(channel)?.size ?? 0;
  }

  // ---- fan-out -------------------------------------------------------------------------------

  /**
   * Channel delivery; `offset` lets a recovering subscription order and de-duplicate. Without
   * `sendTo` each recipient gets the shared frame queued; with it (at-least-once) the caller
   * decides how each recipient is served.
   */
  fanoutChannel(channel: string, frame: Buffer, offset: number, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const set = this.byChannel.get(channel);
    if (!set) return 0;
    const batch = this.openBatch(set.size);
    let n = 0;
    const began = this.beginFanout();
    try {
      for (const s of set) {
        if (filter && !filter.test(s.tags)) continue;
        const recovering = s.recoveryBuffer(channel);
        if (recovering) recovering.frames.push(sendTo ? { offset, frame, send: sendTo } : { offset, frame });
        else if (sendTo) sendTo(s);
        else if (!batch?.add(s, frame)) s.enqueue(frame);
        n++;
      }
    } finally {
      this.endFanout(began);
      // Whatever happened in the loop, the sockets that claimed a direct send get their frame.
      this.closeBatch(batch);
    }
    return n;
  }

  fanoutUser(user: string, frame: Buffer, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const set = this.byUser.get(user);
    if (!set) return 0;
    let n = 0;
    const began = this.beginFanout();
    try {
      for (const s of set) {
        if (s.state !== 'connected' || (filter && !filter.test(s.tags))) continue;
        if (sendTo) sendTo(s);
        else s.enqueue(frame);
        n++;
      }
    } finally {
      this.endFanout(began);
    }
    return n;
  }

  /** Broadcast, optionally narrowed by a tag filter (resolved through the tag index where possible). */
  fanoutAll(frame: Buffer, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const batch = this.openBatch(this.sessions.size);
    let n = 0;
    const began = this.beginFanout();
    try {
      for (const s of this.candidates(filter)) {
        if (s.state !== 'connected' || (filter && !filter.test(s.tags))) continue;
        if (sendTo) sendTo(s);
        else if (!batch?.add(s, frame)) s.enqueue(frame);
        n++;
      }
    } finally {
      this.endFanout(began);
      this.closeBatch(batch);
    }
    return n;
  }

  /** Marks a fan-out loop as running; returns its start time when a hold is timing fan-outs, else -1. */
  private beginFanout(): number {
    this.fanningOut++;
    return this.holds > 0 ? performance.now() : -1;
  }

  private endFanout(began: number): void {
    this.fanningOut--;
    if (began >= 0) this.heldFanoutMs += performance.now() - began;
  }

  /**
   * Writes `frame` to `s` as part of the fan-out in progress (its direct-send batch) when it can,
   * else through the session's queue. At-least-once transmissions come through here.
   */
  offer(s: Session, frame: Buffer): boolean {
    if (this.activeBatch?.add(s, frame)) return true;
    return s.enqueue(frame);
  }

  /**
   * The batch a fan-out gathers its direct sends in (one native call per chunk), or undefined
   * when the addon is not loaded, a batch publish is holding writes, or the audience is one.
   */
  private openBatch(audience: number): DirectBatch | undefined {
    if (!this.batch || audience < 2 || this.holds > 0 || this.activeBatch) return undefined;
    this.activeBatch = this.batch;
    return this.batch;
  }

  private closeBatch(batch: DirectBatch | undefined): void {
    if (!batch) return;
    this.activeBatch = undefined;
    batch.send();
  }

  /** Sessions that may match the filter: index buckets when the filter allows, else everyone. */
  candidates(filter: CompiledFilter | undefined): Iterable<Session> {
    if (!filter?.plan) return this.sessions.values();
    if (filter.plan.length === 1) {
      const only = filter.plan[0]!;
      return this.byTag.get(only.tag)?.get(only.value) ?? [];
    }
    const out = new Set<Session>();
    for (const { tag, value } of filter.plan) {
      const bucket = this.byTag.get(tag)?.get(value);
      if (bucket) for (const s of bucket) out.add(s);
    }
    return out;
  }

  // ---- flushing ------------------------------------------------------------------------------

  get holding(): boolean {
    return this.holds > 0;
  }

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
    for (const s of this.deferred) this.dirty.push(s);
    this.deferred.clear();
    this.flushAll();
  }

  scheduleFlush(session: Session): void {
    this.dirty.push(session);
    if (this.holds > 0 && this.fanningOut > 0) this.deferred.add(session);
    this.endTickSoon();
  }

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

  onSlowConsumer(session: Session): void {
    this.events.onSlowConsumer(session);
  }

  readonly flushAll = (): void => {
    this.flushQueued = false;
    this.tick++;
    const dirty = this.dirty;
    this.dirty = [];
    let frames = this.directWrites;
    this.directWrites = 0;
    const deferring = this.holds > 0 && this.deferred.size > 0;
    for (const s of dirty) {
      // Still marked for a flush, so later frames join its queue; `release` writes them all.
      if (deferring && this.deferred.has(s)) continue;
      frames += s.flush();
    }
    if (frames > 0) this.events.onFlushed(frames);
  };

  /** Total bytes queued or buffered for all sessions (metrics). */
  queuedBytes(): number {
    let total = 0;
    for (const s of this.sessions.values()) total += s.backlogBytes;
    return total;
  }

}

/**
 * Sockets that take the same frame directly, sent with one native call per chunk of `CHUNK`
 * sessions. Chunks keep the first recipients from waiting while the loop looks at the rest (one
 * call for the whole audience put ≈ 1 ms on the median latency at 1000 subscribers), while still
 * taking the per-call cost off almost every send. A session is added only when nothing is pending
 * on it, and nothing else runs between `add` and the chunk's send, so its frames keep their order.
 */
class DirectBatch {
  private static readonly CHUNK = 32;
  private readonly fds = new Int32Array(DirectBatch.CHUNK);
  private readonly results = new Int32Array(DirectBatch.CHUNK);
  private readonly sessions: Array<Session | undefined> = new Array<Session | undefined>(DirectBatch.CHUNK).fill(undefined);
  private count = 0;
  /** The frame every gathered socket gets; a different frame is refused (the caller enqueues it). */
  private frame: Buffer | undefined;

  constructor(
    private readonly sendMany: SendMany,
    private readonly onSent: (count: number) => void,
  ) {}

  /** Takes `s` into the batch when it can be sent to directly; false means: enqueue instead. */
  add(s: Session, frame: Buffer): boolean {
    if (this.count > 0 && frame !== this.frame) return false;
    const fd = s.takeDirect(frame);
    if (fd < 0) return false;
    this.frame = frame;
    this.fds[this.count] = fd;
    this.sessions[this.count++] = s;
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
      this.sessions[i]!.sentDirect(frame, this.results[i]!);
      // Drop the reference so a closed session is not kept alive until the next fan-out.
      this.sessions[i] = undefined;
    }
    this.onSent(count);
  }
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
  return set.size === 1;
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  const set = map.get(key);
  if (!set || !set.delete(value)) return false;
  if (set.size === 0) {
    map.delete(key);
    return true;
  }
  return false;
}
