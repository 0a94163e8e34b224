/**
 * The one test-server fixture: a real Herald on an ephemeral port (`startTestServer`), tokens
 * signed with its secret (`makeToken`), a raw protocol client (`TestSocket`) and the HTTP API
 * (`api`, `publish`). Suites with their own needs (the client SDK's, in client-support.ts) build
 * on these rather than starting servers another way.
 */
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { mergeConfig, type DeepPartial, type HeraldConfig } from '../../src/config.js';
import { startHerald, type HeraldServer, type StartOptions } from '../../src/server.js';
import { waitFor } from './wait.js';

export const SECRET = 'test-secret-0123456789abcdef-0123456789';
export const API_KEY = 'test-api-key-123';

/**
 * Starts Herald on 127.0.0.1 with a random port, the test secret and API key, silent logs and
 * the memory engine; `overrides` are merged over that. Pass `engines` (e.g. one `MemoryBroker`
 * kept across a restart) to share state between successive servers.
 */
export async function startTestServer(overrides: DeepPartial<HeraldConfig> | Record<string, unknown> = {}, engines?: StartOptions['engines']): Promise<HeraldServer> {
  const base = {
    server: { host: '127.0.0.1', port: 0 },
    auth: { jwt: { hmacSecret: SECRET } },
    api: { keys: [API_KEY] },
    log: { level: 'silent' },
    engine: { type: 'memory' },
    shutdown: { drainTimeoutMs: 500 },
  };
  return startHerald({ overrides: mergeConfig(base as Record<string, unknown>, overrides), ...(engines ? { engines } : {}) });
}

export interface TokenClaims {
  sub?: string;
  channels?: string[];
  publish?: string[];
  tags?: Record<string, string | number | boolean>;
  /** The `info` claim channel presence shows. */
  info?: unknown;
  /** A duration such as `'1h'` or `'2s'` (a number is an absolute expiry, seconds since the epoch). */
  expiresIn?: string | number;
  secret?: string;
}

export async function makeToken(claims: TokenClaims = {}): Promise<string> {
  const { sub = 'u1', channels = ['*'], publish = [], tags, info, expiresIn = '1h', secret = SECRET } = claims;
  const jwt = new SignJWT({ channels, publish, ...(tags ? { tags } : {}), ...(info !== undefined ? { info } : {}) }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt();
  jwt.setExpirationTime(expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

export type Frame = Record<string, any> & { type: string };

/** A protocol client that records every frame; `next` waits for the next matching one. */
export class TestSocket {
  readonly frames: Frame[] = [];
  private cursor = 0;
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  autoPong = true;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const f = JSON.parse(isBinary ? '{"type":"__binary__"}' : String(data)) as Frame;
      if (f.type === 'ping' && this.autoPong) ws.send('{"type":"pong"}');
      this.frames.push(f);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: String(reason) });
      for (const w of this.waiters.splice(0)) w();
    }));
  }

  static async open(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<TestSocket> {
    const ws = new WebSocket(url, { headers, ...(localAddress ? { localAddress } : {}) });
    const s = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, res })));
    });
    return s;
  }

  /** Opens and authenticates. */
  static async connect(server: HeraldServer, claims: TokenClaims | null = {}): Promise<TestSocket> {
    const s = await TestSocket.open(server.wsUrl);
    const token = claims === null ? undefined : await makeToken(claims);
    const reply = await s.request({ type: 'connect', ...(token ? { token } : {}) });
    if (reply.type !== 'connected') throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    s.info = reply;
    return s;
  }

  info: Frame = { type: 'none' };

  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends a frame with a fresh id and waits for the reply carrying that id. */
  async request(frame: object, timeoutMs = 3000): Promise<Frame> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id, timeoutMs);
  }

  async subscribe(channel: string, recover?: { offset: number; epoch: string }): Promise<Frame> {
    const reply = await this.request({ type: 'subscribe', channel, ...(recover ? { recover } : {}) });
    if (reply.type !== 'subscribed') throw new Error(`subscribe failed: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Waits for the next not-yet-consumed frame matching `pred` (frames before it stay consumed). */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = 3000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const f = this.frames[this.cursor++]!;
        if (f.type !== 'ping' && pred(f)) return f;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState >= 2) throw new Error(`no matching frame within ${timeoutMs} ms (readyState ${this.ws.readyState}); got ${JSON.stringify(this.frames.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  messages(): Frame[] {
    return this.frames.filter((f) => f.type === 'message');
  }

  /** Waits until `n` message frames have arrived in total. */
  async waitMessages(n: number, timeoutMs = 3000): Promise<Frame[]> {
    await waitFor(() => this.messages().length >= n, timeoutMs, `${n} message frames`, 5);
    return this.messages();
  }

  close(): void {
    this.ws.close();
  }
}

/** Anything with the server's base URL: a `HeraldServer`, or `{ url }` for one restarted on a known port. */
export type ServerAddress = Pick<HeraldServer, 'url'>;

export async function api(server: ServerAddress, method: string, path: string, body?: unknown, key: string | null = API_KEY): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(key ? { authorization: `Bearer ${key}` } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/**
 * Resolves once the server has taken in its next WebSocket upgrade request: this listener is
 * added after the gateway's, so by then the gateway has accepted, queued or refused it.
 */
export function nextUpgrade(server: HeraldServer): Promise<void> {
  return new Promise((resolve) => server.app.server.once('upgrade', () => resolve()));
}

/** A message frame that `publishMarker` or `untilUserReachable` sent, not one under test. */
export const isMarker = (f: Frame): boolean => f.type === 'message' && (f.message?.eventType === 'marker' || f.message?.eventType === 'ready');

/** The message frames `socket` received, markers left out. */
export const messagesBesideMarkers = (socket: TestSocket): Frame[] => socket.messages().filter((f) => !isMarker(f));

/**
 * Publishes a marker (event type `marker`) to `target` and waits for `socket` to receive it.
 * Messages on one path (one channel, one user, broadcast) reach a socket in publish order, so
 * whatever was published on that path before has arrived by then: how a test asserts that
 * something did not arrive without waiting a fixed time.
 */
export async function publishMarker(server: HeraldServer, socket: TestSocket, target: { channel: string } | { user: string } | { broadcast: true }): Promise<void> {
  const { msgId } = await server.publish({ ...target, eventType: 'marker', payload: null });
  await socket.next((f) => f.type === 'message' && f.message?.msgId === msgId);
}

/**
 * Publishes `ready` user messages until one reaches `socket`: then the user's subscription on
 * the broker, which is made after `connected`, is in place.
 */
export async function untilUserReachable(server: HeraldServer, socket: TestSocket, user: string): Promise<void> {
  let polls = 0;
  await waitFor(
    async () => {
      if (socket.frames.some((f) => f.type === 'message' && f.message?.eventType === 'ready')) return true;
      if (polls++ % 5 === 0) await server.publish({ user, eventType: 'ready', payload: null });
      return false;
    },
    5000,
    `user ${user} to be reachable`,
  );
}

/** Publishes through the HTTP API (event type `test` unless given) and returns the reply; throws unless 200. */
export async function publish(server: ServerAddress, body: Record<string, unknown>): Promise<any> {
  const r = await api(server, 'POST', '/api/v1/publish', { eventType: 'test', ...body });
  if (r.status !== 200) throw new Error(`publish failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

