/**
 * The durable outbox behind at-least-once webhooks. An event is committed when `append` resolves:
 * from then on it is delivered (acknowledged by a 2xx), or it ends in the dead-letter list — a
 * crash of the node that appended it, or of the node sending it, loses nothing.
 *
 * Leases: `claim` hands an entry to one caller for `leaseMs`; no other claim returns it before the
 * lease ends, so two nodes never send one event at the same time. A holder that dies simply lets
 * its lease run out and a peer (or the restarted node) claims the entry again, with `attempts` one
 * higher. `ack`, `retry` and `bury` act only while the caller's lease is the entry's current one
 * (they answer false otherwise: a peer has it now).
 *
 * Ordering by key (where `orderedByKey` is true): of the entries with one (endpoint, key), only the
 * oldest is ever claimable; the next becomes claimable once it is acknowledged or buried. An entry
 * waiting for its retry therefore holds back the later ones of its key, never other keys.
 *
 * Endpoints: ids match [A-Za-z0-9_-]{1,64} (webhooks.endpoints[].id), so implementations may use
 * them in key, subject and consumer names.
 *
 * Bounds: at most `maxEntries` entries wait (claimed or not); an append beyond that is refused and
 * counted in `refused` (the caller logs and counts it — nothing is dropped silently, and events
 * already committed are never pushed out by newer ones). At most `maxDeadLetters` dead letters are
 * kept; burying one more drops the oldest.
 */

export interface WebhookRecord {
  /** Unique per event and endpoint; the receiver's idempotency key (`Herald-Event-Id`). */
  id: string;
  /** The endpoint's configured id. */
  endpoint: string;
  /** The ordering key (e.g. a connection id or a user). */
  key: string;
  /** The JSON body, sent and signed byte for byte as stored. */
  body: string;
}

export interface PendingWebhook extends WebhookRecord {
  /** Deliveries started so far (a claim counts one, also when its holder died before answering). */
  attempts: number;
  /** When the event was appended (ms since the epoch). */
  createdAt: number;
  /** Why the previous attempt failed. */
  lastError?: string;
}

export interface ClaimedWebhook extends PendingWebhook {
  /** This claim's lease; opaque. */
  lease: string;
}

export interface DeadWebhook extends PendingWebhook {
  deadAt: number;
  lastError: string;
}

export interface ClaimWant {
  endpoint: string;
  limit: number;
}

export interface WebhookOutboxLimits {
  /** How long a claim holds an entry (ms). */
  leaseMs: number;
  /** Most entries waiting; appends beyond are refused. */
  maxEntries: number;
  /** Most dead letters kept; the oldest go first. */
  maxDeadLetters: number;
}

export interface WebhookOutbox {
  /** Whether `claim` keeps per-(endpoint, key) order (see above). */
  readonly orderedByKey: boolean;
  /** Commits the records (all or, past `maxEntries`, those that fit, in order). */
  append(records: readonly WebhookRecord[]): Promise<{ stored: number; refused: number }>;
  /**
   * Due entries, at most `limit` of each endpoint named (others are not claimed), each leased to
   * this caller for `leaseMs`. Per-endpoint limits let the caller keep a slow endpoint from taking
   * every slot: the entries of the other endpoints are claimable regardless of its backlog.
   */
  claim(want: readonly ClaimWant[]): Promise<ClaimedWebhook[]>;
  /** Delivered: the entry leaves the outbox. */
  ack(entry: ClaimedWebhook): Promise<boolean>;
  /** Failed: claimable again after `delayMs`. */
  retry(entry: ClaimedWebhook, delayMs: number, error: string): Promise<boolean>;
  /** Failed for the last time: moves to the dead letters. */
  bury(entry: ClaimedWebhook, error: string): Promise<boolean>;
  /** Dead letters, oldest first, at most `limit`. */
  deadLetters(limit: number): Promise<DeadWebhook[]>;
  /** Moves a dead letter back to the outbox with its attempts reset, due now; false when unknown. */
  requeue(id: string): Promise<boolean>;
  /** Deletes a dead letter; false when unknown. */
  discard(id: string): Promise<boolean>;
  /** Entries waiting (claimed or not) and dead letters kept. */
  depth(): Promise<{ pending: number; dead: number }>;
  close(): Promise<void>;
}
