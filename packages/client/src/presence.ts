/**
 * Channel presence for a subscription: the `presence` and `presence_stats` frames as promises.
 * Asked over the current connection; without one they fail with `connection_lost` rather than
 * wait, since the answer describes the present.
 */
import type { PresenceMember, ServerFrame } from '@herald/protocol';
import { ErrorCode } from '@herald/protocol';
import type { Link } from './connection.js';
import { ClientErrorCode, HeraldError } from './errors.js';

export type { PresenceMember };

export interface PresencePage {
  /** Members ordered by `client` (the connection id). */
  members: PresenceMember[];
  /** Pass as `cursor` to get the next page; absent on the last one. */
  next?: string;
}

export interface PresenceStats {
  /** Connections subscribed to the channel, on every node. */
  connections: number;
  /** Distinct users among them. */
  users: number;
}

export interface PresenceQuery {
  cursor?: string;
  /** 1–1000; the server's default is 100. */
  limit?: number;
}

/** Sends one presence frame for `channel` and resolves with the matching reply. */
export function askPresence(link: Link | undefined, channel: string, query: PresenceQuery): Promise<PresencePage> {
  return ask(link, (id) => ({ type: 'presence', id, channel, ...(query.cursor !== undefined ? { cursor: query.cursor } : {}), ...(query.limit !== undefined ? { limit: query.limit } : {}) }), 'presence').then((f) => {
    const frame = f as Extract<ServerFrame, { type: 'presence' }>;
    return { members: frame.members, ...(frame.next !== undefined ? { next: frame.next } : {}) };
  });
}

export function askPresenceStats(link: Link | undefined, channel: string): Promise<PresenceStats> {
  return ask(link, (id) => ({ type: 'presence_stats', id, channel }), 'presence_stats').then((f) => {
    const frame = f as Extract<ServerFrame, { type: 'presence_stats' }>;
    return { connections: frame.connections, users: frame.users };
  });
}

function ask(link: Link | undefined, build: Parameters<Link['call']>[0], expected: ServerFrame['type']): Promise<ServerFrame> {
  if (!link?.isOpen) return Promise.reject(new HeraldError(ClientErrorCode.CONNECTION_LOST, 'not connected: presence is read from the server'));
  return new Promise((resolve, reject) => {
    link.call(build, (reply) => {
      if (reply instanceof HeraldError) reject(reply);
      else if (reply.type !== expected) reject(new HeraldError(ErrorCode.INVALID_FRAME, `"${reply.type}" frame in reply to ${expected}`));
      else resolve(reply);
    });
  });
}
