import { ErrorCode } from '@herald/protocol';
import type { RequestFrame, ResponseFrame } from '@herald/protocol';
import type { Link } from './connection.js';
import { ClientErrorCode, HeraldError, toHeraldError } from './errors.js';
import type { Disposer } from './events.js';
import { newId } from './ids.js';

export interface RequestOptions {
  /** ms until the request rejects with `request_timeout` (default: the client's `requestTimeout`). */
  timeout?: number;
  /**
   * Safe to run twice: if the connection drops before the response, send it again after
   * reconnecting instead of rejecting with `connection_lost`.
   */
  idempotent?: boolean;
}

export interface IncomingRequest {
  method: string;
  correlationId: string;
}

/** Answers a server request; return (or resolve) the response data, or throw a HeraldError. */
export type RequestHandler = (data: unknown, request: IncomingRequest) => unknown;

interface Pending {
  frame: RequestFrame;
  idempotent: boolean;
  /** The link it was last sent on; undefined while waiting for a connection. */
  sentOn: Link | undefined;
  timer: ReturnType<typeof setTimeout>;
  resolve: (data: unknown) => void;
  reject: (err: HeraldError) => void;
}

/**
 * Request/response in both directions, matched by correlationId. Outgoing requests made while
 * disconnected wait for the connection (within their timeout).
 */
export class Rpc {
  readonly #pending = new Map<string, Pending>();
  readonly #handlers = new Map<string, RequestHandler>();
  readonly #link: () => Link | undefined;
  readonly #defaultTimeout: number;
  readonly #onError: (err: HeraldError) => void;

  constructor(opts: { link: () => Link | undefined; defaultTimeout: number; onError: (err: HeraldError) => void }) {
    this.#link = opts.link;
    this.#defaultTimeout = opts.defaultTimeout;
    this.#onError = opts.onError;
  }

  request<R = unknown>(method: string, data?: unknown, options: RequestOptions = {}): Promise<R> {
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(new HeraldError(ErrorCode.BAD_REQUEST, 'method must be a non-empty string'));
    }
    const timeout = options.timeout ?? this.#defaultTimeout;
    if (typeof timeout !== 'number' || !(timeout > 0)) {
      return Promise.reject(new HeraldError(ErrorCode.BAD_REQUEST, 'timeout must be a positive number of ms'));
    }
    return new Promise<R>((resolve, reject) => {
      const correlationId = newId();
      const frame: RequestFrame = { type: 'request', correlationId, method };
      if (data !== undefined) frame.data = data;
      const pending: Pending = {
        frame,
        idempotent: options.idempotent === true,
        sentOn: undefined,
        timer: setTimeout(() => {
          this.#pending.delete(correlationId);
          reject(new HeraldError(ErrorCode.REQUEST_TIMEOUT, `request "${method}" got no response within ${timeout} ms`));
        }, timeout),
        resolve: resolve as (data: unknown) => void,
        reject,
      };
      this.#pending.set(correlationId, pending);
      const link = this.#link();
      if (link?.isOpen) this.#send(pending, link);
    });
  }

  /** Registers the handler of a method the server may call; one handler per method. */
  onRequest(method: string, handler: RequestHandler): Disposer {
    if (typeof method !== 'string' || method === '') throw new TypeError('onRequest: method must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError('onRequest: handler must be a function');
    if (this.#handlers.has(method)) throw new TypeError(`onRequest: method "${method}" already has a handler`);
    this.#handlers.set(method, handler);
    return () => {
      if (this.#handlers.get(method) === handler) this.#handlers.delete(method);
    };
  }

  /** A connection is up: send the requests that were waiting for one. */
  linkUp(link: Link): void {
    for (const p of this.#pending.values()) if (!p.sentOn) this.#send(p, link);
  }

  /** The connection dropped: fail what was sent on it, unless it may be retried. */
  linkDown(): void {
    for (const [id, p] of this.#pending) {
      if (!p.sentOn) continue;
      if (p.idempotent) {
        p.sentOn = undefined;
        continue;
      }
      this.#settle(id, undefined, new HeraldError(ClientErrorCode.CONNECTION_LOST, `connection lost before the response to "${p.frame.method}"`));
    }
  }

  close(err: HeraldError): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, undefined, err);
    this.#handlers.clear();
  }

  handleResponse(frame: ResponseFrame): void {
    if (!this.#pending.has(frame.correlationId)) return; // timed out or retried: ignore
    this.#settle(frame.correlationId, frame.data, frame.error && HeraldError.fromBody(frame.error));
  }

  /** Runs the handler of a server request and answers on the link it came in on. */
  handleRequest(frame: RequestFrame, link: Link): void {
    const reply = (body: Pick<ResponseFrame, 'data' | 'error'>): void => {
      link.send({ type: 'response', correlationId: frame.correlationId, ...body });
    };
    const handler = this.#handlers.get(frame.method);
    if (!handler) {
      reply({ error: { code: ErrorCode.UNKNOWN_METHOD, message: `no handler for method "${frame.method}"`, temporary: false } });
      return;
    }
    new Promise((resolve) => resolve(handler(frame.data, { method: frame.method, correlationId: frame.correlationId }))).then(
      (data) => reply(data === undefined ? {} : { data }),
      (err: unknown) => {
        const error = toHeraldError(err, ErrorCode.INTERNAL);
        if (!(err instanceof HeraldError)) this.#onError(error);
        // Details stay local: they may hold the application's exception, not meant for the server.
        reply({ error: { code: error.code, message: error.message, temporary: error.temporary } });
      },
    );
  }

  #send(p: Pending, link: Link): void {
    p.sentOn = link.send(p.frame) ? link : undefined;
  }

  #settle(id: string, data: unknown, error: HeraldError | undefined): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(data);
  }
}
