/**
 * The broker carries publications between producers and the nodes that hold connections, and
 * keeps each channel's history stream. Keeping history here makes "assign an offset and publish"
 * one atomic step in every implementation.
 */
import type { Envelope, StreamPosition, TagFilter } from '../../protocol/frames.js';
import type { HistoryConfig } from '../config.js';

export type DispatchTarget = { kind: 'channel'; channel: string } | { kind: 'user'; user: string } | { kind: 'broadcast' };

/** One publication on its way to every node that has a matching connection. */
export interface Dispatch {
  target: DispatchTarget;
  /** Applied by each node to its own connections' tags. */
  filter?: TagFilter;
  envelope: Envelope;
  /** Set by the broker for channel targets: the message's place in the channel stream. */
  position?: StreamPosition;
  /** At-least-once: recipients must acknowledge, and are retried until they do. */
  reliable?: boolean;
  /** Reliable user targets: the message's sequence in the user's inbox (orders the connect seam). */
  seq?: number;
  /** Keep per-recipient receipts for this message. */
  receipts?: boolean;
}

export interface HistoryEntry {
  offset: number;
  envelope: Envelope;
}

export interface HistoryQuery {
  /** Return entries after this position. Without it, the newest `limit` entries. */
  since?: StreamPosition;
  /** At most this many entries, oldest first. */
  limit: number;
  /** The channel's history limits, so a read can prune what is past them. */
  config?: HistoryConfig;
}

export interface HistoryResult {
  /** Oldest first, offsets strictly increasing. */
  entries: HistoryEntry[];
  /** The stream's current top: offset of the newest message (0 when empty) and the epoch. */
  position: StreamPosition;
  /**
   * With `since`: true when `entries` holds every message after `since` (same epoch, nothing
   * pruned in between, not cut by `limit`). Always true without `since`.
   */
  complete: boolean;
}

export interface BrokerHandler {
  /** Called once per dispatch this node has interest in. Must not throw. */
  onDispatch(dispatch: Dispatch): void;
  /**
   * Dispatches may have been lost (e.g. the subscription link to Redis or NATS dropped and came
   * back). The node then makes its channel subscribers recover from history.
   */
  onGap?(): void;
}

export interface Broker {
  /** Connects and begins delivering broadcast dispatches to the handler. */
  start(handler: BrokerHandler): Promise<void>;
  /**
   * Begin receiving dispatches for a channel or a user; called when the first local
   * connection becomes interested. Idempotent. Resolves once dispatches will arrive.
   */
  subscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void>;
  /** Stop receiving them; called after the last local connection left. Idempotent. */
  unsubscribe(target: Exclude<DispatchTarget, { kind: 'broadcast' }>): Promise<void>;
  /**
   * Publishes to every interested node (this one included). For channel targets the message is
   * appended to the channel's stream first (bounded by `history`) and its position returned;
   * resolves only once the broker has accepted it. Rejects with `broker_unavailable` otherwise.
   */
  publish(dispatch: Dispatch, history: HistoryConfig): Promise<StreamPosition | undefined>;
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;
  close(): Promise<void>;
}
