/**
 * Shapes the HTTP API answers with that both the server (which builds them) and the server SDK
 * (which types them for backends) name: one definition each, so the two cannot drift.
 */
import type { Tags } from './frames.js';

/** A live connection as presence records it (`GET /api/v1/users/{user}/connections`). */
export interface ConnectionInfo {
  connectionId: string;
  user: string;
  node: string;
  connectedAt: number;
  remoteAddress: string;
  tags: Tags;
  channels: string[];
}

/** A live node as its last heartbeat described it (`GET /api/v1/nodes`). */
export interface NodeInfo {
  node: string;
  version: string;
  /** Epoch ms the node started. */
  startedAt: number;
  uptimeSeconds: number;
  /** Open connections at its last heartbeat. */
  connections: number;
  /** Epoch ms the answering node last heard the heartbeat. */
  lastHeartbeat: number;
}

/** Which nodes answered a cluster-wide call in time (docs/http-api.md, "Cluster-wide answers"). */
export interface NodesAnswered {
  /** Nodes that answered, sorted. */
  replied: string[];
  /** Nodes that were live when the call went out and did not answer within the wait, sorted. */
  missing: string[];
}

/** One recipient connection of a message published with `receipts: true`. */
export interface RecipientRecord {
  connectionId: string;
  user: string;
  deliveredAt: number;
  attempts: number;
  ackedAt?: number;
  exhaustedAt?: number;
}

/** A channel member as the server API lists it (`GET /api/v1/channels/{channel}/presence`). */
export interface ChannelMemberInfo {
  /** The connection id. */
  client: string;
  user: string;
  /** The token's `info` claim, when it had one. */
  info?: unknown;
  /** What the subscribe hook attached to this subscription, when it did. */
  channelInfo?: unknown;
  /** The node holding the connection. */
  node: string;
}

/** `GET /api/v1/channels/{channel}/presence`: one page, ordered by `client`. */
export interface ChannelPresencePage {
  channel: string;
  members: ChannelMemberInfo[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next?: string;
}

/** `GET /api/v1/channels/{channel}/presence-stats`. */
export interface ChannelPresenceStats {
  channel: string;
  connections: number;
  users: number;
}
