/**
 * The control bus on Redis pub/sub: `<prefix>:ctl:all` for every node and `<prefix>:ctl:n:<node>`
 * per node. Plain PUBLISH/SUBSCRIBE in every mode: control traffic is small, and on a Redis Cluster
 * a plain publish reaches a subscriber on any master. Its own two connections, so a slow dispatch
 * stream never delays an admin answer.
 */
import { ALL, type ControlBus } from '../control-bus.js';
import { closeRedis, openRedis, type RedisClient, type RedisEngineOptions } from './connection.js';

export class RedisControlBus implements ControlBus {
  /** Several members may share one plane (nodes sharing one engine), hence several listeners a topic. */
  private readonly listeners = new Map<string, Set<(payload: string) => void>>();

  private constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly prefix: string,
  ) {
    sub.on('message', (topic: string, message: string) => {
      for (const on of this.listeners.get(topic) ?? []) on(message);
    });
    // The connections do not resubscribe by themselves (connection.ts). This runs after the first
    // connect (openRedis awaited it), so every `ready` here is a reconnect: subscribe again.
    sub.on('ready', () => {
      const topics = [...this.listeners.keys()];
      if (topics.length > 0) sub.subscribe(...topics).catch(() => undefined);
    });
  }

  static async connect(opts: RedisEngineOptions): Promise<RedisControlBus> {
    const pub = await openRedis(opts, 'control');
    let sub: RedisClient;
    try {
      sub = await openRedis(opts, 'control-sub');
    } catch (err) {
      await closeRedis(pub);
      throw err;
    }
    return new RedisControlBus(pub, sub, opts.prefix);
  }

  private topic(channel: string): string {
    return channel === ALL ? `${this.prefix}:ctl:all` : `${this.prefix}:ctl:n:${channel}`;
  }

  async publish(channel: string, payload: string): Promise<void> {
    await this.pub.publish(this.topic(channel), payload);
  }

  async subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>> {
    const topic = this.topic(channel);
    let set = this.listeners.get(topic);
    if (!set) {
      set = new Set();
      this.listeners.set(topic, set);
    }
    const listener = (payload: string) => onMessage(payload);
    set.add(listener);
    await this.sub.subscribe(topic);
    return async () => {
      set.delete(listener);
      if (set.size > 0 || this.listeners.get(topic) !== set) return;
      this.listeners.delete(topic);
      await this.sub.unsubscribe(topic);
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await closeRedis(this.sub);
    await closeRedis(this.pub);
  }

  /** Drops both connections without a word, as a killed process would (tests). */
  abandon(): void {
    this.listeners.clear();
    this.sub.disconnect();
    this.pub.disconnect();
  }
}
