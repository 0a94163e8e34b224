/**
 * Per-channel `info` a subscribe hook attached to one connection's subscription: shown beside the
 * connection's own `info` to the channel's members through presence (`channelInfo`). Kept while
 * the subscription lasts; the subscribe gate sets and clears it, presence reads it at join.
 */
import type { Session } from '../session.js';

export class ChannelInfoBook {
  private readonly bySession = new WeakMap<Session, Map<string, unknown>>();

  set(session: Session, channel: string, info: unknown): void {
    let channels = this.bySession.get(session);
    if (!channels) this.bySession.set(session, (channels = new Map()));
    channels.set(channel, info);
  }

  get(session: Session, channel: string): unknown {
    return this.bySession.get(session)?.get(channel);
  }

  delete(session: Session, channel: string): void {
    const channels = this.bySession.get(session);
    if (!channels) return;
    channels.delete(channel);
    if (channels.size === 0) this.bySession.delete(session);
  }
}
