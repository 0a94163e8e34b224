/**
 * Requests in both directions and the handler map. A client's `request` is answered with exactly
 * one `response` (the handler's data, or an error: unknown method, a refusal, a fault of the
 * handler); a server→client request waits for the client's `response` by correlationId, at most
 * `rpc.maxPendingPerConnection` at a time per connection, and is settled by the response, its
 * timeout or the connection's end — whichever comes first, once.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode } from '@herald/protocol';
import type { ErrorBody, RequestFrame, ServerFrame } from '@herald/protocol';
import type { FastifyBaseLogger } from 'fastify';
import { HeraldError } from './errors.js';
import type { Session } from './session.js';
import { encodeTextFrame } from './transport/ws-frame.js';

/** Handles a client's `request`; resolves with `data` for the response or throws a HeraldError. */
export type RequestHandler = (session: Session, data: unknown) => Promise<unknown>;

/** What the read path needs of RPC. */
export interface RpcOps {
  /** Answers a client's request (never throws: every outcome is a `response`). */
  serve(session: Session, frame: RequestFrame): Promise<void>;
  /** A client's response to a server→client request; late or unknown ones are dropped. */
  response(session: Session, correlationId: string, frame: { data?: unknown; error?: ErrorBody }): void;
}

export interface RpcOptions {
  log: FastifyBaseLogger;
  maxPendingPerConnection: number;
  /** A connected session by id on this node, if any. */
  session(connectionId: string): Session | undefined;
}

export class Rpc implements RpcOps {
  private readonly handlers = new Map<string, RequestHandler>();
  private fallback: ((session: Session, method: string, data: unknown) => Promise<unknown>) | undefined;

  constructor(private readonly o: RpcOptions) {}

  /** Registers (or replaces) the handler of `method`. */
  handle(method: string, handler: RequestHandler): void {
    this.handlers.set(method, handler);
  }

  /** Handles every method without a handler of its own (the rpc proxy hook) instead of `unknown_method`. */
  handleOthers(handler: (session: Session, method: string, data: unknown) => Promise<unknown>): void {
    this.fallback = handler;
  }

  async serve(session: Session, frame: RequestFrame): Promise<void> {
    const { correlationId } = frame;
    const fallback = this.fallback;
    const handler = this.handlers.get(frame.method) ?? (fallback && ((s: Session, data: unknown) => fallback(s, frame.method, data)));
    let reply: Buffer;
    if (!handler) {
      reply = encodeFrame({ type: 'response', correlationId, error: new HeraldError(ErrorCode.UNKNOWN_METHOD, `no handler for method ${JSON.stringify(frame.method)}`).toBody() });
    } else {
      try {
        // Encoded here, so a result that cannot be serialized is the handler's failure too.
        reply = encodeFrame({ type: 'response', correlationId, data: await handler(session, frame.data) });
      } catch (err) {
        reply = encodeFrame({ type: 'response', correlationId, error: this.errorBody(err, session, frame.method) });
      }
    }
    // A reply counts against the connection's byte budget like any frame (enqueue enforces it).
    if (session.open) session.enqueue(reply);
  }

  response(session: Session, correlationId: string, frame: { data?: unknown; error?: ErrorBody }): void {
    session.takeResponder(correlationId)?.(frame);
  }

  /** Sends a request to one connection of this node and resolves with its response frame. */
  requestClient(connectionId: string, method: string, data: unknown, timeoutMs: number): Promise<{ data?: unknown; error?: unknown }> {
    const session = this.o.session(connectionId);
    if (!session || session.state !== 'connected') return Promise.reject(new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `no connection ${connectionId} on this node`));
    if (session.pendingRequests >= this.o.maxPendingPerConnection) {
      return Promise.reject(new HeraldError(ErrorCode.OVERLOADED, 'too many requests pending on this connection (rpc.maxPendingPerConnection)'));
    }
    const correlationId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        session.takeResponder(correlationId);
        reject(new HeraldError(ErrorCode.REQUEST_TIMEOUT, `the client did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      session.awaitResponse(correlationId, (frame) => {
        clearTimeout(timer);
        if (frame.closed) reject(new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, 'the connection closed before answering'));
        else resolve(frame);
      });
      session.enqueue(encodeFrame({ type: 'request', correlationId, method, ...(data !== undefined ? { data } : {}) }));
    });
  }

  /** The connection ended: its waiting requests fail. */
  connectionClosed(session: Session): void {
    session.failPendingRequests();
  }

  private errorBody(err: unknown, session: Session, method: string): ErrorBody {
    if (err instanceof HeraldError) return err.toBody();
    this.o.log.error({ err, connId: session.id, method }, 'request handler failed');
    return new HeraldError(ErrorCode.INTERNAL).toBody();
  }
}

export function encodeFrame(frame: ServerFrame): Buffer {
  return encodeTextFrame(JSON.stringify(frame));
}
