/**
 * The hub is this node's registry of sessions and its indexes — by channel, by user and by tag —
 * and the fan-out loops. A message for N sessions is encoded into one wire frame and the same
 * bytes go to all N through the write path (write-path.ts), which decides how each leaves and
 * keeps every connection's frames in order.
 */
import type { RecoveringBuffer, Session, SessionOwner } from './session.js';
import { indexKey, type CompiledFilter } from './tag-filter.js';
import { SEAM_GAP_REASON, type LivePoint } from './engine/recovery-seam.js';
import { CloseCode, type StreamPosition } from '@herald/protocol';
import { WriteScheduler } from './write-path.js';

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
  /** The node's write scheduler: ticks, holds and the fan-out's direct-send batch. */
  readonly writes: WriteScheduler;
  subscriptionCount = 0;

  constructor(private readonly events: HubEvents) {
    this.writes = new WriteScheduler({ onFlushed: (frames) => events.onFlushed(frames) });
  }

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
    this.indexTags(session);
  }

  /** Moves a connected session to new tags in the tag index; `change` swaps the session's tags. */
  retag(session: Session, change: () => void): void {
    const indexed = this.sessions.has(session.id) && !this.pending.has(session);
    if (indexed) this.unindexTags(session);
    change();
    if (indexed) this.indexTags(session);
  }

  private indexTags(session: Session): void {
    for (const [tag, value] of Object.entries(session.tags)) {
      let values = this.byTag.get(tag);
      if (!values) this.byTag.set(tag, (values = new Map()));
      addTo(values, indexKey(value), session);
    }
  }

  private unindexTags(session: Session): void {
    for (const [tag, value] of Object.entries(session.tags)) {
      const values = this.byTag.get(tag);
      if (values && removeFrom(values, indexKey(value), session) && values.size === 0) this.byTag.delete(tag);
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
      this.unindexTags(session);
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
   * channel's first local subscriber. `buffer`: the recovery seam where live frames wait while it
   * recovers.
   */
  subscribe(session: Session, channel: string, recovering: boolean): { first: boolean; buffer: RecoveringBuffer | undefined } {
    const buffer = session.addSubscription(channel, recovering);
    this.subscriptionCount++;
    return { first: addTo(this.byChannel, channel, session), buffer };
  }

  /**
   * The subscription's `subscribed` reply is queued, leaving the stream at `top`: what its seam held
   * and follows `top` goes out now; at a gap the connection is told to reconnect and recover
   * (engine/recovery-seam.ts).
   */
  recovered(session: Session, channel: string, top: StreamPosition): void {
    const seam = session.recoveryBuffer(channel);
    if (!seam) return;
    const { deliver, gap } = seam.settle(top);
    for (const { frame, send } of deliver) {
      if (send) send(session);
      else session.enqueue(frame);
    }
    if (gap) session.close(CloseCode.FORCE_RECONNECT, SEAM_GAP_REASON);
    else if (seam.crossed) session.recovered(channel);
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
   * Channel delivery; `point` lets a subscription not past its recovery seam hold, drop or accept
   * the frame (engine/recovery-seam.ts). Without
   * `sendTo` each recipient gets the shared frame queued; with it (at-least-once) the caller
   * decides how each recipient is served.
   */
  fanoutChannel(channel: string, frame: Buffer, point: LivePoint | undefined, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const set = this.byChannel.get(channel);
    if (!set) return 0;
    const run = this.writes.beginFanout(set.size);
    const batch = run.batch;
    let n = 0;
    try {
      for (const s of set) {
        if (filter && !filter.test(s.tags)) continue;
        const recovering = s.recoveryBuffer(channel);
        if (recovering) {
          const verdict = recovering.offer(point, sendTo ? { frame, send: sendTo } : { frame });
          if (verdict === 'drop') continue;
          if (verdict === 'gap') {
            s.close(CloseCode.FORCE_RECONNECT, SEAM_GAP_REASON);
            continue;
          }
          if (verdict === 'held') {
            n++;
            continue;
          }
          s.recovered(channel);
        }
        if (sendTo) sendTo(s);
        else if (!batch?.add(s.writer, frame)) s.writer.enqueue(frame);
        n++;
      }
    } finally {
      this.writes.endFanout(run);
    }
    return n;
  }

  fanoutUser(user: string, frame: Buffer, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const set = this.byUser.get(user);
    if (!set) return 0;
    let n = 0;
    const run = this.writes.beginFanout(1);
    try {
      for (const s of set) {
        if (s.state !== 'connected' || (filter && !filter.test(s.tags))) continue;
        if (sendTo) sendTo(s);
        else s.enqueue(frame);
        n++;
      }
    } finally {
      this.writes.endFanout(run);
    }
    return n;
  }

  /** Broadcast, optionally narrowed by a tag filter (resolved through the tag index where possible). */
  fanoutAll(frame: Buffer, filter: CompiledFilter | undefined, sendTo?: Recipient): number {
    const run = this.writes.beginFanout(this.sessions.size);
    const batch = run.batch;
    let n = 0;
    try {
      for (const s of this.candidates(filter)) {
        if (s.state !== 'connected' || (filter && !filter.test(s.tags))) continue;
        if (sendTo) sendTo(s);
        else if (!batch?.add(s.writer, frame)) s.writer.enqueue(frame);
        n++;
      }
    } finally {
      this.writes.endFanout(run);
    }
    return n;
  }

  /**
   * Writes `frame` to `s` as part of the fan-out in progress (its direct-send batch) when it can,
   * else through the session's queue. At-least-once transmissions come through here.
   */
  offer(s: Session, frame: Buffer): boolean {
    if (!s.open) return false;
    return this.writes.offer(s.writer, frame);
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

  onSlowConsumer(session: Session): void {
    this.events.onSlowConsumer(session);
  }

  /** Total bytes queued or buffered for all sessions (metrics). */
  queuedBytes(): number {
    let total = 0;
    for (const s of this.sessions.values()) total += s.backlogBytes;
    return total;
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
