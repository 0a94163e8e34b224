/**
 * A durable per-user queue for messages a user could not take when they were sent (offline, or
 * retries exhausted). Entries leave only when acknowledged or when a limit pushes them out —
 * and a limit that drops anything says how much, so nothing disappears silently.
 */
import type { Envelope } from '../../protocol/frames.js';

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
}

export interface InboxStore {
  append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits): Promise<AppendResult>;
  /** Entries after `afterSeq`, oldest first, at most `limit`; expired entries are pruned (and counted) first. */
  list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }>;
  /** Removes the entries with these msgIds; unknown ids are ignored. Returns how many were removed. */
  remove(user: string, msgIds: string[]): Promise<number>;
  /** Number of entries waiting for a user. */
  size(user: string): Promise<number>;
  close(): Promise<void>;
}
