/**
 * The control plane over any publish/subscribe bus: one channel every member hears (`ALL`) and one
 * per member, named by the node. Memory, Redis and NATS each supply the bus; the protocol on it is
 * this one file, so every backend behaves the same.
 *
 * Messages (JSON): `beat` on ALL (with `hello` when a node joins, which makes every peer announce
 * itself at once, so a new node knows the cluster within a round trip); `bye` on ALL; `cmd` on ALL
 * or on one node; `reply` on the asking node's channel. The asking node answers its own part in
 * process: the bus carries commands to peers and their replies only.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, type ErrorBody } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import type { HeraldConfig } from '../config.js';
import type { ControlCommand, ControlMember, ControlNode, ControlPlane, ControlReply, ControlTiming, Gathered, NodeBeat } from './control.js';

/** `cluster.heartbeatIntervalMs` and `cluster.nodeTtlMs`. */
export function controlTimingOf(config: Readonly<HeraldConfig>): ControlTiming {
  return { heartbeatMs: config.cluster.heartbeatIntervalMs, nodeTtlMs: config.cluster.nodeTtlMs };
}

/** The channel every member hears. Node channels are the node names. */
export const ALL = '*';

export interface ControlBus {
  publish(channel: string, payload: string): Promise<void>;
  /** Resolves once messages on the channel will arrive; returns the unsubscribe. */
  subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

type Beat = Omit<NodeBeat, 'lastHeartbeat' | 'uptimeSeconds'>;
type Message =
  | { t: 'beat'; beat: Beat; hello?: boolean }
  | { t: 'bye'; node: string }
  | { t: 'cmd'; id: string; from: string; cmd: ControlCommand }
  | { t: 'reply'; id: string; reply: ControlReply };

export class BusControlPlane implements ControlPlane {
  private readonly members = new Set<BusControlNode>();

  constructor(
    private readonly bus: ControlBus,
    private readonly timing: ControlTiming,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {}

  async join(member: ControlMember): Promise<ControlNode> {
    const node = new BusControlNode(this.bus, this.timing, member, this.onError, () => this.members.delete(node));
    await node.start();
    this.members.add(node);
    return node;
  }

  async close(): Promise<void> {
    for (const m of [...this.members]) await m.leave();
    await this.bus.close();
  }
}

interface Pending {
  expected: Set<string>;
  replies: Map<string, ControlReply>;
  settle: () => void;
}

class BusControlNode implements ControlNode {
  readonly node: string;
  private readonly peers = new Map<string, NodeBeat>();
  private readonly pending = new Map<string, Pending>();
  private readonly unsubscribes: Array<() => Promise<void>> = [];
  private timer: NodeJS.Timeout | undefined;
  private left = false;

  constructor(
    private readonly bus: ControlBus,
    private readonly timing: ControlTiming,
    private readonly member: ControlMember,
    private readonly onError: (err: Error) => void,
    private readonly forget: () => void,
  ) {
    this.node = member.node;
  }

  async start(): Promise<void> {
    const on = (payload: string) => this.receive(payload);
    this.unsubscribes.push(await this.bus.subscribe(ALL, on));
    this.unsubscribes.push(await this.bus.subscribe(this.node, on));
    await this.announce(true);
    this.timer = setInterval(() => void this.announce(false), this.timing.heartbeatMs);
    this.timer.unref();
  }

  broadcast(cmd: ControlCommand, timeoutMs: number): Promise<Gathered> {
    return this.ask(ALL, new Set(this.nodes().map((n) => n.node)), cmd, timeoutMs);
  }

  send(node: string, cmd: ControlCommand, timeoutMs: number): Promise<Gathered> {
    if (!this.nodes().some((n) => n.node === node)) return Promise.resolve({ replies: [], replied: [], missing: [node] });
    return this.ask(node, new Set([node]), cmd, timeoutMs);
  }

  nodes(): NodeBeat[] {
    const now = Date.now();
    const live = [...this.peers.values()].filter((b) => now - b.lastHeartbeat <= this.timing.nodeTtlMs && b.node !== this.node);
    live.push({ node: this.node, ...this.member.describe(), lastHeartbeat: now, uptimeSeconds: 0 });
    return live
      .map((b) => ({ ...b, uptimeSeconds: Math.max(0, Math.round((now - b.startedAt) / 1000)) }))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    clearInterval(this.timer);
    for (const p of this.pending.values()) p.settle();
    await this.publish(ALL, { t: 'bye', node: this.node });
    for (const u of this.unsubscribes.splice(0)) await u().catch(() => undefined);
    this.forget();
  }

  private ask(channel: string, expected: Set<string>, cmd: ControlCommand, timeoutMs: number): Promise<Gathered> {
    const id = randomUUID();
    return new Promise<Gathered>((resolve) => {
      const p: Pending = {
        expected,
        replies: new Map(),
        settle: () => {
          clearTimeout(timer);
          this.pending.delete(id);
          const replied = [...p.replies.keys()].sort();
          const missing = [...expected].filter((n) => !p.replies.has(n)).sort();
          resolve({ replies: replied.map((n) => p.replies.get(n)!), replied, missing });
        },
      };
      const timer = setTimeout(p.settle, timeoutMs);
      this.pending.set(id, p);
      // This node's own part never takes the bus: it costs no broker round trip, and a lone node
      // answers in full while its broker is away. Its own command coming back is ignored.
      if (expected.has(this.node)) void this.answer(cmd).then((reply) => this.collect(id, reply));
      // A command the bus refused reaches nobody: the wait then ends with every peer missing.
      if (expected.size > (expected.has(this.node) ? 1 : 0)) void this.publish(channel, { t: 'cmd', id, from: this.node, cmd });
    });
  }

  private collect(id: string, reply: ControlReply): void {
    const p = this.pending.get(id);
    if (!p) return;
    p.replies.set(reply.node, reply);
    if ([...p.expected].every((n) => p.replies.has(n))) p.settle();
  }

  private announce(hello: boolean): Promise<void> {
    const { version, startedAt, connections } = this.member.describe();
    return this.publish(ALL, { t: 'beat', beat: { node: this.node, version, startedAt, connections }, ...(hello ? { hello } : {}) });
  }

  private async publish(channel: string, m: Message): Promise<void> {
    try {
      await this.bus.publish(channel, JSON.stringify(m));
    } catch (err) {
      this.onError(err as Error);
    }
  }

  /** A message from the bus. One that is not ours or is malformed is dropped: it must never throw into the bus's event loop. */
  private receive(payload: string): void {
    if (this.left) return;
    try {
      this.dispatch(JSON.parse(payload) as Message);
    } catch (err) {
      this.onError(new Error(`dropped a malformed control message: ${(err as Error).message}`));
    }
  }

  private dispatch(m: Message): void {
    switch (m.t) {
      case 'beat':
        if (typeof m.beat.node !== 'string' || m.beat.node === this.node) return;
        this.peers.set(m.beat.node, { ...m.beat, uptimeSeconds: 0, lastHeartbeat: Date.now() });
        if (m.hello) void this.announce(false);
        return;
      case 'bye':
        this.peers.delete(m.node);
        return;
      case 'cmd':
        if (m.from !== this.node) void this.run(m.id, m.from, m.cmd);
        return;
      case 'reply':
        this.collect(m.id, m.reply);
        return;
    }
  }

  private async run(id: string, from: string, cmd: ControlCommand): Promise<void> {
    await this.publish(from, { t: 'reply', id, reply: await this.answer(cmd) });
  }

  private async answer(cmd: ControlCommand): Promise<ControlReply> {
    try {
      return { node: this.node, result: await this.member.handle(cmd) };
    } catch (err) {
      return { node: this.node, error: errorBody(err) };
    }
  }
}

function errorBody(err: unknown): ErrorBody {
  if (err instanceof HeraldError) return err.toBody();
  return new HeraldError(ErrorCode.INTERNAL, (err as Error)?.message).toBody();
}
