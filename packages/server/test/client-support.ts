/**
 * What only the client SDK tests need, on top of the shared fixture (helpers/server.ts): the
 * server configuration the SDK is tested against, a TCP proxy that can go silent (half-open
 * connections), and a `ws` WebSocket that records what the client sends.
 */
import net from 'node:net';
import WebSocket from 'ws';
import { MemoryBroker } from '../src/index.js';
import type { HeraldServer } from '../src/index.js';
import { startTestServer } from './helpers/server.js';

export interface ServerOptions {
  port?: number;
  broker?: MemoryBroker;
  heartbeat?: { intervalMs: number; pongTimeoutMs: number; maxMissed?: number };
  /** Extra config overrides, merged last. */
  overrides?: Record<string, unknown>;
}

/**
 * The shared test server, configured as the SDK expects: authentication required, any origin,
 * the built-in `echo` RPC on, one missed pong closes. Pass the same `broker` (and `port`) to a
 * restart to keep history.
 */
export async function startServer(opts: ServerOptions = {}): Promise<HeraldServer> {
  return startTestServer(
    {
      server: { port: opts.port ?? 0 },
      auth: { anonymous: false },
      origins: { allowed: ['*'] },
      rpc: { echo: true },
      heartbeat: { maxMissed: 1, ...(opts.heartbeat ?? { intervalMs: 25_000, pongTimeoutMs: 10_000 }) },
      ...(opts.overrides ?? {}),
    },
    opts.broker ? { broker: opts.broker } : undefined,
  );
}

export { MemoryBroker };

/** Every text frame any RecordingWebSocket sent, parsed. */
export const sentFrames: any[] = [];

/** The `ws` WebSocket, recording outgoing frames in `sentFrames`. */
export class RecordingWebSocket extends WebSocket {
  override send(data: any, ...rest: any[]): void {
    if (typeof data === 'string') sentFrames.push(JSON.parse(data));
    (super.send as (...a: unknown[]) => void)(data, ...rest);
  }
}

/**
 * A TCP proxy in front of a server. `freeze()` makes every current connection silent in both
 * directions without closing it — what a dead NAT or a pulled cable looks like — while new
 * connections still pass.
 */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<{ a: net.Socket; b: net.Socket; frozen: boolean; downFrozen: boolean }>();
  port = 0;

  constructor(private readonly targetPort: number) {
    this.#server = net.createServer((a) => {
      const b = net.connect(this.targetPort, '127.0.0.1');
      const pair = { a, b, frozen: false, downFrozen: false };
      this.#pairs.add(pair);
      a.on('data', (d) => pair.frozen || b.write(d));
      b.on('data', (d) => pair.frozen || pair.downFrozen || a.write(d));
      const end = (): void => {
        if (pair.frozen || pair.downFrozen) return;
        this.#pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('close', end);
      b.on('close', end);
      a.on('error', () => {});
      b.on('error', () => {});
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  freeze(): void {
    for (const p of this.#pairs) p.frozen = true;
  }

  /** Drops only what the server sends on current connections; the client's frames still arrive. */
  freezeDownstream(): void {
    for (const p of this.#pairs) p.downFrozen = true;
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    this.#pairs.clear();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
