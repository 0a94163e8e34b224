import { HeraldError, ServerSdkErrorCode } from './errors.js';

/** The subset of the WHATWG `fetch` the SDK calls (Node 20's global `fetch` fits). */
export type FetchLike = (input: string, init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal }) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export interface RetryOptions {
  /** Tries in all, the first included (default 3; 1 never retries). */
  attempts?: number;
  /** Ceiling of the first backoff in ms (default 100); it doubles per retry. */
  initialDelayMs?: number;
  /**
   * Largest backoff ceiling in ms (default 5 000). A `Retry-After` longer than this is not waited
   * for: the call fails at once with the server's `rate_limited`/`overloaded` error.
   */
  maxDelayMs?: number;
}

export interface HeraldServerClientOptions {
  /** Base URL of a Herald node's HTTP API, e.g. `http://herald.internal:8080`. Required. */
  url: string;
  /** One of the server's `api.keys`. Required. Sent as `Authorization: Bearer`. */
  apiKey: string;
  /** ms one HTTP attempt may take, from sending to the whole answer (default 10 000). */
  timeoutMs?: number;
  /** Retry policy for calls that are safe to repeat, or `false` for a single try. */
  retries?: RetryOptions | false;
  /** `fetch` implementation (default `globalThis.fetch`). */
  fetch?: FetchLike;
}

export interface ResolvedOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly fetch: FetchLike;
}

export const DEFAULTS = { timeoutMs: 10_000, attempts: 3, initialDelayMs: 100, maxDelayMs: 5_000 } as const;

const KNOWN = new Set(['url', 'apiKey', 'timeoutMs', 'retries', 'fetch']);
const KNOWN_RETRIES = new Set(['attempts', 'initialDelayMs', 'maxDelayMs']);

function fail(name: string, rule: string, ...value: [unknown?]): never {
  const v = value[0];
  const got = value.length > 0 ? `, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}` : '';
  throw new HeraldError(ServerSdkErrorCode.INVALID_OPTION, `option "${name}" ${rule}${got}`);
}

function int(value: unknown, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(name, `must be an integer from ${min} to ${max}`, value);
  return value;
}

/** Applies defaults and checks every option; throws HeraldError(invalid_option) naming the first bad one. */
export function resolveOptions(input: HeraldServerClientOptions): ResolvedOptions {
  if (typeof input !== 'object' || input === null) fail('options', 'must be an object');
  for (const key of Object.keys(input)) if (!KNOWN.has(key)) fail(key, 'is not a known option');

  const { url, apiKey } = input;
  if (typeof url !== 'string') fail('url', 'must be an http:// or https:// URL', url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail('url', 'must be an http:// or https:// URL', url);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') fail('url', 'must be an http:// or https:// URL', url);
  if (parsed.search !== '' || parsed.hash !== '') fail('url', 'must not have a query or fragment', url);
  // Never echo the key itself into an error message.
  if (typeof apiKey !== 'string' || apiKey.length < 8 || /\s/.test(apiKey)) fail('apiKey', 'must be a string of at least 8 characters without whitespace');

  const timeoutMs = int(input.timeoutMs, 'timeoutMs', DEFAULTS.timeoutMs, 1, 600_000);

  let attempts: number = DEFAULTS.attempts;
  let initialDelayMs: number = DEFAULTS.initialDelayMs;
  let maxDelayMs: number = DEFAULTS.maxDelayMs;
  const retries = input.retries;
  if (retries === false) attempts = 1;
  else if (retries !== undefined) {
    if (typeof retries !== 'object' || retries === null) fail('retries', 'must be an object or false', retries);
    for (const key of Object.keys(retries)) if (!KNOWN_RETRIES.has(key)) fail(`retries.${key}`, 'is not a known option');
    attempts = int(retries.attempts, 'retries.attempts', DEFAULTS.attempts, 1, 100);
    initialDelayMs = int(retries.initialDelayMs, 'retries.initialDelayMs', DEFAULTS.initialDelayMs, 0, 600_000);
    maxDelayMs = int(retries.maxDelayMs, 'retries.maxDelayMs', Math.max(DEFAULTS.maxDelayMs, initialDelayMs), 0, 600_000);
    if (maxDelayMs < initialDelayMs) fail('retries.maxDelayMs', `must be >= retries.initialDelayMs (${initialDelayMs})`, maxDelayMs);
  }

  const fetchImpl = input.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (typeof fetchImpl !== 'function') fail('fetch', 'must be a function (no global fetch here)', fetchImpl);

  return Object.freeze({
    baseUrl: url.replace(/\/+$/, ''),
    apiKey,
    timeoutMs,
    attempts,
    initialDelayMs,
    maxDelayMs,
    fetch: fetchImpl,
  });
}
