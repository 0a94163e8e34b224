/**
 * One API call: the HTTP request, its deadline, the mapping of every answer to a value or a
 * HeraldError, and the retry loop. The retry rules live here and nowhere else:
 *
 * - `idempotent` calls (publishes, whose msgId the SDK fixes before the first try, reads, and
 *   user disconnects) are repeated after a connection failure, an attempt timeout, any 5xx and
 *   429. Repeating them cannot do anything twice.
 * - `once` calls (a request to a client, a connection disconnect) are repeated only when the
 *   server said it did not act: 429 (`rate_limited`: nothing is read or done) and 503
 *   (`overloaded`, `shutting_down`, `broker_unavailable`). After a timeout or a cut connection the
 *   client's method may have run, so the error is returned instead.
 * - Other 4xx answers are never repeated: the same request would be refused again.
 *
 * A server's wait hint (`details.retryAfterMs`, else `Retry-After`) replaces the backoff for that
 * retry; a hint longer than `retries.maxDelayMs` ends the call with the server's error instead of
 * blocking the caller past the bound it configured.
 */
import { ErrorCode } from '@herald/protocol';
import { HeraldError, isErrorBody, ServerSdkErrorCode } from './errors.js';
import type { ResolvedOptions } from './options.js';

export type RetryMode = 'idempotent' | 'once';

export interface CallSpec {
  method: 'GET' | 'POST';
  /** Path below the base URL, already encoded, e.g. `/api/v1/publish`. */
  path: string;
  body?: unknown;
  retry: RetryMode;
  /** Overrides `timeoutMs` for this call (a client request waits for the client too). */
  timeoutMs?: number;
}

export interface CallResult<T> {
  body: T;
  /** Tries it took, 1 when the first succeeded. */
  attempts: number;
}

export const USER_AGENT = 'herald-server-sdk/0.1.0';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class HttpCaller {
  constructor(
    private readonly options: ResolvedOptions,
    /** Source of jitter; tests may pin it. */
    private readonly random: () => number = Math.random,
  ) {}

  async call<T>(spec: CallSpec): Promise<CallResult<T>> {
    const { attempts } = this.options;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(spec);
      if (!(outcome instanceof Failure)) return { body: outcome as T, attempts: attempt };
      const { error, retryAfterMs } = outcome;
      error.attempts = attempt;
      if (attempt >= attempts || !retryable(spec.retry, error)) throw error;
      let wait: number;
      if (retryAfterMs !== undefined) {
        if (retryAfterMs > this.options.maxDelayMs) throw error;
        wait = retryAfterMs;
      } else {
        const ceiling = Math.min(this.options.maxDelayMs, this.options.initialDelayMs * 2 ** (attempt - 1));
        wait = Math.floor(this.random() * ceiling);
      }
      await sleep(wait);
    }
  }

  private async attempt(spec: CallSpec): Promise<unknown> {
    const timeoutMs = spec.timeoutMs ?? this.options.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    let status: number;
    let text: string;
    let retryAfterHeader: string | null;
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${this.options.apiKey}`, accept: 'application/json', 'user-agent': USER_AGENT };
      let body: string | undefined;
      if (spec.body !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(spec.body);
      }
      const res = await this.options.fetch(this.options.baseUrl + spec.path, { method: spec.method, headers, ...(body !== undefined ? { body } : {}), signal: controller.signal });
      status = res.status;
      retryAfterHeader = res.headers.get('retry-after');
      text = await res.text();
    } catch (err) {
      if (timedOut) {
        return new Failure(new HeraldError(ErrorCode.REQUEST_TIMEOUT, `${spec.method} ${spec.path}: no complete answer within ${timeoutMs} ms`, { temporary: true, details: { timeoutMs } }));
      }
      const cause = describeCause(err);
      return new Failure(new HeraldError(ServerSdkErrorCode.CONNECTION_FAILED, `${spec.method} ${spec.path}: ${cause}`, { temporary: true, details: { cause } }));
    } finally {
      clearTimeout(timer);
    }
    return interpret(spec, status, text, retryAfterHeader);
  }
}

/** A failed attempt: the error, and how long the server asked us to wait, if it did. */
class Failure {
  constructor(
    readonly error: HeraldError,
    readonly retryAfterMs?: number,
  ) {}
}

function interpret(spec: CallSpec, status: number, text: string, retryAfterHeader: string | null): unknown {
  let parsed: unknown;
  let json = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    json = false;
  }
  if (status >= 200 && status < 300) {
    if (!json) return new Failure(new HeraldError(ServerSdkErrorCode.UNEXPECTED_RESPONSE, `${spec.method} ${spec.path}: ${status} with a body that is not JSON`, { status, details: { status, body: text.slice(0, 200) } }));
    return parsed;
  }
  const body = json ? (parsed as { error?: unknown } | null)?.error : undefined;
  const error = isErrorBody(body)
    ? HeraldError.fromBody(body, 'server', status)
    : new HeraldError(ServerSdkErrorCode.UNEXPECTED_RESPONSE, `${spec.method} ${spec.path}: HTTP ${status} without a Herald error body`, {
        temporary: status >= 500 || status === 429,
        status,
        details: { status, body: text.slice(0, 200) },
      });
  return new Failure(error, status === 429 || status === 503 ? retryAfter(error, retryAfterHeader) : undefined);
}

function retryable(mode: RetryMode, error: HeraldError): boolean {
  const status = error.httpStatus;
  if (status === 429 || status === 503) return true;
  if (mode === 'once') return false;
  if (status === undefined) return error.code === ServerSdkErrorCode.CONNECTION_FAILED || error.code === ErrorCode.REQUEST_TIMEOUT;
  return status >= 500;
}

/** The server's wait hint in ms: its `details.retryAfterMs`, else the `Retry-After` header. */
export function retryAfter(error: HeraldError, header: string | null, now = Date.now()): number | undefined {
  const hinted = (error.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  if (typeof hinted === 'number' && Number.isFinite(hinted) && hinted >= 0) return Math.ceil(hinted);
  if (header === null) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

function describeCause(err: unknown): string {
  // undici puts the socket error (ECONNREFUSED, ECONNRESET, ...) in `cause`.
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === 'string') return `${cause.code}${typeof cause.message === 'string' ? ` (${cause.message})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}
