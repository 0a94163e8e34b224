/**
 * Presence in a JetStream Key-Value bucket, `<prefix>_presence`: one key per connection,
 * `<user token>.<connection token>` → ConnectionInfo JSON, one revision kept per key.
 *
 * The bucket's TTL (the stream's max_age) is the entry lifetime: JetStream removes a value — and
 * the delete marker `remove` leaves — once it is `ttlMs` old, by the NATS server's clock, so nodes'
 * clocks do not matter. Each node rewrites its own entries every `ttlMs / 3`, so only a node that
 * stopped (SIGKILL, partition) loses its entries: the same contract as the Redis presence.
 *
 * The bucket is in memory: presence is rebuilt by the refreshes within `ttlMs / 3` of a NATS
 * restart, so writing it to disk would buy nothing. A user's connections are read with one
 * consumer filtered on `<user token>.>`.
 */
import { nanos, StorageType, type KV } from 'nats';
import type { ConnectionInfo, PresenceStore } from '../presence.js';
import {
  checkNatsPrefix,
  checkNatsReplicas,
  closeLink,
  inParallel,
  openJetStream,
  readFiltered,
  subjectToken,
  watchConnection,
  type JetStreamLink,
  type NatsEngineOptions,
} from './jetstream.js';

export interface NatsPresenceOptions extends NatsEngineOptions {
  /** Entry lifetime without a refresh (engine.nats.presenceTtlMs). */
  ttlMs: number;
}

/** Writes in flight at once while refreshing or cleaning up. */
const WRITE_WIDTH = 256;

export class NatsPresence implements PresenceStore {
  /** This node's entries by KV key, kept to refresh them. */
  private readonly own = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;
  /** False while NATS is unreachable: refreshing then would only queue writes that time out. */
  private online = true;
  private readonly bucket: string;

  private constructor(
    private readonly link: JetStreamLink,
    private kv: KV,
    private readonly opts: NatsPresenceOptions,
  ) {
    this.bucket = presenceBucket(opts.prefix);
  }

  static async connect(opts: NatsPresenceOptions): Promise<NatsPresence> {
    checkNatsPrefix(opts.prefix);
    checkNatsReplicas(opts.replicas);
    if (!(opts.ttlMs >= 100)) throw new Error(`engine.nats.presenceTtlMs must be at least 100 ms, got ${opts.ttlMs}`);
    const link = await openJetStream(opts, `herald:${opts.prefix}:presence`);
    let kv: KV;
    try {
      kv = await openBucket(link, opts);
    } catch (err) {
      await link.nc.close().catch(() => undefined);
      throw new Error(`engine.nats.servers=${opts.servers.join(',')}: cannot open the presence bucket ${presenceBucket(opts.prefix)}: ${(err as Error).message}`, { cause: err });
    }
    const store = new NatsPresence(link, kv, opts);
    watchConnection(link.nc, {
      reconnect: () => {
        store.online = true;
        void store.afterReconnect();
      },
      disconnect: () => (store.online = false),
      error: opts.onError,
    });
    store.timer = setInterval(() => void store.refresh(), Math.max(10, Math.floor(opts.ttlMs / 3)));
    store.timer.unref();
    return store;
  }

  async add(info: ConnectionInfo): Promise<void> {
    const key = entryKey(info.user, info.connectionId);
    const json = JSON.stringify(info);
    this.own.set(key, json);
    await this.kv.put(key, json);
  }

  async remove(connectionId: string, user: string): Promise<void> {
    const key = entryKey(user, connectionId);
    this.own.delete(key);
    await this.kv.delete(key);
  }

  async userConnections(user: string): Promise<ConnectionInfo[]> {
    const filter = `$KV.${this.bucket}.${subjectToken(user)}.>`;
    const msgs = await readFiltered(this.link, `KV_${this.bucket}`, { filter }, (pending, fetch) => fetch(pending));
    const out: ConnectionInfo[] = [];
    for (const m of msgs) {
      // A removed connection's key holds a delete marker until it ages out.
      const op = m.headers?.get('KV-Operation');
      if (op === 'DEL' || op === 'PURGE' || m.data.length === 0) continue;
      out.push(JSON.parse(m.string()) as ConnectionInfo);
    }
    return out;
  }

  /** Rewrites this node's entries, restarting their TTL; called every `ttlMs / 3`. */
  async refresh(): Promise<void> {
    if (this.refreshing || !this.online || this.own.size === 0 || this.link.nc.isClosed()) return;
    this.refreshing = true;
    let failed = 0;
    let firstError: Error | undefined;
    try {
      await inParallel([...this.own], WRITE_WIDTH, async ([key, json]) => {
        try {
          await this.kv.put(key, json);
          // `add` or `remove` ran while this write was in flight: what they wrote must stay last.
          const now = this.own.get(key);
          if (now === undefined) await this.kv.delete(key);
          else if (now !== json) await this.kv.put(key, now);
        } catch (err) {
          failed++;
          firstError ??= err as Error;
        }
      });
      if (firstError) this.opts.onError?.(new Error(`${failed} of this node's presence entries were not refreshed: ${firstError.message}`), 'presence refresh');
    } finally {
      this.refreshing = false;
    }
  }

  /** Removes this node's remaining entries and disconnects. */
  async close(): Promise<void> {
    this.stopRefreshing();
    const nc = this.link.nc;
    if (!nc.isClosed()) {
      await inParallel([...this.own.keys()], WRITE_WIDTH, (key) => this.kv.delete(key)).catch(() => undefined);
      this.own.clear();
      await closeLink(nc);
    }
  }

  /** What SIGKILL does: stop refreshing and drop the connection, leaving the entries to expire. For tests. */
  async abandon(): Promise<void> {
    this.stopRefreshing();
    await this.link.nc.close();
  }

  private stopRefreshing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A NATS server that restarted has lost the in-memory bucket: recreate it, then write everything back. */
  private async afterReconnect(): Promise<void> {
    try {
      this.kv = await openBucket(this.link, this.opts);
    } catch (err) {
      this.opts.onError?.(err as Error, 'presence bucket');
      return;
    }
    await this.refresh();
  }
}

export function presenceBucket(prefix: string): string {
  return `${prefix}_presence`;
}

function entryKey(user: string, connectionId: string): string {
  return `${subjectToken(user)}.${subjectToken(connectionId)}`;
}

/**
 * Opens (creating if needed) the bucket. An existing bucket whose TTL differs from this node's is
 * set to this node's: the TTL is a deployment-wide setting and the node started last wins.
 */
async function openBucket(link: JetStreamLink, opts: NatsPresenceOptions): Promise<KV> {
  const bucket = presenceBucket(opts.prefix);
  const kv = await link.js.views.kv(bucket, {
    history: 1,
    ttl: opts.ttlMs,
    storage: StorageType.Memory,
    replicas: checkNatsReplicas(opts.replicas),
    timeout: link.timeoutMs,
  });
  const stream = `KV_${bucket}`;
  const info = await link.jsm.streams.info(stream);
  if (info.config.max_age !== nanos(opts.ttlMs)) {
    await link.jsm.streams.update(stream, { ...info.config, max_age: nanos(opts.ttlMs), duplicate_window: nanos(Math.min(opts.ttlMs, 120_000)) });
  }
  return kv;
}
