/**
 * Counts the control-plane messages of a Herald cluster by listening on its bus as one more
 * subscriber: Redis pub/sub `<prefix>:ctl:*`, NATS `<prefix>.ctl.>` (the topics the engines'
 * control buses use). One count per message published, by its kind (`beat`, `cmd`, `reply`,
 * `bye`); what the broker then fans out to each node is not counted again.
 */
import { Redis } from 'ioredis';
import { connect, type NatsConnection } from 'nats';
import type { ClusterBus } from '../servers/cluster-engines.js';

export type BusCounts = Record<string, number>;

export interface BusTap {
  /** Messages seen so far, by kind (`other` for what is not a control message). */
  counts(): BusCounts;
  close(): Promise<void>;
}

function kindOf(payload: string): string {
  try {
    const t = (JSON.parse(payload) as { t?: unknown }).t;
    return typeof t === 'string' ? t : 'other';
  } catch {
    return 'other';
  }
}

class Counter {
  readonly byKind: BusCounts = {};
  add(payload: string): void {
    const k = kindOf(payload);
    this.byKind[k] = (this.byKind[k] ?? 0) + 1;
  }
}

/** Starts listening; resolves once the subscription is in place (later messages are all counted). */
export async function tapBus(bus: ClusterBus): Promise<BusTap> {
  const counter = new Counter();
  if (bus.type === 'redis') {
    const redis = new Redis(bus.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    redis.on('pmessage', (_pattern: string, _channel: string, message: string) => counter.add(message));
    await redis.psubscribe(`${bus.prefix}:ctl:*`);
    return { counts: () => ({ ...counter.byKind }), close: async () => void redis.disconnect() };
  }
  const nc: NatsConnection = await connect({ servers: bus.url, name: 'herald-bench-bus-tap' });
  nc.subscribe(`${bus.prefix}.ctl.>`, { callback: (err, msg) => (err ? undefined : counter.add(msg.string())) });
  await nc.flush();
  return { counts: () => ({ ...counter.byKind }), close: () => nc.close() };
}

/** `after − before` per kind. */
export function countsBetween(before: BusCounts, after: BusCounts): BusCounts {
  const out: BusCounts = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}
