/**
 * Who decides a subscription the connection's token does not grant: a subscription token sent
 * with the `subscribe` frame (a JWT with `channel` and `sub`, verified with the connection keys),
 * else the subscribe hook of the channel's namespace, else nobody (`permission_denied` as before).
 * A channel granted either way is added to the connection's one-at-a-time grants
 * (`Identity.granted`), which the channel access rule reads; it is withdrawn when the
 * subscription ends or does not come about.
 */
import { ErrorCode } from '@herald/protocol';
import type { SubscribeFrame } from '@herald/protocol';
import type { JWTPayload } from 'jose';
import { checkName, type ChannelAccess } from '../channel-access.js';
import { HeraldError } from '../errors.js';
import type { Session } from '../session.js';
import type { SubscriptionOps } from '../subscriptions.js';
import type { ChannelInfoBook } from './channel-info.js';
import type { ProxyHooks } from './hooks.js';

export interface SubscribeGateOptions {
  inner: SubscriptionOps;
  access: Pick<ChannelAccess, 'canRead'>;
  hooks: Pick<ProxyHooks, 'subscribeTarget' | 'subscribe'>;
  verifier: { verifyClaims(token: string): Promise<JWTPayload> };
  /** Where the subscribe hook's per-channel `info` is kept for the subscription's life. */
  channelInfo: Pick<ChannelInfoBook, 'set' | 'delete'>;
}

export class SubscribeGate implements SubscriptionOps {
  constructor(private readonly o: SubscribeGateOptions) {}

  async subscribe(session: Session, frame: SubscribeFrame): Promise<void> {
    const { channel } = frame;
    const identity = session.identity!;
    let grantedNow = false;
    if (frame.token !== undefined || !this.o.access.canRead(identity, channel)) {
      checkName(channel);
      if (frame.token !== undefined) {
        await this.verifySubscriptionToken(session, channel, frame.token);
        grantedNow = true;
      } else {
        const target = this.o.hooks.subscribeTarget(channel);
        if (target) {
          const info = await this.o.hooks.subscribe(session, channel, target);
          if (info !== undefined) this.o.channelInfo.set(session, channel, info);
          grantedNow = true;
        }
      }
      if (!session.open) return;
      // The identity may have been refreshed meanwhile; grants live on the current one.
      const current = session.identity!;
      if (grantedNow && !current.granted?.has(channel)) (current.granted ??= new Set()).add(channel);
      else grantedNow = false;
    }
    try {
      await this.o.inner.subscribe(session, frame);
    } finally {
      if (!session.isSubscribed(channel)) {
        if (grantedNow) session.identity?.granted?.delete(channel);
        this.o.channelInfo.delete(session, channel);
      }
    }
  }

  unsubscribe(session: Session, channel: string): boolean {
    const done = this.o.inner.unsubscribe(session, channel);
    if (done) {
      session.identity?.granted?.delete(channel);
      this.o.channelInfo.delete(session, channel);
    }
    return done;
  }

  private async verifySubscriptionToken(session: Session, channel: string, token: string): Promise<void> {
    const claims = await this.o.verifier.verifyClaims(token);
    if (claims.channel !== channel) throw new HeraldError(ErrorCode.PERMISSION_DENIED, `the subscription token is not for ${channel}`);
    if (!session.user || claims.sub !== session.user) throw new HeraldError(ErrorCode.PERMISSION_DENIED, 'the subscription token is for another user');
  }
}
