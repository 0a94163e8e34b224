/**
 * Helpers for the client SDK tests: a real Herald server with a restartable broker, tokens,
 * the HTTP publish API, a TCP proxy that can go silent (half-open connections), and a `ws`
 * WebSocket that records what the client sends.
 */
import { SignJWT } from 'jose';
import net from 'node:net';
import WebSocket from 'ws';
import { startHerald, MemoryBroker } from '../src/index.js';
import type { HeraldServer } from '../src/index.js';

export const SECRET = 'client-test-secret-0123456789abcdef';
export const API_KEY = 'client-test-key';

export interface ServerOptions {
  port?: number;
  broker?: MemoryBroker;
  heartbeat?: { intervalMs: number; pongTimeoutMs: number; maxMissed?: number };
  /** Extra config overrides, merged last. */
  overrides?: Record<string, unknown>;
}

/** Starts a Herald server on 127.0.0.1. Pass the same `broker` to a restart to keep history. */
export async function startServer(opts: ServerOptions = {}): Promise<HeraldServer> {
  return startHerald({
    overrides: {
      server: { port: opts.port ?? 0, host: '127.0.0.1' },
      auth: { jwt: { hmacSecret: SECRET }, anonymous: false },
      api: { keys: [API_KEY] },
      origins: { allowed: ['*'] },
      log: { level: 'warn' },
      engine: { type: 'memory' },
      // The SDK tests call the built-in `echo` method, which is off unless configured.
      rpc: { echo: true },
      heartbeat: { maxMissed: 1, ...(opts.heartbeat ?? { intervalMs: 25_000, pongTimeoutMs: 10_000 }) },
      ...(opts.overrides ?? {}),
    },
    ...(opts.broker ? { engines: { broker: opts.broker } } : {}),
  });
}

export { MemoryBroker };

export interface Claims {
  sub: string;
  channels?: string[];
  publish?: string[];
  tags?: Record<string, string | number | boolean>;
  /** Seconds from now until expiry (default one hour). */
  ttlSeconds?: number;
}

export async function token(claims: Claims): Promise<string> {
  const { ttlSeconds = 3600, sub, ...rest } = claims;
  return new SignJWT({ ...rest })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

export async function api(baseUrl: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${baseUrl}/api/v1${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

export async function publish(baseUrl: string, body: Record<string, unknown>): Promise<any> {
  const r = await api(baseUrl, '/publish', { eventType: 'test', ...body });
  if (r.status !== 200) throw new Error(`publish failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export { waitFor } from './helpers/wait.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
