/**
 * A durable per-user queue for messages a user could not take when they were sent (offline, or
 * retries exhausted). Entries leave only when acknowledged or when a limit pushes them out —
 * and a limit that drops anything says how much, so nothing disappears silently.
 */
import type { Envelope } from '@herald/protocol';
import type { IdempotencyKey } from './idempotency.js';

export interface InboxEntry {
  /** Per-user, strictly increasing. */
  seq: number;
  envelope: Envelope;
  /** Set when the message was addressed through a channel. */
  channel?: string;
  storedAt: number;
}

export interface InboxLimits {
  /** Most entries kept per user; the oldest go first. */
  maxMessages: number;
  /** Entries older than this are dropped (ms). */
  maxAgeMs: number;
}

export interface AppendResult {
  seq: number;
  /** Whether this msgId was already in the inbox (nothing appended). */
  duplicate: boolean;
  /** How many older entries the limits pushed out. */
  dropped: number;
  /**
   * Set when the idempotency key was already taken within its window: nothing was appended (even
   * if the earlier message has left the inbox since); the earlier message's acceptance time.
   */
  earlier?: { timestamp: number };
}

export interface InboxStore {
  /**
   * Appends an entry, unless the user's inbox already holds this msgId. With `key` (an at-least-once
   * user message whose publisher chose its msgId), the append is also the idempotency check for
   * that publish: the key is taken in the same atomic step, in the window the broker uses for user
   * targets (see Broker.publish), so a retry — concurrent, or after the message was acknowledged
   * and removed — is answered with `earlier` and never stored twice.
   */
  append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits, key?: IdempotencyKey): Promise<AppendResult>;
  /** Entries after `afterSeq`, oldest first, at most `limit`; expired entries are pruned (and counted) first. */
  list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }>;
  /**
   * Removes the entries with these msgIds; unknown ids are ignored. Returns the msgIds this call
   * removed, each once: the removal is atomic per entry, so of two concurrent removals of one entry
   * (two devices acknowledging it, two nodes) exactly one reports it. Acknowledgement entitlement
   * relies on that (see delivery/reliable-delivery.ts).
   */
  remove(user: string, msgIds: string[]): Promise<string[]>;
  /** Number of entries waiting for a user. */
  size(user: string): Promise<number>;
  close(): Promise<void>;
}
