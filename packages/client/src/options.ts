import { createBackoff, DEFAULT_RECONNECT } from './backoff.js';
import type { BackoffPolicy, ReconnectOptions } from './backoff.js';
import type { AckMode } from './delivery.js';
import { ClientErrorCode, HeraldError } from './errors.js';
import type { OutboxStorage } from './outbox.js';
import { globalWebSocket } from './transport.js';
import type { WebSocketConstructor } from './transport.js';

export const CLIENT_NAME = 'herald-js/0.1.0';

export interface HeraldClientOptions {
  /** The server's WebSocket endpoint, e.g. `ws://localhost:8080/ws`. Required. */
  url: string;
  /** JWT sent in the `connect` frame. Omit for anonymous connections or when `getToken` is given. */
  token?: string;
  /**
   * Returns a fresh token. Called before the first connect when `token` is absent, whenever the
   * token expired (close code 4006 or error `token_expired`, or past `connected.expiresAt`), and
   * `refreshAhead` ms before the connection's token expires: the new token is then sent in a
   * `refresh` frame, so the connection and its subscriptions stay.
   */
  getToken?: () => string | Promise<string>;
  /** With `getToken`: refresh in band this many ms before expiry, at most half the token's remaining life (default 30 000). */
  refreshAhead?: number;
  /** WebSocket implementation; default `globalThis.WebSocket`. In Node 20 pass `WebSocket` from `ws`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect policy, or `false` to never reconnect. Default: exponential 500 ms → 20 s, full jitter. */
  reconnect?: ReconnectOptions | false;
  /** ms allowed from dialing to `connected` (default 10 000). */
  connectTimeout?: number;
  /** Default timeout of `request()` in ms (default 10 000). */
  requestTimeout?: number;
  /** `auto` (default): ack once every handler returned/resolved; `manual`: call `context.ack()`. */
  ackMode?: AckMode;
  /** How many recent msgIds are remembered to drop duplicates (default 1 000; 0 disables). */
  dedupSize?: number;
  /**
   * ms to gather ACKs into one frame (default 250; 0: at the end of the tick). The server waits
   * `delivery.ackTimeoutMs` (10 s) before retransmitting, so a short delay costs nothing and saves
   * the server one inbound frame per message.
   */
  ackDelay?: number;
  outbox?: {
    /** Most unconfirmed publishes kept (default 1 000); beyond it `publish()` rejects `outbox_full`. */
    maxSize?: number;
    /** ms after which an unconfirmed publish is sent again on the same connection (default 5 000). */
    resendInterval?: number;
    /** Keep the outbox across page reloads: `'localStorage'` or any Storage-like object. */
    persist?: 'localStorage' | OutboxStorage | false;
    /** Storage key (default `herald:outbox:<url>`). */
    storageKey?: string;
  };
  /** Browser only: react to online/offline and page visibility (default true where available). */
  browserEvents?: boolean;
  /** Sent as `client` in the `connect` frame (default `herald-js/0.1.0`). */
  clientName?: string;
}

export interface ResolvedOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly getToken: (() => string | Promise<string>) | undefined;
  readonly refreshAhead: number;
  readonly WebSocket: WebSocketConstructor;
  readonly backoff: BackoffPolicy | undefined;
  readonly connectTimeout: number;
  readonly requestTimeout: number;
  readonly ackMode: AckMode;
  readonly dedupSize: number;
  readonly ackDelay: number;
  readonly outboxMaxSize: number;
  readonly resendInterval: number;
  readonly storage: OutboxStorage | undefined;
  readonly storageKey: string;
  readonly browserEvents: boolean;
  readonly clientName: string;
}

const KNOWN = new Set([
  'url', 'token', 'getToken', 'refreshAhead', 'WebSocket', 'reconnect', 'connectTimeout', 'requestTimeout',
  'ackMode', 'dedupSize', 'ackDelay', 'outbox', 'browserEvents', 'clientName',
]);
const KNOWN_OUTBOX = new Set(['maxSize', 'resendInterval', 'persist', 'storageKey']);

function fail(name: string, rule: string, ...value: [unknown?]): never {
  const v = value[0];
  const got = value.length > 0 ? `, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}` : '';
  throw new HeraldError(ClientErrorCode.INVALID_OPTION, `option "${name}" ${rule}${got}`);
}

function int(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) fail(name, `must be an integer >= ${min}`, value);
  return value;
}

function str(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') fail(name, 'must be a non-empty string', value);
  return value;
}

function isStorage(v: unknown): v is OutboxStorage {
  const s = v as OutboxStorage | null;
  return typeof s === 'object' && s !== null && typeof s.getItem === 'function' && typeof s.setItem === 'function' && typeof s.removeItem === 'function';
}

/** Applies defaults and checks every option; throws HeraldError(invalid_option) naming the first bad one. */
export function resolveOptions(input: HeraldClientOptions): ResolvedOptions {
  if (typeof input !== 'object' || input === null) fail('options', 'must be an object');
  for (const key of Object.keys(input)) if (!KNOWN.has(key)) fail(key, 'is not a known option');

  const url = input.url;
  if (typeof url !== 'string' || !/^wss?:\/\/[^/]/i.test(url)) fail('url', 'must be a ws:// or wss:// URL', url);

  const WebSocket = input.WebSocket ?? globalWebSocket();
  if (typeof WebSocket !== 'function') {
    fail('WebSocket', 'must be a WebSocket constructor (no global WebSocket here: in Node pass `WebSocket` from the "ws" package)');
  }
  if (input.getToken !== undefined && typeof input.getToken !== 'function') fail('getToken', 'must be a function', input.getToken);

  let backoff: BackoffPolicy | undefined;
  if (input.reconnect === false) backoff = undefined;
  else backoff = createBackoff(input.reconnect ?? DEFAULT_RECONNECT);

  const ackMode = input.ackMode ?? 'auto';
  if (ackMode !== 'auto' && ackMode !== 'manual') fail('ackMode', 'must be "auto" or "manual"', ackMode);

  const outbox = input.outbox ?? {};
  if (typeof outbox !== 'object' || outbox === null) fail('outbox', 'must be an object', outbox);
  for (const key of Object.keys(outbox)) if (!KNOWN_OUTBOX.has(key)) fail(`outbox.${key}`, 'is not a known option');
  let storage: OutboxStorage | undefined;
  const persist = outbox.persist ?? false;
  if (persist === 'localStorage') {
    let ls: unknown;
    try {
      ls = (globalThis as { localStorage?: unknown }).localStorage;
    } catch {
      ls = undefined; // access can throw when storage is disabled
    }
    if (!isStorage(ls)) fail('outbox.persist', 'is "localStorage" but localStorage is not available here');
    storage = ls;
  } else if (persist !== false) {
    if (!isStorage(persist)) fail('outbox.persist', 'must be false, "localStorage" or an object with getItem/setItem/removeItem');
    storage = persist;
  }

  const browserEvents = input.browserEvents ?? true;
  if (typeof browserEvents !== 'boolean') fail('browserEvents', 'must be a boolean', browserEvents);

  return Object.freeze({
    url,
    token: str(input.token, 'token'),
    getToken: input.getToken,
    refreshAhead: int(input.refreshAhead, 'refreshAhead', 30_000, 0),
    WebSocket,
    backoff,
    connectTimeout: int(input.connectTimeout, 'connectTimeout', 10_000, 1),
    requestTimeout: int(input.requestTimeout, 'requestTimeout', 10_000, 1),
    ackMode,
    dedupSize: int(input.dedupSize, 'dedupSize', 1000, 0),
    ackDelay: int(input.ackDelay, 'ackDelay', 250, 0),
    outboxMaxSize: int(outbox.maxSize, 'outbox.maxSize', 1000, 1),
    resendInterval: int(outbox.resendInterval, 'outbox.resendInterval', 5000, 1),
    storage,
    storageKey: str(outbox.storageKey, 'outbox.storageKey') ?? `herald:outbox:${url}`,
    browserEvents,
    clientName: str(input.clientName, 'clientName') ?? CLIENT_NAME,
  });
}
