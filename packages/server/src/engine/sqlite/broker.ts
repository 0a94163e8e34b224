/**
 * Single-node broker with durable channel history in SQLite. A channel publish is acknowledged
 * only after its history row committed, and is dispatched locally right after the commit, so
 * every message a client may have seen can be recovered after a crash. Epochs live in the
 * database too: a restart keeps them, and recovery across it works. A channel gets its row on its
 * first publish; reading a channel never writes.
 *
 * Idempotent publishes check and record their key in the same write as the history row (user and
 * broadcast targets: a write of the key alone, committed before the dispatch), so a key is stored
 * once, also across a restart.
 */
import { randomBytes } from 'node:crypto';
import type { StreamPosition } from '@herald/protocol';
import type { HistoryConfig } from '../../config.js';
import { windowId, type IdempotencyKey } from '../idempotency.js';
import { noStreamHistory, sinceInStream, type Broker, type BrokerHandler, type Dispatch, type HistoryQuery, type HistoryResult, type Published } from '../broker.js';
import type { SqliteDb } from './db.js';
import type { SqliteIdempotency } from './idempotency.js';
import { encodedEnvelope } from '../encoded-envelope.js';

interface ChannelState {
  epoch: string;
  top: number;
  history: HistoryConfig;
}

const SWEEP_MS = 2000;

export class SqliteBroker implements Broker {
  private handler: BrokerHandler | undefined;
  private readonly channels = new Map<string, ChannelState>();
  private readonly touched = new Set<string>();
  private readonly topDirty = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly stmt;

  constructor(
    private readonly store: SqliteDb,
    private readonly idempotency?: SqliteIdempotency,
  ) {
    const db = store.db;
    this.stmt = {
      getChannel: db.prepare<[string], { epoch: string; top: number }>('SELECT epoch, top FROM channels WHERE channel = ?'),
      putChannel: db.prepare('INSERT INTO channels (channel, epoch, top) VALUES (?, ?, ?) ON CONFLICT(channel) DO UPDATE SET top = excluded.top'),
      insert: db.prepare('INSERT INTO history (channel, offset, at, msg_id, envelope) VALUES (?, ?, ?, ?, ?)'),
      since: db.prepare<[string, number, number, number], { offset: number; envelope: string }>(
        'SELECT offset, envelope FROM history WHERE channel = ? AND offset > ? AND at >= ? ORDER BY offset LIMIT ?',
      ),
      newest: db.prepare<[string, number, number], { offset: number; envelope: string }>(
        'SELECT offset, envelope FROM history WHERE channel = ? AND at >= ? ORDER BY offset DESC LIMIT ?',
      ),
      first: db.prepare<[string, number], { offset: number | null }>('SELECT MIN(offset) AS offset FROM history WHERE channel = ? AND at >= ?'),
      prune: db.prepare('DELETE FROM history WHERE channel = ? AND (offset <= ? OR at < ?)'),
    };
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  async subscribe(): Promise<void> {}

  async unsubscribe(): Promise<void> {}

  async publish(dispatch: Dispatch, history: HistoryConfig, key?: IdempotencyKey): Promise<Published> {
    const t = dispatch.target;
    const window = key && this.idempotency?.enabled ? this.idempotency : undefined;
    if (t.kind !== 'channel' && !window) {
      this.handler?.onDispatch(dispatch);
      return { duplicate: false };
    }
    const id = window ? windowId(t, key!) : undefined;
    const envelopeJson = t.kind === 'channel' ? encodedEnvelope(dispatch) : '';
    let claimed = false;
    let outcome: Published;
    try {
      outcome = await this.store.write((): Published => {
        const earlier = id !== undefined ? window!.get(id) : undefined;
        if (earlier) return { duplicate: true, ...earlier };
        const position = t.kind === 'channel' ? this.append(t.channel, dispatch, envelopeJson, history) : undefined;
        if (id !== undefined) {
          window!.record(id, { timestamp: dispatch.envelope.timestamp, ...(position ? { position } : {}) });
          claimed = true;
        }
        return { duplicate: false, ...(position ? { position } : {}) };
      });
    } catch (err) {
      // The transaction did not commit: the key is free again.
      if (claimed) window!.delete(id!);
      throw err;
    }
    if (outcome.duplicate) return outcome;
    if (t.kind === 'channel') {
      this.touched.add(t.channel);
      dispatch.position = outcome.position;
    }
    this.handler?.onDispatch(dispatch);
    return outcome;
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const state = this.known(channel, query.config);
    if (!state) return noStreamHistory(query, (query.config ?? DEFAULT_HISTORY).ttlMs);
    const cfg = state.history;
    const now = Date.now();
    const cutoff = now - cfg.ttlMs;
    const position = { offset: state.top, epoch: state.epoch };
    // Rows past the size bound are deleted by the sweeper later; a read already leaves them out.
    const keptAfter = Math.max(0, state.top - cfg.size);
    if (!query.since) {
      const limit = Math.min(query.limit, Math.max(0, cfg.size));
      const rows = limit > 0 ? this.stmt.newest.all(channel, cutoff, limit).reverse() : [];
      return { entries: rows.map(parse), position, complete: true };
    }
    const { offset, epoch } = sinceInStream(query.since, state.epoch, cfg.ttlMs, now);
    if (epoch !== state.epoch || offset > state.top) return { entries: [], position, complete: false };
    if (offset === state.top) return { entries: [], position, complete: true };
    const first = Math.max(this.stmt.first.get(channel, cutoff)?.offset ?? state.top + 1, keptAfter + 1);
    if (offset + 1 < first) return { entries: [], position, complete: false };
    const rows = this.stmt.since.all(channel, offset, cutoff, query.limit + 1);
    if (rows.length > query.limit) return { entries: [], position, complete: false };
    return { entries: rows.map(parse), position, complete: true };
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** Appends one message to a channel's stream. Must run inside a store write (it may create the channel row). */
  private append(channel: string, dispatch: Dispatch, envelopeJson: string, history: HistoryConfig): StreamPosition {
    const state = this.state(channel, history);
    const offset = state.top + 1;
    if (history.size > 0 && history.ttlMs > 0) this.stmt.insert.run(channel, offset, dispatch.envelope.timestamp, dispatch.envelope.msgId, envelopeJson);
    // Advance the cached top only once the row is in the transaction; a failed write leaves it.
    state.top = offset;
    // The channel's top is stored once per group commit, not once per message.
    if (!this.topDirty.has(channel)) {
      this.topDirty.add(channel);
      this.store.beforeCommit(() => {
        this.topDirty.delete(channel);
        this.stmt.putChannel.run(channel, state.epoch, state.top);
      });
    }
    return { offset, epoch: state.epoch };
  }

  /** Must run inside a store write (it creates the channel row when there is none). */
  private state(channel: string, history: HistoryConfig): ChannelState {
    let s = this.known(channel, history);
    if (!s) {
      s = { epoch: randomBytes(4).toString('hex'), top: 0, history };
      this.stmt.putChannel.run(channel, s.epoch, 0);
      this.channels.set(channel, s);
    }
    return s;
  }

  /** A channel that has a row, or undefined; only channels that exist are cached. Writes nothing. */
  private known(channel: string, history: HistoryConfig | undefined): ChannelState | undefined {
    let s = this.channels.get(channel);
    if (!s) {
      const row = this.stmt.getChannel.get(channel);
      if (!row) return undefined;
      s = { epoch: row.epoch, top: row.top, history: history ?? DEFAULT_HISTORY };
      this.channels.set(channel, s);
    }
    if (history) s.history = history;
    return s;
  }

  private sweep(): void {
    if (this.touched.size === 0) return;
    const channels = [...this.touched];
    this.touched.clear();
    const now = Date.now();
    void this.store
      .write(() => {
        for (const channel of channels) {
          const s = this.channels.get(channel);
          if (s) this.stmt.prune.run(channel, s.top - s.history.size, now - s.history.ttlMs);
        }
      })
      .catch(() => undefined);
  }
}

/** Until a publish tells the broker a channel's limits, history reads use these. */
const DEFAULT_HISTORY: HistoryConfig = { size: 1000, ttlMs: 120_000 };

function parse(row: { offset: number; envelope: string }) {
  return { offset: row.offset, envelope: JSON.parse(row.envelope) };
}
