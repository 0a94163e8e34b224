/**
 * Frames of Herald's wire protocol v1. Every frame is one JSON object in one WebSocket text
 * message, discriminated by `type`. `docs/protocol.md` is the prose form of this file and
 * `packages/protocol/schemas/client-frames.schema.json` the schema the server validates client frames against.
 */
import type { ErrorCode } from './codes.js';

/** Herald's standard message envelope, as every message is delivered. The server fills what a publisher leaves out. */
export interface Envelope<P = unknown> {
  /** Globally unique id; also the idempotency key of a publish and the key of an ACK. */
  msgId: string;
  /** Milliseconds since the Unix epoch at which the server accepted the message. */
  timestamp: number;
  /** Who produced the message: a service name for the HTTP API, `client:<userId>` for client publishes. */
  source: string;
  /** Application event name, e.g. `ORDER_CREATED` or `chat.message`. */
  eventType: string;
  /** Version of the payload's schema, e.g. `1.0`. */
  version: string;
  payload: P;
}

/** A position in a channel's stream. The epoch changes whenever the stream's history is lost. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

export interface ErrorBody {
  code: ErrorCode | string;
  message: string;
  /** True when retrying the same thing later may succeed. */
  temporary: boolean;
  details?: unknown;
}

/** Tag values a connection carries from its token. */
export type TagValue = string | number | boolean;
export type Tags = Record<string, TagValue>;

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

export interface ConnectFrame {
  type: 'connect';
  /** Client-chosen number echoed in the reply; any non-negative integer. */
  id: number;
  /** JWT; may be omitted when the server allows anonymous connections or got `?token=` at upgrade. */
  token?: string;
  /** Free-form client name/version for logs, e.g. `herald-js/0.1.0`. */
  client?: string;
}

export interface SubscribeFrame {
  type: 'subscribe';
  id: number;
  channel: string;
  /** Ask for everything published after this position, then live messages. */
  recover?: StreamPosition;
  /** A subscription token: a JWT with `channel` (this channel) and `sub` (this connection's user) granting this one channel. */
  token?: string;
  /**
   * Ask for the channel's `join` and `leave` frames (its namespace must have presence on). Without
   * it, the namespace's `joinLeave` setting decides; `false` declines them.
   */
  presence?: boolean;
}

/** Asks for a page of the channel's members (cluster-wide), ordered by connection id. */
export interface PresenceRequestFrame {
  type: 'presence';
  id: number;
  channel: string;
  /** The `next` of the previous page. */
  cursor?: string;
  /** At most this many members (1–1000, default 100). */
  limit?: number;
}

/** Asks for the channel's member counts (cluster-wide). */
export interface PresenceStatsRequestFrame {
  type: 'presence_stats';
  id: number;
  channel: string;
}

export interface UnsubscribeFrame {
  type: 'unsubscribe';
  id: number;
  channel: string;
}

export interface PublishFrame {
  type: 'publish';
  id: number;
  channel: string;
  eventType: string;
  payload: unknown;
  /** Client-chosen id; a resend of the same id within the idempotency window is not delivered twice. */
  msgId?: string;
  version?: string;
}

export interface RequestFrame {
  type: 'request';
  /** Matches the `response`; unique among the sender's outstanding requests. */
  correlationId: string;
  method: string;
  data?: unknown;
}

export interface ResponseFrame {
  type: 'response';
  correlationId: string;
  data?: unknown;
  error?: ErrorBody;
}

export interface AckFrame {
  type: 'ack';
  msgIds: string[];
}

/** Replaces the connection's token in band: new expiry, rights and tags for the same user. */
export interface RefreshFrame {
  type: 'refresh';
  id: number;
  token: string;
}

export interface PingFrame {
  type: 'ping';
}

export interface PongFrame {
  type: 'pong';
}

export type ClientFrame =
  | ConnectFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | RequestFrame
  | ResponseFrame
  | AckFrame
  | RefreshFrame
  | PresenceRequestFrame
  | PresenceStatsRequestFrame
  | PingFrame
  | PongFrame;

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

export interface ConnectedFrame {
  type: 'connected';
  id: number;
  connectionId: string;
  /** The token's `sub`, or `""` for an anonymous connection. */
  user: string;
  /** The server sends `ping` this often (ms); a client that hears nothing for
   * `pingInterval + pongTimeout` should consider the connection dead. */
  pingInterval: number;
  pongTimeout: number;
  /** Seconds since the epoch at which the token expires, if it does. */
  expiresAt?: number;
  protocol: number;
  node: string;
}

export interface SubscribedFrame {
  type: 'subscribed';
  id: number;
  channel: string;
  /** The stream position after the last message this subscriber has been given. */
  position: StreamPosition;
  /** Present when `recover` was asked: whether every missed message is in `publications`. */
  recovered?: boolean;
  /** Missed messages, oldest first, sent when `recover` was asked. */
  publications?: MessageFrame[];
}

/**
 * The reply to `unsubscribe` (with its `id`), or — without `id`, with `error` — the server ending a
 * subscription itself (e.g. `subscription_revoked` after a token refresh).
 */
export interface UnsubscribedFrame {
  type: 'unsubscribed';
  id?: number;
  channel: string;
  error?: ErrorBody;
}

/** The reply to `refresh`: the new token is in force. */
export interface RefreshedFrame {
  type: 'refreshed';
  id: number;
  /** Seconds since the epoch at which the new token expires, if it does. */
  expiresAt?: number;
}

export interface PublishedFrame {
  type: 'published';
  id: number;
  msgId: string;
  position?: StreamPosition;
  /** True when this msgId was already accepted within the idempotency window. */
  duplicate?: boolean;
}

export type DeliveryTarget = 'channel' | 'user' | 'broadcast' | 'filter';

export interface MessageFrame {
  type: 'message';
  target: DeliveryTarget;
  /** Present for channel deliveries (a filtered channel publish is still a channel delivery). */
  channel?: string;
  /** Present for channel deliveries: the message's position in the channel stream. */
  offset?: number;
  epoch?: string;
  /** Present on at-least-once deliveries: send an `ack` with this message's msgId. */
  ack?: true;
  /** Present when the message comes from the user's inbox (it was stored while they were away). */
  inbox?: true;
  message: Envelope;
}

export interface ErrorFrame {
  type: 'error';
  /** The `id` of the client frame that failed, when it had one. */
  id?: number;
  error: ErrorBody;
}

/** A member of a channel: one connection, its user and the `info` its token granted. */
export interface PresenceMember {
  /** The connection id. */
  client: string;
  user: string;
  info?: unknown;
  /** What the backend's subscribe hook attached to this member's subscription. */
  channelInfo?: unknown;
}

/** The answer to `presence`: members ordered by `client`; `next` is absent on the last page. */
export interface PresenceFrame {
  type: 'presence';
  id: number;
  channel: string;
  members: PresenceMember[];
  next?: string;
}

export interface PresenceStatsFrame {
  type: 'presence_stats';
  id: number;
  channel: string;
  /** Connections in the channel. */
  connections: number;
  /** Distinct users among them. */
  users: number;
}

/** A member joined or left a channel the connection asked join/leave for, in the channel's order. */
export interface JoinFrame {
  type: 'join';
  channel: string;
  member: PresenceMember;
}

export interface LeaveFrame {
  type: 'leave';
  channel: string;
  member: PresenceMember;
}

export type ServerFrame =
  | ConnectedFrame
  | PresenceFrame
  | PresenceStatsFrame
  | JoinFrame
  | LeaveFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | RefreshedFrame
  | PublishedFrame
  | MessageFrame
  | RequestFrame
  | ResponseFrame
  | ErrorFrame
  | PingFrame
  | PongFrame;

/** Tag filter: a tree of `and`/`or`/`not` over leaves that test one tag. */
export type TagFilter =
  | { and: TagFilter[] }
  | { or: TagFilter[] }
  | { not: TagFilter }
  | TagCondition;

export type TagOp =
  | 'eq'
  | 'ne'
  | 'in'
  | 'exists'
  | 'gt'
  | 'gte'
  | 'lt'
  | 'lte'
  | 'vgt'
  | 'vgte'
  | 'vlt'
  | 'vlte';

export interface TagCondition {
  tag: string;
  op: TagOp;
  /** `eq`/`ne`: string, number or boolean; `in`: array; `exists`: boolean; `gt`…`lte`: number;
   * `vgt`…`vlte`: a dotted version such as `2.10.1`. */
  value?: unknown;
}
