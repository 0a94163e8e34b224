/**
 * The idempotency window. A publish that carries a msgId its publisher chose is remembered for
 * `publish.idempotencyWindowMs`; a second publish with the same key within that window is answered
 * with the first one's result and is neither stored nor delivered again.
 *
 * The key is (publisher scope, audience, msgId):
 * - the scope keeps publishers apart — the HTTP API and stream ingestion share `api`, a client's
 *   publishes are in its user's scope, an anonymous client's in its connection's — so a client can
 *   neither swallow a backend message by using its msgId first nor probe which msgIds exist;
 * - the audience (channel, user, broadcast) is part of it because each engine checks the key inside
 *   the atomic step that stores or sends the message, and that step touches one audience only (on a
 *   Redis Cluster, one hash slot). A retry is the same request, so it always has the same audience.
 *
 * Each engine makes the check part of its own publish (see Broker.publish and InboxStore.append);
 * this module holds what they share: the key and its canonical text. The in-process window the
 * memory and SQLite engines keep is memory/idempotency.ts; the conformance suite all four engines
 * run is test/engine/idempotency.suite.ts.
 */
import type { StreamPosition } from '@herald/protocol';
import type { DispatchTarget } from './target.js';

/** Publishes with a msgId of their own are idempotent within their publisher's scope. */
export interface IdempotencyKey {
  /** Who published: `api`, `user:<id>` or `conn:<node boot>:<connection id>`. */
  scope: string;
  msgId: string;
}

/** The scope of the HTTP API and of stream ingestion. */
export const API_SCOPE = 'api';

/** What a duplicate is answered with: the original's acceptance time and stream position. */
export interface AcceptedPublish {
  timestamp: number;
  position?: StreamPosition;
}

/**
 * The key as one text: each variable part is length-prefixed, so no choice of channel, user, scope
 * or msgId can make two different keys read the same.
 */
export function windowId(target: DispatchTarget, key: IdempotencyKey): string {
  const audience = target.kind === 'channel' ? `c${target.channel.length}:${target.channel}` : target.kind === 'user' ? `u${target.user.length}:${target.user}` : 'b';
  return `${audience}|${key.scope.length}:${key.scope}|${key.msgId}`;
}
