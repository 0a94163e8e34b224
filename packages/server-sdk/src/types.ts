/** Request and answer shapes of Herald's `/api/v1` (docs/http-api.md), as the SDK exposes them. */
import type { ChannelMemberInfo, ChannelPresencePage, ChannelPresenceStats, ConnectionInfo, NodeInfo, NodesAnswered, RecipientRecord, StreamPosition, TagFilter } from '@herald/protocol';

export type { ChannelMemberInfo, ChannelPresencePage, ChannelPresenceStats, ConnectionInfo, NodeInfo, NodesAnswered, RecipientRecord };
import type { HeraldError } from './errors.js';

export type DeliveryMode = 'at-most-once' | 'at-least-once';

/** What every publish may carry besides its audience. */
export interface PublishFields<P = unknown> {
  /** Application event name, 1–128 chars of `[A-Za-z0-9_:.\-/]`. */
  eventType: string;
  /** Any JSON value. */
  payload: P;
  /** Idempotency key, 1–128 chars of `[A-Za-z0-9_:.\-]`. Default: a fresh UUID, fixed before the first try. */
  msgId?: string;
  /** Producer name (server default `publish.defaultSource`). */
  source?: string;
  /** Payload schema version (server default `publish.defaultVersion`). */
  version?: string;
  /** Only connections whose tags match receive it (protocol.md §7). */
  filter?: TagFilter;
  /** Default: the channel namespace's mode, else the server's `delivery.defaultMode`. */
  delivery?: DeliveryMode;
  /** At-least-once only: keep per-recipient records in the receipt (`getReceipt`). */
  receipts?: boolean;
}

/** Exactly one audience: a channel, a user (all their connections), or everyone. */
export type Audience = { channel: string; user?: never; broadcast?: never } | { user: string; channel?: never; broadcast?: never } | { broadcast: true; channel?: never; user?: never };

/** A message for `publish` and `publishBatch`. */
export type PublishMessage<P = unknown> = PublishFields<P> & Audience;

/** Options of the audience-specific helpers (`publishToChannel`, `publishToUser`, `broadcast`). */
export type PublishOptions = Omit<PublishFields, 'eventType' | 'payload'>;

export interface PublishResult {
  /** Yours, or the one the SDK generated. */
  msgId: string;
  /** When the server accepted the message (ms since the epoch). */
  timestamp: number;
  /** Channel publishes: the message's place in the channel stream. */
  position?: StreamPosition;
  /**
   * The server already had this msgId for this audience and did not deliver it again. After an
   * SDK retry (`attempts` > 1) this usually means an earlier try of this very call got through.
   */
  duplicate: boolean;
  /** HTTP tries the call took. */
  attempts: number;
}

/** One item of a batch: published, or refused on its own (the batch itself succeeded). */
export type BatchItemResult = ({ ok: true } & PublishResult) | { ok: false; msgId: string; error: HeraldError; attempts: number };

export interface DisconnectOptions {
  /** `true`: close with 4005 FORCE_RECONNECT (the client comes back); default `false`: 4502 FORCE_DISCONNECT. */
  reconnect?: boolean;
  /** Close reason sent to the client, at most 120 chars. */
  reason?: string;
}

export interface ChannelInfo {
  channel: string;
  /** Subscribers summed over the nodes that answered. */
  subscribers: number;
}

export interface NodeStats {
  node: string;
  connections: number;
  users: number;
  subscriptions: number;
  channels: number;
  queuedBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
  uptimeSeconds: number;
}

/** `GET /api/v1/stats`: the answering node's counters, every node's, their sums, and who answered. */
export interface ClusterStats extends NodeStats {
  byNode: NodeStats[];
  totals: Omit<NodeStats, 'node' | 'uptimeSeconds'>;
  nodes: NodesAnswered;
}

export type ReceiptState = 'accepted' | 'delivered' | 'acknowledged' | 'inbox' | 'exhausted';

/** The delivery receipt of an at-least-once API message (docs/http-api.md, `GET /api/v1/messages/{msgId}`). */
export interface Receipt {
  msgId: string;
  mode: 'at-least-once';
  target: string;
  channel?: string;
  user?: string;
  state: ReceiptState;
  acceptedAt: number;
  counts: { delivered: number; acknowledged: number; retransmissions: number; exhausted: number; inbox: number };
  acknowledgedBy: Array<{ user: string; connectionId: string; at: number }>;
  acknowledgedByTruncated?: true;
  inbox: Array<{ user: string; storedAt: number; removedAt?: number }>;
  inboxTruncated?: true;
  /** Only for messages published with `receipts: true`. */
  recipients?: RecipientRecord[];
  recipientsTruncated?: true;
}
