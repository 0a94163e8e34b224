/**
 * Operations on this node's connections for the server API: closing a connection or all of a
 * user's, asking a connection a question, listing connections and channels, counters. Closing
 * goes through the session's own `close`, so everything a disconnect releases is released by the
 * one path every close takes (the transport's close → the node's detach).
 */
import { CloseCode } from '@herald/protocol';
import type { ConnectionInfo, PresenceStore } from './engine/presence.js';
import type { Hub } from './hub.js';
import type { Rpc } from './rpc.js';
import type { Subscriptions } from './subscriptions.js';

/** What the server API may do to this node's connections. */
export interface AdminOps {
  disconnectConnection(connectionId: string, reconnect: boolean, reason?: string): boolean;
  disconnectUser(user: string, reconnect: boolean, reason?: string): number;
  /** Sends a request to one connection and resolves with its response frame. */
  requestClient(connectionId: string, method: string, data: unknown, timeoutMs?: number): Promise<{ data?: unknown; error?: unknown }>;
  /** A user's connections: this node's exactly, other nodes' from presence. */
  userConnections(user: string): Promise<ConnectionInfo[]>;
  /** Channels with subscribers on this node, with their counts. */
  channels(): Array<{ channel: string; subscribers: number }>;
  stats(): Record<string, number | string>;
}

export interface AdminOptions {
  nodeName: string;
  hub: Hub;
  rpc: Rpc;
  subscriptions: Subscriptions;
  presence: PresenceStore;
  rpcTimeoutMs: number;
}

export class Admin implements AdminOps {
  constructor(private readonly o: AdminOptions) {}

  disconnectConnection(connectionId: string, reconnect: boolean, reason?: string): boolean {
    const s = this.o.hub.sessions.get(connectionId);
    if (!s) return false;
    s.close(reconnect ? CloseCode.FORCE_RECONNECT : CloseCode.FORCE_DISCONNECT, reason ?? (reconnect ? 'reconnect requested' : 'disconnected by server'));
    return true;
  }

  disconnectUser(user: string, reconnect: boolean, reason?: string): number {
    const sessions = [...(this.o.hub.userSessions(user) ?? [])];
    for (const s of sessions) this.disconnectConnection(s.id, reconnect, reason);
    return sessions.length;
  }

  requestClient(connectionId: string, method: string, data: unknown, timeoutMs = this.o.rpcTimeoutMs): Promise<{ data?: unknown; error?: unknown }> {
    return this.o.rpc.requestClient(connectionId, method, data, timeoutMs);
  }

  async userConnections(user: string): Promise<ConnectionInfo[]> {
    const local = [...(this.o.hub.userSessions(user) ?? [])].map((s) => this.o.subscriptions.connectionInfo(s));
    const seen = new Set(local.map((c) => c.connectionId));
    const remote = (await this.o.presence.userConnections(user)).filter((c) => !seen.has(c.connectionId));
    return [...local, ...remote];
  }

  channels(): Array<{ channel: string; subscribers: number }> {
    return this.o.hub.channelCounts();
  }

  stats(): Record<string, number | string> {
    const { hub } = this.o;
    const mem = process.memoryUsage();
    return {
      node: this.o.nodeName,
      connections: hub.sessions.size,
      users: hub.sessions.size === 0 ? 0 : new Set([...hub.sessions.values()].map((s) => s.user)).size,
      subscriptions: hub.subscriptionCount,
      channels: hub.channelCounts().length,
      queuedBytes: hub.queuedBytes(),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      uptimeSeconds: Math.round(process.uptime()),
    };
  }
}
