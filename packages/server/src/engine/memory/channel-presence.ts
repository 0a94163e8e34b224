/**
 * Channel presence in process memory. One store is shared by the handles opened on it (the nodes
 * of one process, in tests several); JavaScript runs each operation to completion, so every
 * check-and-change here is atomic without more.
 */
import {
  every,
  MAX_PRESENCE_PAGE,
  newIncarnation,
  type ChannelMember,
  type ChannelPresence,
  type ChannelPresenceStore,
  type ChannelPresenceTiming,
  type PresenceEvent,
  type PresenceListener,
  type PresencePage,
  type PresenceStats,
  OwnMembers,
} from '../channel-presence.js';

interface Entry {
  member: ChannelMember;
  inc: string;
}

class ChannelState {
  readonly entries = new Map<string, Entry>();
  /** Client ids, sorted: pages are slices of it. */
  readonly order: string[] = [];
  readonly users = new Map<string, number>();
  readonly listeners = new Set<PresenceListener>();
}

export class MemoryChannelPresenceStore implements ChannelPresenceStore {
  private readonly channels = new Map<string, ChannelState>();
  /** Incarnation → when its liveness lapses. */
  private readonly live = new Map<string, number>();
  /** Incarnation → channels it may have members in. */
  private readonly channelsOf = new Map<string, Set<string>>();
  private readonly handles = new Set<MemoryChannelPresence>();

  constructor(
    private readonly timing: ChannelPresenceTiming,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {}

  async open(node: string, onChange: PresenceListener = () => undefined): Promise<ChannelPresence> {
    const h = new MemoryChannelPresence(this, node, this.timing, this.onError, onChange);
    this.handles.add(h);
    return h;
  }

  async close(): Promise<void> {
    for (const h of [...this.handles]) await h.close();
  }

  // ---- operations the handles run (each synchronous, so atomic) -------------------------------

  /** Renews an incarnation's liveness; false when it had lapsed (the caller must take a new one). */
  beat(inc: string, fresh: boolean): boolean {
    const now = Date.now();
    const until = this.live.get(inc);
    if (!fresh && (until === undefined || until <= now)) return false;
    this.live.set(inc, now + this.timing.nodeTtlMs);
    return true;
  }

  forget(inc: string, handle: MemoryChannelPresence): void {
    this.live.delete(inc);
    this.handles.delete(handle);
  }

  join(channel: string, member: ChannelMember, inc: string): boolean {
    let chans = this.channelsOf.get(inc);
    if (!chans) this.channelsOf.set(inc, (chans = new Set()));
    chans.add(channel);
    const st = this.state(channel);
    const had = st.entries.get(member.client);
    if (had) {
      // Already present (a node renewing its identity): it moves, no second join.
      st.entries.set(member.client, { member, inc });
      return false;
    }
    st.entries.set(member.client, { member, inc });
    st.order.splice(lowerBound(st.order, member.client), 0, member.client);
    st.users.set(member.user, (st.users.get(member.user) ?? 0) + 1);
    this.emit(channel, st, 'join', member);
    return true;
  }

  leave(channel: string, client: string, inc: string): PresenceEvent | undefined {
    const st = this.channels.get(channel);
    const e = st?.entries.get(client);
    if (!st || !e || e.inc !== inc) return undefined;
    st.entries.delete(client);
    st.order.splice(lowerBound(st.order, client), 1);
    const n = (st.users.get(e.member.user) ?? 1) - 1;
    if (n === 0) st.users.delete(e.member.user);
    else st.users.set(e.member.user, n);
    this.emit(channel, st, 'leave', e.member);
    if (st.entries.size === 0 && st.listeners.size === 0) this.channels.delete(channel);
    return { channel, type: 'leave', member: e.member };
  }

  list(channel: string, cursor: string | undefined, limit: number): PresencePage {
    const st = this.channels.get(channel);
    if (!st) return { members: [] };
    const from = cursor === undefined ? 0 : upperBound(st.order, cursor);
    const n = Math.max(1, Math.min(limit, MAX_PRESENCE_PAGE));
    const ids = st.order.slice(from, from + n);
    const members = ids.map((id) => st.entries.get(id)!.member);
    return from + n < st.order.length ? { members, next: ids[ids.length - 1]! } : { members };
  }

  stats(channel: string): PresenceStats {
    const st = this.channels.get(channel);
    return { connections: st?.entries.size ?? 0, users: st?.users.size ?? 0 };
  }

  watch(channel: string, listener: PresenceListener): () => void {
    const st = this.state(channel);
    st.listeners.add(listener);
    return () => {
      st.listeners.delete(listener);
      if (st.entries.size === 0 && st.listeners.size === 0 && this.channels.get(channel) === st) this.channels.delete(channel);
    };
  }

  /** Removes the members of every lapsed incarnation but `own`; returns the leaves it claimed. */
  sweep(own: string): PresenceEvent[] {
    const now = Date.now();
    const n: PresenceEvent[] = [];
    for (const [inc, chans] of [...this.channelsOf]) {
      if (inc === own) continue;
      const until = this.live.get(inc);
      if (until !== undefined && until > now) continue;
      n.push(...this.removeAll(inc, chans));
      this.channelsOf.delete(inc);
      this.live.delete(inc);
    }
    return n;
  }

  /** Leaves every member of an incarnation (its close, or a renewal). */
  leaveAll(inc: string): PresenceEvent[] {
    const chans = this.channelsOf.get(inc);
    this.channelsOf.delete(inc);
    return chans ? this.removeAll(inc, chans) : [];
  }

  private removeAll(inc: string, chans: Set<string>): PresenceEvent[] {
    const out: PresenceEvent[] = [];
    for (const channel of chans) {
      const st = this.channels.get(channel);
      if (!st) continue;
      for (const [client, e] of [...st.entries]) {
        const left = e.inc === inc ? this.leave(channel, client, inc) : undefined;
        if (left) out.push(left);
      }
    }
    return out;
  }

  private state(channel: string): ChannelState {
    let st = this.channels.get(channel);
    if (!st) this.channels.set(channel, (st = new ChannelState()));
    return st;
  }

  private emit(channel: string, st: ChannelState, type: PresenceEvent['type'], member: ChannelMember): void {
    for (const l of [...st.listeners]) {
      try {
        l({ channel, type, member });
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }
}

class MemoryChannelPresence implements ChannelPresence {
  private inc: string;
  /** This node's members, to join again under a new identity after a lapse. */
  private readonly own = new OwnMembers();
  private stops: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly store: MemoryChannelPresenceStore,
    readonly node: string,
    timing: ChannelPresenceTiming,
    onError: (err: Error) => void,
    private readonly onChange: PresenceListener,
  ) {
    this.inc = newIncarnation(node);
    store.beat(this.inc, true);
    this.stops.push(every(timing.heartbeatMs, async () => this.refresh(), onError));
    this.stops.push(every(timing.heartbeatMs, () => this.sweep(), onError));
  }

  async join(channel: string, m: Omit<ChannelMember, 'node'>): Promise<boolean> {
    if (this.closed) return false;
    const member: ChannelMember = { ...m, node: this.node };
    this.own.add(channel, member);
    return this.joined(channel, member);
  }

  async leave(channel: string, client: string): Promise<boolean> {
    this.own.remove(channel, client);
    const left = this.store.leave(channel, client, this.inc);
    return left ? this.tell(left) > 0 : false;
  }

  async list(channel: string, page: { cursor?: string; limit: number }): Promise<PresencePage> {
    return this.store.list(channel, page.cursor, page.limit);
  }

  async stats(channel: string): Promise<PresenceStats> {
    return this.store.stats(channel);
  }

  async watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    const stop = this.store.watch(channel, listener);
    return async () => stop();
  }

  async sweep(): Promise<number> {
    return this.closed ? 0 : this.tell(this.store.sweep(this.inc));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopTimers();
    this.tell(this.store.leaveAll(this.inc));
    this.own.clear();
    this.store.forget(this.inc, this);
  }

  async crash(): Promise<void> {
    this.stopTimers();
  }

  private refresh(): void {
    if (this.store.beat(this.inc, false)) return;
    // Lapsed: whatever a sweeper has not removed yet leaves now, then everything joins again.
    this.tell(this.store.leaveAll(this.inc));
    this.inc = newIncarnation(this.node);
    this.store.beat(this.inc, true);
    for (const [channel, m] of this.own.all()) this.joined(channel, m);
  }

  private joined(channel: string, member: ChannelMember): boolean {
    const joined = this.store.join(channel, member, this.inc);
    if (joined) this.tell([{ channel, type: 'join', member }]);
    return joined;
  }

  /** Hands the events this handle wrote to its `onChange`; returns how many. */
  private tell(events: PresenceEvent[] | PresenceEvent): number {
    const list = Array.isArray(events) ? events : [events];
    for (const e of list) this.onChange(e);
    return list.length;
  }

  private stopTimers(): void {
    this.closed = true;
    for (const s of this.stops.splice(0)) s();
  }
}

function lowerBound(a: string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(a: string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
