/**
 * Who may read and who may publish a channel — written once, for the socket's subscribe and
 * publish and for HTTP polling alike. A channel is readable by an identity whose token grants it
 * or when it is public (`channels.public`); publishable by clients when the token grants it or
 * `channels.clientPublish` does. An invalid name is refused before any pattern is looked at.
 */
import { ErrorCode } from '@herald/protocol';
import type { Identity } from './auth.js';
import { ChannelPatterns, isValidChannel } from './channels.js';
import { HeraldError } from './errors.js';

export class ChannelAccess {
  readonly publicChannels: ChannelPatterns;
  readonly clientPublishChannels: ChannelPatterns;

  constructor(channels: { public: readonly string[]; clientPublish: readonly string[] }) {
    this.publicChannels = new ChannelPatterns(channels.public);
    this.clientPublishChannels = new ChannelPatterns(channels.clientPublish);
  }

  canRead(identity: Identity, channel: string): boolean {
    return identity.subscribe.matches(channel) || this.publicChannels.matches(channel) || identity.granted?.has(channel) === true;
  }

  canPublish(identity: Identity, channel: string): boolean {
    return identity.publish.matches(channel) || this.clientPublishChannels.matches(channel);
  }

  /** Throws `invalid_channel` or `permission_denied` (its message saying what was refused: "subscribe to", "read"). */
  checkRead(identity: Identity, channel: string, action: string): void {
    checkName(channel);
    if (!this.canRead(identity, channel)) throw new HeraldError(ErrorCode.PERMISSION_DENIED, `not allowed to ${action} ${channel}`);
  }

  /** Throws `invalid_channel` or `permission_denied`. */
  checkPublish(identity: Identity, channel: string): void {
    checkName(channel);
    if (!this.canPublish(identity, channel)) throw new HeraldError(ErrorCode.PERMISSION_DENIED, `not allowed to publish to ${channel}`);
  }
}

export function checkName(channel: string): void {
  if (!isValidChannel(channel)) throw new HeraldError(ErrorCode.INVALID_CHANNEL, `invalid channel name ${JSON.stringify(channel)}`);
}
