/**
 * The server API's operations on connections, cluster-wide: closing a connection or all of a
 * user's, asking a connection a question, listing channels, counters and the live nodes. Each
 * operation runs on every node that may hold what it acts on, through the control plane
 * (engine/control.ts), and its answer names the nodes that replied and those that did not within
 * `cluster.controlTimeoutMs` — a dead node makes an answer partial, never late.
 *
 * Closing goes through the session's own `close`, so everything a disconnect releases is released
 * by the one path every close takes (the transport's close → the node's detach).
 */
import { CloseCode, ErrorCode, type ErrorBody } from '@herald/protocol';
import type { ControlCommand, ControlNode, Gathered, NodeBeat } from './engine/control.js';
import type { ConnectionInfo, PresenceStore } from './engine/presence.js';
import { HeraldError } from './errors.js';
import type { Hub } from './hub.js';
import type { Rpc } from './rpc.js';
import type { Subscriptions } from './subscriptions.js';

/** Which nodes answered a cluster-wide operation within the wait, and which did not. */
export interface NodesAnswer {
  replied: string[];
  missing: string[];
}

export type NodeStats = Record<string, number | string>;

/** What the server API may do to the cluster's connections. */
export interface AdminOps {
  disconnectConnection(connectionId: string, reconnect: boolean, reason?: string): Promise<{ disconnected: number; nodes: NodesAnswer }>;
  disconnectUser(user: string, reconnect: boolean, reason?: string): Promise<{ disconnected: number; nodes: NodesAnswer }>;
  /** Sends a request to one connection on any node and resolves with its response frame. */
  requestClient(connectionId: string, method: string, data: unknown, timeoutMs?: number): Promise<{ data?: unknown; error?: unknown }>;
  /** A user's connections: this node's exactly, other nodes' from presence. */
  userConnections(user: string): Promise<ConnectionInfo[]>;
  /** Channels with subscribers on any node, with the cluster's counts. */
  channels(): Promise<{ channels: Array<{ channel: string; subscribers: number }>; nodes: NodesAnswer }>;
  /** This node's counters (top level, as on a single node), every node's, and their totals. */
  stats(): Promise<Record<string, unknown>>;
  /** The live nodes, from their heartbeats. */
  nodes(): NodeBeat[];
}

export interface AdminOptions {
  nodeName: string;
  hub: Hub;
  rpc: Rpc;
  subscriptions: Subscriptions;
  presence: PresenceStore;
  rpcTimeoutMs: number;
  /** cluster.controlTimeoutMs */
  controlTimeoutMs: number;
}

/** Counters summed into `totals` by GET /stats. */
const SUMMED = ['connections', 'users', 'subscriptions', 'channels', 'queuedBytes', 'rssBytes', 'heapUsedBytes'] as const;

export class Admin implements AdminOps {
  private control: ControlNode | undefined;
  /** Extra figures of this node in its stats (the admin UI's sampler adds its per-second rates). */
  private readonly statsSources = new Set<() => NodeStats>();

  constructor(private readonly o: AdminOptions) {}

  /** Adds figures to this node's answer to `stats`; returns the disposer. */
  addStatsSource(source: () => NodeStats): () => void {
    this.statsSources.add(source);
    return () => this.statsSources.delete(source);
  }

  /** From the node's start on, operations reach every node through `control`. */
  attachControl(control: ControlNode | undefined): void {
    this.control = control;
  }

  // ---- cluster-wide operations (the server API) ---------------------------------------------

  async disconnectConnection(connectionId: string, reconnect: boolean, reason?: string): Promise<{ disconnected: number; nodes: NodesAnswer }> {
    const cmd = { op: 'disconnectConnection', args: { connectionId, reconnect, reason } };
    const g = await this.toOwner(connectionId, cmd, this.o.controlTimeoutMs);
    const disconnected = results(g).reduce<number>((n, r) => n + (r === true ? 1 : 0), 0);
    return { disconnected, nodes: nodesOf(g) };
  }

  async disconnectUser(user: string, reconnect: boolean, reason?: string): Promise<{ disconnected: number; nodes: NodesAnswer }> {
    const g = await this.everywhere({ op: 'disconnectUser', args: { user, reconnect, reason } }, this.o.controlTimeoutMs);
    return { disconnected: results(g).reduce<number>((n, r) => n + (typeof r === 'number' ? r : 0), 0), nodes: nodesOf(g) };
  }

  async requestClient(connectionId: string, method: string, data: unknown, timeoutMs = this.o.rpcTimeoutMs): Promise<{ data?: unknown; error?: unknown }> {
    const owner = this.ownerOf(connectionId);
    if (!this.control || owner === this.o.nodeName) return this.o.rpc.requestClient(connectionId, method, data, timeoutMs);
    // The owner answers with the client's response or the same errors as a local request; the
    // extra control timeout covers the two hops.
    const g = await this.toOwner(connectionId, { op: 'request', args: { connectionId, method, data, timeoutMs } }, timeoutMs + this.o.controlTimeoutMs);
    const found = g.replies.find((r) => r.error?.code !== ErrorCode.CONNECTION_NOT_FOUND);
    if (found?.error) throw HeraldError.fromBody(found.error);
    if (found) return found.result as { data?: unknown; error?: unknown };
    const missing = g.missing.length > 0 ? `; no answer from ${g.missing.join(', ')} within the wait` : '';
    throw new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `no connection ${connectionId} in the cluster${missing}`, { nodes: nodesOf(g) });
  }

  async userConnections(user: string): Promise<ConnectionInfo[]> {
    const local = [...(this.o.hub.userSessions(user) ?? [])].map((s) => this.o.subscriptions.connectionInfo(s));
    const seen = new Set(local.map((c) => c.connectionId));
    const remote = (await this.o.presence.userConnections(user)).filter((c) => !seen.has(c.connectionId));
    return [...local, ...remote];
  }

  async channels(): Promise<{ channels: Array<{ channel: string; subscribers: number }>; nodes: NodesAnswer }> {
    const g = await this.everywhere({ op: 'channels' }, this.o.controlTimeoutMs);
    const counts = new Map<string, number>();
    for (const r of results(g)) {
      if (!Array.isArray(r)) continue;
      for (const c of r as Array<{ channel: string; subscribers: number }>) counts.set(c.channel, (counts.get(c.channel) ?? 0) + c.subscribers);
    }
    return { channels: [...counts].map(([channel, subscribers]) => ({ channel, subscribers })), nodes: nodesOf(g) };
  }

  async stats(): Promise<Record<string, unknown>> {
    const g = await this.everywhere({ op: 'stats' }, this.o.controlTimeoutMs);
    const byNode = results(g).filter((r): r is NodeStats => typeof r === 'object' && r !== null);
    const totals: Record<string, number> = {};
    for (const k of SUMMED) totals[k] = byNode.reduce((n, s) => n + (typeof s[k] === 'number' ? s[k] : 0), 0);
    // This node's own reply is its top level (it answered in process, so it is in byNode unless it failed).
    const own = byNode.find((s) => s.node === this.o.nodeName) ?? this.localStats();
    return { ...own, totals, byNode, nodes: nodesOf(g) };
  }

  nodes(): NodeBeat[] {
    return this.control?.nodes() ?? [];
  }

  // ---- what this node does when asked (the control plane's handler) -------------------------

  handle(cmd: ControlCommand): unknown {
    const a = cmd.args ?? {};
    switch (cmd.op) {
      case 'disconnectConnection':
        return this.closeLocal(String(a.connectionId), a.reconnect === true, optionalString(a.reason));
      case 'disconnectUser': {
        const sessions = [...(this.o.hub.userSessions(String(a.user)) ?? [])];
        for (const s of sessions) this.closeLocal(s.id, a.reconnect === true, optionalString(a.reason));
        return sessions.length;
      }
      case 'request':
        return this.o.rpc.requestClient(String(a.connectionId), String(a.method), a.data, typeof a.timeoutMs === 'number' ? a.timeoutMs : this.o.rpcTimeoutMs);
      case 'channels':
        return this.o.hub.channelCounts();
      case 'stats':
        return this.localStats();
      default:
        throw new HeraldError(ErrorCode.BAD_REQUEST, `unknown control operation ${JSON.stringify(cmd.op)}`);
    }
  }

  // ---- this node ----------------------------------------------------------------------------

  private closeLocal(connectionId: string, reconnect: boolean, reason?: string): boolean {
    const s = this.o.hub.sessions.get(connectionId);
    if (!s) return false;
    s.close(reconnect ? CloseCode.FORCE_RECONNECT : CloseCode.FORCE_DISCONNECT, reason ?? (reconnect ? 'reconnect requested' : 'disconnected by server'));
    return true;
  }

  localStats(): NodeStats {
    const { hub } = this.o;
    const mem = process.memoryUsage();
    const extra: NodeStats = {};
    for (const source of this.statsSources) Object.assign(extra, source());
    return {
      ...extra,
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

  // ---- routing ------------------------------------------------------------------------------

  /** Runs a command on every live node; before the node has joined the cluster, on this one. */
  private async everywhere(cmd: ControlCommand, timeoutMs: number): Promise<Gathered> {
    if (this.control) return this.control.broadcast(cmd, timeoutMs);
    return this.here(cmd);
  }

  /**
   * Runs a command on the node that owns a connection: connection ids are `<node>-<seq>`, so the
   * owner is named by the id. An id naming no live node (a foreign or stale id) is looked for on
   * every node.
   */
  private async toOwner(connectionId: string, cmd: ControlCommand, timeoutMs: number): Promise<Gathered> {
    const owner = this.ownerOf(connectionId);
    // This node's own connections need no bus (and are reachable while the broker is away).
    if (!this.control || owner === this.o.nodeName) return this.here(cmd);
    if (owner !== undefined && this.control.nodes().some((n) => n.node === owner)) return this.control.send(owner, cmd, timeoutMs);
    return this.control.broadcast(cmd, timeoutMs);
  }

  private ownerOf(connectionId: string): string | undefined {
    const i = connectionId.lastIndexOf('-');
    return i > 0 ? connectionId.slice(0, i) : undefined;
  }

  private async here(cmd: ControlCommand): Promise<Gathered> {
    const node = this.o.nodeName;
    try {
      return { replies: [{ node, result: await this.handle(cmd) }], replied: [node], missing: [] };
    } catch (err) {
      const error: ErrorBody = err instanceof HeraldError ? err.toBody() : new HeraldError(ErrorCode.INTERNAL).toBody();
      return { replies: [{ node, error }], replied: [node], missing: [] };
    }
  }
}

function results(g: Gathered): unknown[] {
  return g.replies.filter((r) => r.error === undefined).map((r) => r.result);
}

function nodesOf(g: Gathered): NodesAnswer {
  return { replied: g.replied, missing: g.missing };
}

function optionalString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
