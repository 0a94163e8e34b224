/**
 * The read path: one client frame at a time, validated against its schema, then dispatched.
 * Every failure becomes a documented error frame or close code; nothing a client sends can
 * throw past this class.
 */
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { ClientFrame, ConnectFrame, ConnectedFrame, ErrorBody, PublishFrame, ServerFrame, UnsubscribeFrame } from '@herald/protocol';
import type { FastifyBaseLogger } from 'fastify';
import { PROTOCOL_VERSION } from '@herald/protocol';
import type { Identity } from './auth.js';
import type { HeraldConfig } from './config.js';
import { HeraldError } from './errors.js';
import type { Hub } from './hub.js';
import type { Metrics } from './metrics.js';
import type { PublishOps } from './publishing.js';
import { connectCloseCode, type Identify } from './proxy/identify.js';
import type { PublishGate } from './proxy/publish-gate.js';
import type { TokenRefresh } from './token-refresh.js';
import { rateLimitedError, type RateLimits } from './rate-limit/rate-limits.js';
import { encodeFrame, type RpcOps } from './rpc.js';
import { Schemas } from './schemas.js';
import type { Session } from './session.js';
import type { SubscriptionOps } from './subscriptions.js';
import type { PresenceQueries } from './presence-tracker.js';
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

/** The few operations the read path uses, each from the part that owns it. */
export interface ReadPathOptions {
  nodeName: string;
  config: Readonly<HeraldConfig>;
  log: FastifyBaseLogger;
  metrics: Pick<Metrics, 'invalidFrames' | 'rejectedConnections'>;
  schemas: Schemas;
  rateLimits: Pick<RateLimits, 'frame'>;
  /** Admission counts for `connect`. */
  admission: Pick<Hub, 'userSessions' | 'hasRoomFor'>;
  subscriptions: SubscriptionOps;
  publishing: PublishOps;
  rpc: RpcOps;
  acks: { ack(session: Session, msgIds: string[]): void };
  /** Who a connecting client is (token, connect hook or anonymous); see proxy/identify.ts. */
  identify: Identify;
  /** May this client publish this frame, and with which payload (proxy/publish-gate.ts). */
  publishGate: PublishGate;
  /** The `refresh` frame (token-refresh.ts). */
  refresh: Pick<TokenRefresh, 'inBand'>;
  /** The `presence` and `presence_stats` frames (presence-tracker.ts). */
  presence: Pick<PresenceQueries, 'answer'>;
  /**
   * `connect` succeeded: `activate` runs before `connected` is sent (resolving false when the
   * session closed meanwhile), `afterConnected` right after it.
   */
  lifecycle: { activate(session: Session): Promise<boolean>; afterConnected(session: Session): void };
}

export class FrameHandler {
  private readonly upgradeTokens = new WeakMap<Session, string>();
  private readonly pongFrame = encodeTextFrame('{"type":"pong"}');

  constructor(private readonly node: ReadPathOptions) {}

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
    const kept = session.keepEarly(text, MAX_EARLY_FRAMES);
    if (kept === 'full') session.close(CloseCode.PROTOCOL_VIOLATION, 'too many frames before connected');
    if (kept !== false) return;
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
        this.run(session, this.guard(session, frame.id, this.node.subscriptions.subscribe(session, frame)));
        return;
      case 'unsubscribe':
        this.unsubscribe(session, frame);
        return;
      case 'publish':
        this.run(session, this.guard(session, frame.id, this.publish(session, frame)));
        return;
      case 'request':
        this.run(session, this.node.rpc.serve(session, frame));
        return;
      case 'response':
        this.node.rpc.response(session, frame.correlationId, frame);
        return;
      case 'ack':
        this.ack(session, frame.msgIds);
        return;
      case 'refresh':
        this.run(session, this.guard(session, frame.id, this.node.refresh.inBand(session, frame)));
        return;
      case 'presence':
      case 'presence_stats':
        this.run(session, this.guard(session, frame.id, this.node.presence.answer(session, frame)));
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
    this.node.acks.ack(session, msgIds);
  }

  private async connect(session: Session, frame: ConnectFrame): Promise<void> {
    if (session.state !== 'connecting') {
      this.sendError(session, new HeraldError(ErrorCode.ALREADY_CONNECTED), frame.id);
      return;
    }
    const node = this.node;
    const token = frame.token ?? this.upgradeTokens.get(session);
    // Frames arriving while the token is verified are kept, a second connect included.
    session.holdEarlyFrames();
    let identity: Identity;
    try {
      identity = await node.identify(session, token, frame);
    } catch (err) {
      const e = err instanceof HeraldError ? err : new HeraldError(ErrorCode.UNAUTHORIZED);
      session.takeEarly();
      if (!session.open) return;
      this.sendError(session, e, frame.id);
      session.close(connectCloseCode(e), e.code);
      return;
    }
    if (!session.open) return;
    const sameUser = identity.user ? (node.admission.userSessions(identity.user)?.size ?? 0) : 0;
    if (identity.user && sameUser >= node.config.limits.maxConnectionsPerUser) {
      session.takeEarly();
      node.metrics.rejectedConnections.inc({ reason: 'per_user' });
      this.sendError(session, new HeraldError(ErrorCode.TOO_MANY_CONNECTIONS, `user already has ${sameUser} connections (limits.maxConnectionsPerUser)`), frame.id);
      session.close(CloseCode.USER_CONNECTION_LIMIT, 'too many connections for this user');
      return;
    }
    // Pending sockets do not count toward maxConnections, so several may pass the upgrade for the
    // last slots; the cap is enforced here, where a connection becomes authenticated.
    if (!node.admission.hasRoomFor(session, node.config.limits.maxConnections)) {
      session.takeEarly();
      node.metrics.rejectedConnections.inc({ reason: 'overload' });
      this.sendError(session, new HeraldError(ErrorCode.OVERLOADED, `at capacity (${node.config.limits.maxConnections} connections, limits.maxConnections)`), frame.id);
      session.close(CloseCode.TRY_AGAIN_LATER, 'at capacity, retry later');
      return;
    }
    session.authenticate(identity);
    this.upgradeTokens.delete(session);
    if (!(await node.lifecycle.activate(session))) return;
    const reply: ConnectedFrame = {
      type: 'connected',
      id: frame.id,
      connectionId: session.id,
      user: session.user,
      pingInterval: node.config.heartbeat.intervalMs,
      pongTimeout: node.config.heartbeat.pongTimeoutMs,
      protocol: PROTOCOL_VERSION,
      node: node.nodeName,
      ...(identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {}),
    };
    this.send(session, reply);
    node.lifecycle.afterConnected(session);
    for (const text of session.takeEarly()) if (session.open) this.handle(session, text);
  }

  private unsubscribe(session: Session, frame: UnsubscribeFrame): void {
    if (!this.node.subscriptions.unsubscribe(session, frame.channel)) {
      this.sendError(session, new HeraldError(ErrorCode.NOT_SUBSCRIBED, `not subscribed to ${frame.channel}`), frame.id);
      return;
    }
    this.send(session, { type: 'unsubscribed', id: frame.id, channel: frame.channel });
  }

  private async publish(session: Session, frame: PublishFrame): Promise<void> {
    const node = this.node;
    const payload = await node.publishGate(session, frame);
    // The client's own idempotency scope: its msgIds never meet the API's or another user's.
    const result = await node.publishing.publish(
      {
        channel: frame.channel,
        eventType: frame.eventType,
        payload,
        source: `client:${session.user || 'anonymous'}`,
        ...(frame.msgId ? { msgId: frame.msgId } : {}),
        ...(frame.version ? { version: frame.version } : {}),
      },
      node.publishing.clientScope(session),
    );
    this.send(session, {
      type: 'published',
      id: frame.id,
      msgId: result.msgId,
      ...(result.position ? { position: result.position } : {}),
      ...(result.duplicate ? { duplicate: true } : {}),
    });
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
    const invalidFrames = session.countInvalidFrame();
    if (invalidFrames > this.node.config.limits.maxInvalidFrames) {
      this.node.log.warn({ connId: session.id, user: session.user, invalidFrames }, 'closing a connection that sent too many invalid frames');
      session.close(CloseCode.TOO_MANY_ERRORS, 'too many invalid frames');
    }
  }

  private errorBody(err: unknown, session: Session): ErrorBody {
    if (err instanceof HeraldError) return err.toBody();
    this.node.log.error({ err, connId: session.id }, 'frame handling failed');
    return new HeraldError(ErrorCode.INTERNAL).toBody();
  }

  sendError(session: Session, err: unknown, id: number | undefined): void {
    this.send(session, { type: 'error', ...(id !== undefined ? { id } : {}), error: this.errorBody(err, session) });
  }

  send(session: Session, frame: ServerFrame): void {
    session.enqueue(encodeFrame(frame));
  }
}
