/**
 * Who decides a client publish: the publish hook of the channel's namespace when there is one
 * (it may refuse, or rewrite the payload; the token's publish rights are then not consulted),
 * else the channel access rule. Returns the payload to publish.
 */
import type { PublishFrame } from '@herald/protocol';
import { checkName, type ChannelAccess } from '../channel-access.js';
import type { Session } from '../session.js';
import type { ProxyHooks } from './hooks.js';

export type PublishGate = (session: Session, frame: PublishFrame) => Promise<unknown>;

export function publishGate(access: Pick<ChannelAccess, 'checkPublish'>, hooks: Pick<ProxyHooks, 'publishTarget' | 'publish'>): PublishGate {
  return async (session, frame) => {
    const target = hooks.publishTarget(frame.channel);
    if (!target) {
      access.checkPublish(session.identity!, frame.channel);
      return frame.payload;
    }
    checkName(frame.channel);
    return hooks.publish(session, frame, target);
  };
}
