/**
 * The control bus on core NATS subjects: `<prefix>.ctl.all` for every node and
 * `<prefix>.ctl.n.<node as a subject token>` per node. No JetStream: commands and heartbeats are
 * worth nothing once late, and the NATS client resubscribes by itself after a reconnect.
 */
import { connect, type NatsConnection, type Subscription } from 'nats';
import { ALL, type ControlBus } from '../control-bus.js';
import { checkNatsPrefix, closeLink, subjectToken } from './jetstream.js';

export interface NatsControlOptions {
  servers: string[];
  prefix: string;
}

export class NatsControlBus implements ControlBus {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  static async connect(opts: NatsControlOptions): Promise<NatsControlBus> {
    checkNatsPrefix(opts.prefix);
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: opts.servers, name: `herald-control-${opts.prefix}`, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
    } catch (err) {
      throw new Error(`cannot connect to NATS at engine.nats.servers=${opts.servers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    return new NatsControlBus(nc, opts.prefix);
  }

  private subject(channel: string): string {
    return channel === ALL ? `${this.prefix}.ctl.all` : `${this.prefix}.ctl.n.${subjectToken(channel)}`;
  }

  async publish(channel: string, payload: string): Promise<void> {
    if (this.nc.isClosed()) throw new Error('the NATS control connection is closed');
    this.nc.publish(this.subject(channel), payload);
  }

  async subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>> {
    const sub: Subscription = this.nc.subscribe(this.subject(channel), {
      callback: (err, msg) => {
        if (!err) onMessage(msg.string());
      },
    });
    // Once the server has the interest, messages published after this resolves will arrive.
    await this.nc.flush();
    return async () => {
      if (!sub.isClosed()) sub.unsubscribe();
    };
  }

  async close(): Promise<void> {
    await closeLink(this.nc);
  }

  /** Drops the connection without a word, as a killed process would (tests). */
  async abandon(): Promise<void> {
    await this.nc.close();
  }
}
