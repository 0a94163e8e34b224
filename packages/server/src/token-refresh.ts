/**
 * A connection's token over its life: the one owner of "what happens at `exp`". Each connected
 * session whose credentials expire has one timer:
 *
 * - with the refresh hook, `proxy.refresh.aheadMs` before expiry the backend is asked for new
 *   credentials (retried while it is unavailable, until expiry); a refusal ends the connection
 *   with 4006 at once, `{disconnect}` with the backend's code;
 * - at expiry, a connection that was not refreshed is closed with 4006 (`token_expired`): the
 *   client fetches a new token and reconnects. A client can avoid that by sending a `refresh`
 *   frame with a new token before then (its SDK does, with `getToken`).
 *
 * A refresh — in band or from the hook — keeps the user, replaces expiry, rights and tags, and
 * ends (with `subscription_revoked`) exactly the subscriptions the new rights no longer grant.
 * Channels granted one at a time (subscription tokens, the subscribe hook) stay granted.
 */
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { RefreshFrame, ServerFrame } from '@herald/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { Identity, TokenVerifier } from './auth.js';
import type { ChannelAccess } from './channel-access.js';
import { HeraldError } from './errors.js';
import type { Hub } from './hub.js';
import type { Session } from './session.js';

/** setTimeout's longest delay; a later expiry is checked again after this. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** How soon an unavailable refresh hook is asked again (never past expiry). */
const RETRY_MS = 2000;

export interface TokenRefreshOptions {
  verifier: Pick<TokenVerifier, 'verify'>;
  access: Pick<ChannelAccess, 'canRead'>;
  hub: Pick<Hub, 'retag'>;
  /** Ends one subscription of the session (the read path's unsubscribe). */
  unsubscribe(session: Session, channel: string): boolean;
  /** The refresh hook, when configured. */
  hook: { aheadMs: number; refresh(session: Session): Promise<Identity> } | undefined;
  send(session: Session, frame: ServerFrame): void;
  log: FastifyBaseLogger;
  /**
   * The verifier's clock tolerance (auth.jwt.clockToleranceSec, in ms): a token it accepts until
   * `exp` + tolerance keeps its connection until then too, or a token accepted inside the tolerance
   * would be closed with 4006 right after its `connected` — and a client reconnecting with the same
   * token would loop.
   */
  toleranceMs?: number;
  now?: () => number;
}

export class TokenRefresh {
  private readonly timers = new Map<Session, NodeJS.Timeout>();
  private readonly now: () => number;

  constructor(private readonly o: TokenRefreshOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * Starts (or restarts) watching a connected session's expiry. `askNow`: inside the refresh
   * window the hook is asked at once — except right after it answered, when an answer that did
   * not move the expiry far enough is asked again only after a pause (never in a loop).
   */
  track(session: Session, askNow = true): void {
    this.forget(session);
    const exp = session.identity?.expiresAt;
    if (exp === undefined || !session.open) return;
    const expMs = exp * 1000 + (this.o.toleranceMs ?? 0);
    const now = this.now();
    // Past already: closed on the next turn, so a `connected` being sent goes out first.
    if (expMs <= now) return this.at(session, expMs, () => this.expire(session));
    if (!this.o.hook) return this.at(session, expMs, () => this.expire(session));
    // Asked ahead of `exp` itself: the tolerance is for clock skew, not extra lifetime to plan on.
    const askAt = exp * 1000 - this.o.hook.aheadMs;
    if (askAt > now) this.at(session, askAt, () => this.askBackend(session, expMs));
    else if (askNow) this.askBackend(session, expMs);
    else if (now + RETRY_MS < expMs) this.at(session, now + RETRY_MS, () => this.askBackend(session, expMs));
    else this.at(session, expMs, () => this.expire(session));
  }

  forget(session: Session): void {
    const t = this.timers.get(session);
    if (t) clearTimeout(t);
    this.timers.delete(session);
  }

  /** The client's `refresh` frame: same user, verified like a connect token, then in force. */
  async inBand(session: Session, frame: RefreshFrame): Promise<void> {
    const identity = await this.o.verifier.verify(frame.token);
    if (!session.open) return;
    if (identity.user !== session.user) throw new HeraldError(ErrorCode.PERMISSION_DENIED, 'the new token is for another user; reconnect to change users');
    this.apply(session, identity);
    this.o.send(session, { type: 'refreshed', id: frame.id, ...(identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {}) });
  }

  /** Puts new credentials in force for the session's user and revokes what they no longer grant. */
  apply(session: Session, identity: Identity, askNow = true): void {
    const granted = session.identity?.granted;
    const next: Identity = granted ? { ...identity, granted } : identity;
    this.o.hub.retag(session, () => session.reauthenticate(next));
    for (const channel of [...session.subscribedChannels()]) {
      if (this.o.access.canRead(next, channel)) continue;
      if (!this.o.unsubscribe(session, channel)) continue;
      const error = new HeraldError(ErrorCode.SUBSCRIPTION_REVOKED, `the refreshed token no longer grants ${channel}`).toBody();
      this.o.send(session, { type: 'unsubscribed', channel, error });
    }
    this.track(session, askNow);
  }

  private at(session: Session, atMs: number, run: () => void): void {
    const delay = Math.max(0, atMs - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(session);
      if (!session.open) return;
      if (delay > MAX_DELAY_MS) this.track(session);
      else run();
    }, Math.min(delay, MAX_DELAY_MS));
    timer.unref();
    this.timers.set(session, timer);
  }

  private expire(session: Session): void {
    session.close(CloseCode.TOKEN_EXPIRED, 'token expired');
  }

  private askBackend(session: Session, expMs: number): void {
    const hook = this.o.hook!;
    const identityBefore = session.identity;
    hook.refresh(session).then(
      (identity) => {
        // A refresh in band meanwhile wins: its credentials are the newer ones.
        if (session.open && session.identity === identityBefore) this.apply(session, identity, false);
      },
      (err: unknown) => {
        if (!session.open || session.identity !== identityBefore) return;
        const e = err instanceof HeraldError ? err : new HeraldError(ErrorCode.INTERNAL);
        if (!(err instanceof HeraldError)) this.o.log.error({ err, connId: session.id }, 'refresh hook failed');
        if (e.temporary && this.now() + RETRY_MS < expMs) {
          this.o.log.warn({ connId: session.id, code: e.code, reason: e.message }, 'refresh hook unavailable; asking again');
          this.at(session, this.now() + RETRY_MS, () => this.askBackend(session, expMs));
        } else if (e.temporary) {
          this.at(session, expMs, () => this.expire(session));
        } else {
          session.close(CloseCode.TOKEN_EXPIRED, `refresh refused: ${e.message}`.slice(0, 120));
        }
      },
    );
  }
}
