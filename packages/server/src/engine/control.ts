/**
 * The control plane: node-to-node commands over the broker the cluster already uses, and node
 * liveness. A node joins with a handler for commands; any node may then broadcast a command to
 * every live node, or send it to one node by name, and collect the replies within a bounded wait.
 * The answer always says which nodes replied and which were expected and did not, so a dead node
 * makes it partial, never late.
 *
 * Liveness: each member announces itself (name, version, start time, connections) every
 * `heartbeatMs`; a node not heard from for `nodeTtlMs` is gone. A member that leaves cleanly says so
 * and is gone at once.
 */
import type { ErrorBody, NodeInfo } from '@herald/protocol';

export interface ControlCommand {
  op: string;
  args?: Record<string, unknown>;
}

/** What a node's handler made of a command: a result, or an error it threw (as an error body). */
export interface ControlReply {
  node: string;
  result?: unknown;
  error?: ErrorBody;
}

/** A gathered answer: every reply that came within the wait, and who did not answer. */
export interface Gathered {
  replies: ControlReply[];
  /** Nodes that answered, sorted. */
  replied: string[];
  /** Nodes that were live when the command went out and did not answer within the wait, sorted. */
  missing: string[];
}

/** A live node as its last heartbeat described it. */
export type NodeBeat = NodeInfo;

/** Answers a command; may throw a HeraldError, which travels back as the reply's `error`. */
export type ControlHandler = (cmd: ControlCommand) => unknown;

export interface ControlMember {
  node: string;
  handle: ControlHandler;
  /** What the member announces about itself, read at each heartbeat. */
  describe(): { version: string; startedAt: number; connections: number };
}

/** One node's membership of the control plane. */
export interface ControlNode {
  readonly node: string;
  /** To every live node (this one included); resolves within `timeoutMs`. */
  broadcast(cmd: ControlCommand, timeoutMs: number): Promise<Gathered>;
  /** To one node; resolves within `timeoutMs`, at once with it missing when it is not live. */
  send(node: string, cmd: ControlCommand, timeoutMs: number): Promise<Gathered>;
  /** Live nodes (this one included), sorted by name. */
  nodes(): NodeBeat[];
  /** Says goodbye (peers drop this node at once) and stops the heartbeat. */
  leave(): Promise<void>;
}

export interface ControlPlane {
  join(member: ControlMember): Promise<ControlNode>;
  close(): Promise<void>;
}

export interface ControlTiming {
  heartbeatMs: number;
  nodeTtlMs: number;
}
