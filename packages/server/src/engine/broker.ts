/**
 * The broker carries publications between producers and the nodes that hold connections, and
 * keeps each channel's history stream. Keeping history here makes "assign an offset and publish"
 * one atomic step in every implementation.
 */
import type { Envelope, StreamPosition, TagFilter } from '@herald/protocol';
import type { HistoryConfig } from '../config.js';
import type { IdempotencyKey } from './idempotency.js';

// Its own file so that the idempotency contract, which keys by audience, need not import this one.
export type { DispatchTarget } from './target.js';
import type { DispatchTarget } from './target.js';

/** One publication on its way to every node that has a matching connection. */
export interface Dispatch {
  target: DispatchTarget;
  /** Applied by each node to its own connections' tags. */
  filter?: TagFilter;
  envelope: Envelope;
  /** Set by the broker for channel targets: the message's place in the channel stream. */
  position?: StreamPosition;
  /**
   * Channel targets on engines whose offsets are not contiguous (NATS): the offset of the channel's
   * previous message, so a subscriber can tell its successor from a gap (recovery-seam.ts).
   */
  prev?: number;
  /** At-least-once: recipients must acknowledge, and are retried until they do. */
  reliable?: boolean;
  /** Reliable user targets: the message's sequence in the user's inbox (orders the connect seam). */
  seq?: number;
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
  /**
   * The stream's current top: offset of the newest message (0 when empty) and the epoch. A channel
   * with no stream (never published, or forgotten) is at offset 0 of a no-stream epoch (see
   * `noStreamPosition`).
   */
  position: StreamPosition;
  /**
   * With `since`: true when `entries` holds every message after `since` (same epoch, nothing
   * pruned in between, not cut by `limit`). Always true without `since`.
   */
  complete: boolean;
}

/** What a publish did: stored and sent it, or recognised its idempotency key. */
export type Published =
  | { duplicate: false; position?: StreamPosition }
  /** Nothing was stored or sent; `timestamp` and `position` are the original's. */
  | { duplicate: true; timestamp: number; position?: StreamPosition };

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
   *
   * With `key`, the publish is idempotent within the broker's window (`publish.idempotencyWindowMs`,
   * given at construction), cluster-wide: the check of the key is part of the same atomic step that
   * stores the message (or, for user and broadcast targets, sends it), so of any number of publishes
   * with one key — concurrent or not, through any nodes — exactly one is stored and dispatched, and
   * every other resolves `{duplicate: true}` with the original's `timestamp` and `position`. The
   * window runs from the original's acceptance. Without `key` nothing is looked up.
   */
  publish(dispatch: Dispatch, history: HistoryConfig, key?: IdempotencyKey): Promise<Published>;
  /** Reads a channel's stream. Never writes: a channel that was never published stays unknown. */
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;
  close(): Promise<void>;
}

/**
 * The position of a channel with no stream, read at `now`: offset 0 of an epoch that names no
 * stream but the time of the read. Reading it creates nothing (issue 11, M4).
 */
export function noStreamPosition(now = Date.now()): StreamPosition {
  return { offset: 0, epoch: `${NO_STREAM_EPOCH_PREFIX}${now.toString(36)}` };
}

const NO_STREAM_EPOCH_PREFIX = 'n-';

/** True for a position read when the channel had no stream (see noStreamPosition). */
export function isNoStreamPosition(p: StreamPosition): boolean {
  return p.offset === 0 && p.epoch.startsWith(NO_STREAM_EPOCH_PREFIX);
}

/**
 * `since` as a position in the stream `streamEpoch`. A reader who saw the channel without a stream
 * at time t has missed nothing if the channel's stream now still holds offset 1 — provided that
 * stream is the first since t. A stream is forgotten only after it has been idle longer than its
 * history TTL (every engine keeps an idle stream at least that long), so within `ttlMs` of t no other
 * stream can have come and gone: the reader then recovers as if it held offset 0 of the current
 * stream, and the usual checks decide whether that is complete. Any other position (a real epoch,
 * or a no-stream position too old to vouch for) is returned as it is, and its epoch does not match.
 */
export function sinceInStream(since: StreamPosition, streamEpoch: string, ttlMs: number, now = Date.now()): StreamPosition {
  return vouchedNoStream(since, ttlMs, now) ? { offset: 0, epoch: streamEpoch } : since;
}

/**
 * The answer for a channel that has no stream now. Recovery is complete only from a no-stream
 * position read within `ttlMs` (nothing can have been published and forgotten since).
 */
export function noStreamHistory(query: HistoryQuery, ttlMs: number, now = Date.now()): HistoryResult {
  const position = noStreamPosition(now);
  return { entries: [], position, complete: !query.since || vouchedNoStream(query.since, ttlMs, now) };
}

function vouchedNoStream(since: StreamPosition, ttlMs: number, now: number): boolean {
  if (since.offset !== 0 || !since.epoch.startsWith(NO_STREAM_EPOCH_PREFIX)) return false;
  const readAt = parseInt(since.epoch.slice(NO_STREAM_EPOCH_PREFIX.length), 36);
  return Number.isSafeInteger(readAt) && now - readAt <= ttlMs;
}
