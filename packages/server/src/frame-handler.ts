/**
 * The read path: one client frame at a time, validated against its schema, then dispatched.
 * Every failure becomes a documented error frame or close code; nothing a client sends can
 * throw past this class.
 */
import { randomUUID } from 'node:crypto';
import { CloseCode, ErrorCode } from '@herald/protocol';
import type {
  ClientFrame,
  ConnectFrame,
  ConnectedFrame,
  ErrorBody,
  PublishFrame,
  RequestFrame,
  ServerFrame,
  SubscribeFrame,
  UnsubscribeFrame,
} from '@herald/protocol';
import { PROTOCOL_VERSION } from '@herald/protocol';
import { isValidChannel } from './channels.js';
import { HeraldError } from './errors.js';
import type { HistoryResult } from './engine/broker.js';
import { subscribedReply } from './message-frame.js';
import type { HeraldNode } from './node.js';
import { rateLimitedError } from './rate-limit/rate-limits.js';
import { Schemas } from './schemas.js';
import type { PendingResolver, Session } from './session.js';
import { encodeTextFrame } from './transport/ws-frame.js';

const MAX_EARLY_FRAMES = 64;
const ACK_PREFIX = '{"type":"ack","msgIds":[';
const MSG_ID = /^[^"\\]{1,128}$/;

/**
 * The msgIds of an ack frame in the SDK's exact shape, or undefined when the frame is anything
 * else (it then goes through the schema like every frame, with the same result for valid input).
 * Only an array of plain strings is accepted here — depth 2 by construction — so a deeply nested
 * ack falls through to the full path, where `limits.maxJsonDepth` refuses it before parsing.
 */
function parseAckIds(text: string): string[] | undefined {
  if (!text.endsWith(']}') || text.length > 140_000) return undefined;
  let ids: unknown;
  try {
    ids = JSON.parse(text.slice(ACK_PREFIX.length - 1, -1));
  } catch {
    return undefined;
  }
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > 1000) return undefined;
  for (const id of ids) if (typeof id !== 'string' || !MSG_ID.test(id)) return undefined;
  return ids as string[];
}

/** Handles a client's `request`; resolves with `data` for the response or throws a HeraldError. */
export type RequestHandler = (session: Session, data: unknown) => Promise<unknown>;

export class FrameHandler {
  private readonly upgradeTokens = new WeakMap<Session, string>();
  private readonly pongFrame = encodeTextFrame('{"type":"pong"}');

  constructor(private readonly node: HeraldNode) {}

  setUpgradeToken(session: Session, token: string): void {
    this.upgradeTokens.set(session, token);
  }

  /**
   * Handles one text frame. Whatever goes wrong is contained here: a client's mistake becomes an
   * error frame or close code, a fault of ours closes this connection (4004) and no other.
   */
  handle(session: Session, text: string): void {
    try {
      this.handleFrame(session, text);
    } catch (err) {
      this.fail(session, err);
    }
  }

  private handleFrame(session: Session, text: string): void {
    // A client may pipeline frames right behind `connect`; keep them (bounded) until the token
    // has been verified instead of refusing them.
    if (session.early) {
      if (session.early.length >= MAX_EARLY_FRAMES) session.close(CloseCode.PROTOCOL_VIOLATION, 'too many frames before connected');
      else session.early.push(text);
      return;
    }
    // ACKs are the most frequent client frame under at-least-once load; the exact shape the SDK
    // sends skips the generic parse-and-validate path. Anything else takes the full path.
    if (text.startsWith(ACK_PREFIX) && session.state === 'connected') {
      const msgIds = parseAckIds(text);
      if (msgIds) {
        this.ack(session, msgIds);
        return;
      }
    }
    let frame: ClientFrame;
    try {
      frame = this.node.schemas.parseClientFrame(text);
    } catch (err) {
      this.reject(session, err, Schemas.frameId(text));
      return;
    }
    if (this.rateLimited(session, frame)) return;
    this.dispatch(session, frame);
  }

  private dispatch(session: Session, frame: ClientFrame): void {
    if (session.state === 'connecting' && frame.type !== 'connect') {
      this.sendError(session, new HeraldError(ErrorCode.NOT_CONNECTED), 'id' in frame ? frame.id : undefined);
      session.close(CloseCode.PROTOCOL_VIOLATION, 'send connect first');
      return;
    }
    switch (frame.type) {
      case 'connect':
        this.run(session, this.connect(session, frame));
        return;
      case 'subscribe':
        this.run(session, this.guard(session, frame.id, this.subscribe(session, frame)));
        return;
      case 'unsubscribe':
        this.unsubscribe(session, frame);
        return;
      case 'publish':
        this.run(session, this.guard(session, frame.id, this.publish(session, frame)));
        return;
      case 'request':
        this.run(session, this.request(session, frame));
        return;
      case 'response':
        this.response(session, frame.correlationId, frame);
        return;
      case 'ack':
        this.ack(session, frame.msgIds);
        return;
      case 'ping':
        session.enqueue(this.pongFrame);
        return;
      case 'pong':
        return;
    }
  }

  // ---- frames --------------------------------------------------------------------------------

  /** Never answered: what an ACK may settle, and that the rest is ignored unsaid, is the delivery module's rule. */
  private ack(session: Session, msgIds: string[]): void {
    this.node.delivery.ack(session, msgIds);
  }

  private async connect(session: Session, frame: ConnectFrame): Promise<void> {
    if (session.state !== 'connecting' || session.identity) {
      this.sendError(session, new HeraldError(ErrorCode.ALREADY_CONNECTED), frame.id);
      return;
    }
    const node = this.node;
    const token = frame.token ?? this.upgradeTokens.get(session);
    // Frames arriving while the token is verified wait in `early`, a second connect included.
    session.early = [];
    try {
      if (token) session.identity = await node.verifier.verify(token);
      else if (node.config.auth.anonymous) session.identity = node.anonymousIdentity();
      else throw new HeraldError(ErrorCode.UNAUTHORIZED, 'a token is required: send it in the connect frame');
    } catch (err) {
      const e = err instanceof HeraldError ? err : new HeraldError(ErrorCode.UNAUTHORIZED);
      session.identity = undefined;
      session.early = undefined;
      if (!session.open) return;
      this.sendError(session, e, frame.id);
      session.close(e.code === ErrorCode.TOKEN_EXPIRED ? CloseCode.TOKEN_EXPIRED : CloseCode.UNAUTHORIZED, e.code);
      return;
    }
    if (!session.open) return;
    const identity = session.identity;
    const sameUser = identity.user ? (node.hub.userSessions(identity.user)?.size ?? 0) : 0;
    if (identity.user && sameUser >= node.config.limits.maxConnectionsPerUser) {
      session.early = undefined;
      node.metrics.rejectedConnections.inc({ reason: 'per_user' });
      this.sendError(session, new HeraldError(ErrorCode.TOO_MANY_CONNECTIONS, `user already has ${sameUser} connections (limits.maxConnectionsPerUser)`), frame.id);
      session.close(CloseCode.USER_CONNECTION_LIMIT, 'too many connections for this user');
      return;
    }
    // Pending sockets do not count toward maxConnections, so several may pass the upgrade for the
    // last slots; the cap is enforced here, where a connection becomes authenticated.
    if (!node.hub.hasRoomFor(session, node.config.limits.maxConnections)) {
      session.early = undefined;
      node.metrics.rejectedConnections.inc({ reason: 'overload' });
      this.sendError(session, new HeraldError(ErrorCode.OVERLOADED, `at capacity (${node.config.limits.maxConnections} connections, limits.maxConnections)`), frame.id);
      session.close(CloseCode.TRY_AGAIN_LATER, 'at capacity, retry later');
      return;
    }
    session.user = identity.user;
    session.tags = identity.tags;
    session.state = 'connected';
    this.upgradeTokens.delete(session);
    if (!(await node.activate(session))) return;
    const reply: ConnectedFrame = {
      type: 'connected',
      id: frame.id,
      connectionId: session.id,
      user: session.user,
      pingInterval: node.config.heartbeat.intervalMs,
      pongTimeout: node.config.heartbeat.pongTimeoutMs,
      protocol: PROTOCOL_VERSION,
      node: node.name,
      ...(identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {}),
    };
    this.send(session, reply);
    node.afterConnected(session);
    const early = session.early;
    session.early = undefined;
    for (const text of early) if (session.open) this.handle(session, text);
  }

  private async subscribe(session: Session, frame: SubscribeFrame): Promise<void> {
    const { channel } = frame;
    const node = this.node;
    if (!isValidChannel(channel)) throw new HeraldError(ErrorCode.INVALID_CHANNEL, `invalid channel name ${JSON.stringify(channel)}`);
    if (!session.identity!.subscribe.matches(channel) && !node.publicChannels.matches(channel)) {
      throw new HeraldError(ErrorCode.PERMISSION_DENIED, `not allowed to subscribe to ${channel}`);
    }
    if (session.subs.has(channel)) throw new HeraldError(ErrorCode.ALREADY_SUBSCRIBED, `already subscribed to ${channel}`);
    if (session.subs.size >= node.config.limits.maxSubscriptionsPerConnection) {
      throw new HeraldError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `at most ${node.config.limits.maxSubscriptionsPerConnection} subscriptions per connection`);
    }
    // Join the fan-out first, buffering live messages, then read the stream position: whatever
    // is published in between is either in the history read or in the buffer, never neither; the
    // seam (engine/recovery-seam.ts) then makes it never both.
    const first = node.hub.subscribe(session, channel, true);
    const buffer = session.subs.get(channel)!;
    let history: HistoryResult;
    try {
      if (first) await node.broker.subscribe({ kind: 'channel', channel });
      const limit = frame.recover ? node.config.channels.maxRecover : 0;
      history = await node.broker.history(channel, { limit, config: node.historyConfig(channel), ...(frame.recover ? { since: frame.recover } : {}) });
    } catch (err) {
      if (session.subs.get(channel) === buffer && node.hub.unsubscribe(session, channel)) node.unsubscribeBroker({ kind: 'channel', channel });
      if (err instanceof HeraldError) throw err;
      // The engine's trouble, not the client's: a temporary refusal it may retry.
      node.log.error({ err, connId: session.id, channel }, 'subscribe failed in the engine');
      throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE);
    }
    if (!session.open || session.subs.get(channel) !== buffer) return;
    const reply = subscribedReply(frame, history, session.replayRoomBytes);
    if (!session.enqueue(reply, frame.recover !== undefined)) return;
    node.hub.recovered(session, channel, history.position);
    if (!session.open) return;
    node.presence.add(node.connectionInfo(session)).catch(() => undefined);
  }

  private unsubscribe(session: Session, frame: UnsubscribeFrame): void {
    if (!session.subs.has(frame.channel)) {
      this.sendError(session, new HeraldError(ErrorCode.NOT_SUBSCRIBED, `not subscribed to ${frame.channel}`), frame.id);
      return;
    }
    if (this.node.hub.unsubscribe(session, frame.channel)) this.node.unsubscribeBroker({ kind: 'channel', channel: frame.channel });
    this.send(session, { type: 'unsubscribed', id: frame.id, channel: frame.channel });
  }

  private async publish(session: Session, frame: PublishFrame): Promise<void> {
    const node = this.node;
    if (!isValidChannel(frame.channel)) throw new HeraldError(ErrorCode.INVALID_CHANNEL, `invalid channel name ${JSON.stringify(frame.channel)}`);
    if (!session.identity!.publish.matches(frame.channel) && !node.clientPublishChannels.matches(frame.channel)) {
      throw new HeraldError(ErrorCode.PERMISSION_DENIED, `not allowed to publish to ${frame.channel}`);
    }
    // The client's own idempotency scope: its msgIds never meet the API's or another user's.
    const result = await node.publish(
      {
        channel: frame.channel,
        eventType: frame.eventType,
        payload: frame.payload,
        source: `client:${session.user || 'anonymous'}`,
        ...(frame.msgId ? { msgId: frame.msgId } : {}),
        ...(frame.version ? { version: frame.version } : {}),
      },
      node.clientScope(session),
    );
    this.send(session, {
      type: 'published',
      id: frame.id,
      msgId: result.msgId,
      ...(result.position ? { position: result.position } : {}),
      ...(result.duplicate ? { duplicate: true } : {}),
    });
  }

  private async request(session: Session, frame: RequestFrame): Promise<void> {
    const { correlationId } = frame;
    const handler = this.node.requestHandlers.get(frame.method);
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

  private response(session: Session, correlationId: string, frame: { data?: unknown; error?: ErrorBody }): void {
    const resolve: PendingResolver | undefined = session.pending?.get(correlationId);
    if (!resolve) return; // Late or unknown responses are dropped: the requester has moved on.
    session.pending!.delete(correlationId);
    resolve(frame);
  }

  // ---- server → client requests -------------------------------------------------------------

  requestClient(session: Session, method: string, data: unknown, timeoutMs: number): Promise<{ data?: unknown; error?: unknown }> {
    const pending = (session.pending ??= new Map<string, PendingResolver>());
    if (pending.size >= this.node.config.rpc.maxPendingPerConnection) {
      return Promise.reject(new HeraldError(ErrorCode.OVERLOADED, 'too many requests pending on this connection (rpc.maxPendingPerConnection)'));
    }
    const correlationId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(correlationId);
        reject(new HeraldError(ErrorCode.REQUEST_TIMEOUT, `the client did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(correlationId, (frame) => {
        clearTimeout(timer);
        if (frame.closed) reject(new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, 'the connection closed before answering'));
        else resolve(frame);
      });
      this.send(session, { type: 'request', correlationId, method, ...(data !== undefined ? { data } : {}) });
    });
  }

  failPending(session: Session): void {
    if (!session.pending) return;
    for (const resolve of session.pending.values()) resolve({ closed: true });
    session.pending.clear();
  }

  // ---- helpers -------------------------------------------------------------------------------

  /**
   * Runs the asynchronous part of a frame's handling. Every promise the read path starts ends
   * here, so none is left unhandled: a rejection is a fault of ours and ends this connection only.
   */
  private run(session: Session, work: Promise<void>): void {
    work.catch((err: unknown) => this.fail(session, err));
  }

  /** Refusals (HeraldError) become the frame's error reply; anything else is a fault, for `run`. */
  private async guard(session: Session, id: number, work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (err) {
      if (!(err instanceof HeraldError)) throw err;
      if (session.open) this.sendError(session, err, id);
    }
  }

  /**
   * Refuses a frame past one of its rate limits (`rate_limited`, with `retryAfterMs`) and closes
   * a connection that keeps ignoring them (4506). A `request` is answered with a `response`, as
   * its other failures are, since its sender waits on the correlationId.
   */
  private rateLimited(session: Session, frame: ClientFrame): boolean {
    // Frames read after the connection was closed (e.g. the rest of a flood that got it closed
    // with 4506) are neither charged nor acted on.
    if (!session.open) return true;
    const refusal = this.node.rateLimits.frame(session, frame);
    if (!refusal) return false;
    const err = rateLimitedError(refusal);
    if (frame.type === 'request') this.send(session, { type: 'response', correlationId: frame.correlationId, error: err.toBody() });
    else this.sendError(session, err, 'id' in frame ? frame.id : undefined);
    if (refusal.abusive) {
      this.node.log.warn({ connId: session.id, user: session.user, limit: refusal.limit }, 'closing a connection that ignores its rate limits');
      session.close(CloseCode.RATE_LIMITED, 'rate limits ignored');
    }
    return true;
  }

  /**
   * A fault of ours while handling this connection's frame. Its state (subscriptions, deliveries
   * in flight) may now be inconsistent, so it is closed with 4004: the client reconnects and
   * recovers, and no other connection is touched. Logged once, at error level.
   */
  private fail(session: Session, err: unknown): void {
    if (!session.open) {
      this.node.log.debug({ err, connId: session.id }, 'frame handling failed after the connection closed');
      return;
    }
    this.node.log.error({ err, connId: session.id, user: session.user }, 'frame handling failed; closing the connection with 4004');
    session.close(CloseCode.SERVER_ERROR, 'internal error');
  }

  /**
   * A frame the client got wrong. Logged at debug without a stack (the client caused it, the
   * server is fine). The count is never reset, so valid frames in between do not earn an abuser
   * more invalid ones: past `limits.maxInvalidFrames` the connection is closed.
   */
  private reject(session: Session, err: unknown, id: number | undefined): void {
    const e = err instanceof HeraldError ? err : new HeraldError(ErrorCode.INVALID_FRAME);
    this.node.metrics.invalidFrames.inc({ code: e.code });
    this.node.log.debug({ connId: session.id, code: e.code, reason: e.message }, 'invalid frame');
    this.sendError(session, e, id);
    if (++session.invalidFrames > this.node.config.limits.maxInvalidFrames) {
      this.node.log.warn({ connId: session.id, user: session.user, invalidFrames: session.invalidFrames }, 'closing a connection that sent too many invalid frames');
      session.close(CloseCode.TOO_MANY_ERRORS, 'too many invalid frames');
    }
  }

  private errorBody(err: unknown, session?: Session, method?: string): ErrorBody {
    if (err instanceof HeraldError) return err.toBody();
    this.node.log.error({ err, connId: session?.id, method }, 'request handler failed');
    return new HeraldError(ErrorCode.INTERNAL).toBody();
  }

  sendError(session: Session, err: unknown, id: number | undefined): void {
    this.send(session, { type: 'error', ...(id !== undefined ? { id } : {}), error: this.errorBody(err, session) });
  }

  send(session: Session, frame: ServerFrame): void {
    session.enqueue(encodeFrame(frame));
  }
}

function encodeFrame(frame: ServerFrame): Buffer {
  return encodeTextFrame(JSON.stringify(frame));
}
