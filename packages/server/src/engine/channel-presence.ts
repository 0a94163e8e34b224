/**
 * Channel presence: who is in a channel, cluster-wide, and the join/leave events of its members.
 * (Per-user connection presence, used to route admin operations, is `presence.ts`.)
 *
 * The contract every backend keeps:
 *
 * - A member is one connection in one channel: `{client, user, info?, node}`. `join` of a client
 *   already present is not a second join; `leave` of a client not present is not a leave.
 * - Events: each channel's joins and leaves have one order, the same for every watcher on every
 *   node; a member's leave never comes before its join; every join is followed by exactly one
 *   leave (when the member leaves, when its node closes, or when its node dies).
 * - Liveness is per node, not per member: each node refreshes one liveness record every
 *   `heartbeatMs` (cluster.heartbeatIntervalMs), which lapses `nodeTtlMs` (cluster.nodeTtlMs) after
 *   the last refresh. Members are never refreshed one by one, so a node's steady cost does not grow
 *   with its members. Every node sweeps every `heartbeatMs`: the members of a node whose record
 *   lapsed are removed, and each removal — its leave event — is claimed atomically by exactly one
 *   sweeper, however many race. A node that finds its own record lapsed (it stalled past the TTL)
 *   takes a new identity and joins its members again, after their leaves.
 * - `list` pages through members ordered by client id: following `next` until it is absent returns
 *   every member present throughout the walk exactly once. `stats` reads counters, never the list.
 */
import type { ControlTiming } from './control.js';

export interface ChannelMember {
  /** The connection id. */
  client: string;
  user: string;
  /** What the connection's token granted (the `info` claim), when it had one. */
  info?: unknown;
  /** What the subscribe hook attached to this subscription, when it did. */
  channelInfo?: unknown;
  /** The node holding the connection. */
  node: string;
}

export type PresenceEventType = 'join' | 'leave';

export interface PresenceEvent {
  channel: string;
  type: PresenceEventType;
  member: ChannelMember;
}

export interface PresencePage {
  members: ChannelMember[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next?: string;
}

export interface PresenceStats {
  /** Members (connections) in the channel. */
  connections: number;
  /** Distinct users among them. */
  users: number;
}

export type PresenceListener = (event: PresenceEvent) => void;

/** One node's handle on the channel-presence store. */
export interface ChannelPresence {
  readonly node: string;
  /** Adds the member; resolves true when this was a join (an event went out). */
  join(channel: string, member: Omit<ChannelMember, 'node'>): Promise<boolean>;
  /** Removes this node's member; resolves true when this was a leave (an event went out). */
  leave(channel: string, client: string): Promise<boolean>;
  /** Members after `cursor` (a client id), at most `limit`, ordered by client id. */
  list(channel: string, page: { cursor?: string; limit: number }): Promise<PresencePage>;
  stats(channel: string): Promise<PresenceStats>;
  /**
   * The channel's events from now on, in the channel's order. Resolves once events will arrive;
   * the returned function stops them.
   */
  watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>>;
  /** Removes the members of nodes whose liveness lapsed; resolves with the leaves this call claimed. */
  sweep(): Promise<number>;
  /** Leaves every member of this node (their leaves go out) and stops refreshing. */
  close(): Promise<void>;
  /** What SIGKILL does: stops refreshing and sweeping, leaving the members to lapse. For tests. */
  crash(): Promise<void>;
}

export interface ChannelPresenceStore {
  /**
   * A node's handle; `node` is the name members carry. `onChange` hears, on this node only, every
   * join and leave this handle wrote — its own members' and the leaves its sweeps claimed — so
   * across the cluster each event is heard exactly once (what a webhook needs).
   */
  open(node: string, onChange?: PresenceListener): Promise<ChannelPresence>;
  close(): Promise<void>;
}

export type ChannelPresenceTiming = ControlTiming;

/** Largest page `list` returns, whatever `limit` asks. */
export const MAX_PRESENCE_PAGE = 1000;

/** A per-process identity: a node that restarts (or lapses and comes back) is another incarnation. */
export function newIncarnation(node: string): string {
  return `${node}~${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** Calls `fn` every `ms` until stopped; a call still running is not overlapped. */
export function every(ms: number, fn: () => Promise<unknown>, onError: (err: Error) => void): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    fn()
      .catch((err: Error) => onError(err))
      .finally(() => (running = false));
  }, Math.max(10, ms));
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A node's own members by channel, kept beside the store's copy: what the node leaves when it
 * closes, and joins again under a new incarnation after its liveness lapsed.
 */
export class OwnMembers {
  private readonly byChannel = new Map<string, Map<string, ChannelMember>>();

  add(channel: string, member: ChannelMember): void {
    let members = this.byChannel.get(channel);
    if (!members) this.byChannel.set(channel, (members = new Map()));
    members.set(member.client, member);
  }

  remove(channel: string, client: string): void {
    const members = this.byChannel.get(channel);
    if (members?.delete(client) && members.size === 0) this.byChannel.delete(channel);
  }

  /** Every (channel, member) pair. */
  *all(): IterableIterator<[string, ChannelMember]> {
    for (const [channel, members] of this.byChannel) for (const m of members.values()) yield [channel, m];
  }

  clear(): void {
    this.byChannel.clear();
  }
}

/**
 * Whether any namespace keeps presence. Without one, a shared engine opens no presence store (its
 * connections, liveness writes and sweeps would serve nothing) and the node keeps an idle one in
 * memory.
 */
export function presenceConfigured(namespaces: Readonly<Record<string, { presence?: boolean }>>): boolean {
  return Object.values(namespaces).some((ns) => ns.presence === true);
}
