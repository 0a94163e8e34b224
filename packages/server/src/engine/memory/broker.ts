/**
 * Single-process broker: dispatches are delivered synchronously to the local handler and each
 * channel keeps an in-memory stream bounded by size and age. A stream exists only once its channel
 * is published: reads of other channels create nothing. The idempotency check is synchronous, in
 * the same turn as the append it guards.
 */
import { randomBytes } from 'node:crypto';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../config.js';
import { windowId, type IdempotencyKey } from '../idempotency.js';
import { IdempotencyWindow } from './idempotency.js';
import { noStreamHistory, sinceInStream, type Broker, type BrokerHandler, type Dispatch, type HistoryEntry, type HistoryQuery, type HistoryResult, type Published } from '../broker.js';

interface StoredEntry extends HistoryEntry {
  at: number;
}

class ChannelStream {
  readonly epoch = randomBytes(4).toString('hex');
  top = 0;
  entries: StoredEntry[] = [];
  /** Index of the first live entry; entries before it are pruned lazily to keep appends O(1). */
  head = 0;
  lastPublishAt = 0;

  append(entry: StoredEntry, cfg: HistoryConfig): void {
    this.entries.push(entry);
    this.lastPublishAt = entry.at;
    this.prune(cfg, entry.at);
  }

  prune(cfg: HistoryConfig, now: number): void {
    const live = this.entries.length - this.head;
    if (live > cfg.size) this.head += live - cfg.size;
    const cutoff = now - cfg.ttlMs;
    while (this.head < this.entries.length && this.entries[this.head]!.at < cutoff) this.head++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Offset of the oldest retained entry, or top+1 when nothing is retained. */
  get firstOffset(): number {
    return this.head < this.entries.length ? this.entries[this.head]!.offset : this.top + 1;
  }
}

/** Until a publish or a read tells the broker a channel's limits, these apply. */
const DEFAULT_HISTORY: HistoryConfig = { size: 1000, ttlMs: 120_000 };

export class MemoryBroker implements Broker {
  private handler: BrokerHandler | undefined;
  private readonly streams = new Map<string, ChannelStream>();
  private readonly historyConfigs = new Map<string, HistoryConfig>();
  private sweeper: NodeJS.Timeout | undefined;

  /** `window`: the idempotency window, shared with the memory inbox (default: one of its own, with the configuration's defaults). */
  constructor(private readonly window: IdempotencyWindow = new IdempotencyWindow(120_000, 1_000_000)) {}

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  async subscribe(): Promise<void> {}

  async unsubscribe(): Promise<void> {}

  /** Runs to completion in the caller's turn (nothing awaited), so publishes keep their call order. */
  async publish(dispatch: Dispatch, history: HistoryConfig, key?: IdempotencyKey): Promise<Published> {
    const id = key && this.window.enabled ? windowId(dispatch.target, key) : undefined;
    if (id !== undefined) {
      const earlier = this.window.get(id);
      if (earlier) return { duplicate: true, ...earlier };
    }
    let position: StreamPosition | undefined;
    if (dispatch.target.kind === 'channel') {
      const channel = dispatch.target.channel;
      let stream = this.streams.get(channel);
      if (!stream) {
        stream = new ChannelStream();
        this.streams.set(channel, stream);
      }
      this.historyConfigs.set(channel, history);
      const offset = ++stream.top;
      if (history.size > 0 && history.ttlMs > 0) stream.append({ offset, envelope: dispatch.envelope, at: Date.now() }, history);
      position = { offset, epoch: stream.epoch };
      dispatch.position = position;
    }
    if (id !== undefined) this.window.set(id, { timestamp: dispatch.envelope.timestamp, ...(position ? { position } : {}) });
    this.handler?.onDispatch(dispatch);
    return { duplicate: false, ...(position ? { position } : {}) };
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const stream = this.streams.get(channel);
    const now = Date.now();
    // No stream, nothing created: a read must not cost memory per name read (issue 11, M4).
    if (!stream) return noStreamHistory(query, (query.config ?? DEFAULT_HISTORY).ttlMs, now);
    if (query.config) this.historyConfigs.set(channel, query.config);
    const cfg = this.historyConfigs.get(channel) ?? DEFAULT_HISTORY;
    stream.prune(cfg, now);
    const position = { offset: stream.top, epoch: stream.epoch };
    const live = stream.entries.slice(stream.head);
    if (!query.since) return { entries: live.slice(Math.max(0, live.length - query.limit)).map(strip), position, complete: true };
    const { offset, epoch } = sinceInStream(query.since, stream.epoch, cfg.ttlMs, now);
    if (epoch !== stream.epoch || offset > stream.top) return { entries: [], position, complete: false };
    if (offset + 1 < stream.firstOffset) return { entries: [], position, complete: false };
    const after = live.filter((e) => e.offset > offset);
    if (after.length > query.limit) return { entries: [], position, complete: false };
    return { entries: after.map(strip), position, complete: true };
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [channel, stream] of this.streams) {
      const cfg = this.historyConfigs.get(channel);
      if (!cfg) continue;
      stream.prune(cfg, now);
      // Forget streams idle past their window; their epoch goes with them, which clients see as
      // "not recovered" — the truth, since nothing is retained.
      if (stream.head >= stream.entries.length && now - stream.lastPublishAt > cfg.ttlMs) {
        this.streams.delete(channel);
        this.historyConfigs.delete(channel);
      }
    }
  }
}

function strip(e: StoredEntry): HistoryEntry {
  return { offset: e.offset, envelope: e.envelope };
}
