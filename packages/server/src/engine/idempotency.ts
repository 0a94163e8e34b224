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
 * this module holds what they share: the key's canonical text and the in-process window that the
 * memory and SQLite engines keep.
 */
import type { StreamPosition } from '@herald/protocol';
import type { DispatchTarget } from './broker.js';

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

interface WindowEntry extends AcceptedPublish {
  at: number;
}

/**
 * The window in process memory, bounded by age (`windowMs`) and by count (`maxKeys`, the oldest
 * forgotten first). Synchronous, so a check and the store it guards happen in one turn.
 */
export class IdempotencyWindow {
  private readonly entries = new Map<string, WindowEntry>();

  constructor(
    readonly windowMs: number,
    readonly maxKeys: number,
  ) {}

  /** False when de-duplication is off (`windowMs` or `maxKeys` is 0). */
  get enabled(): boolean {
    return this.windowMs > 0 && this.maxKeys > 0;
  }

  get(id: string, now = Date.now()): AcceptedPublish | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (now - e.at > this.windowMs) {
      this.entries.delete(id);
      return undefined;
    }
    return e.position ? { timestamp: e.timestamp, position: e.position } : { timestamp: e.timestamp };
  }

  /** Remembers `id` as accepted at `at` (the original's time when rebuilding from a store). */
  set(id: string, accepted: AcceptedPublish, at = Date.now()): void {
    if (!this.enabled) return;
    this.entries.delete(id);
    this.entries.set(id, { ...accepted, at });
    this.sweep(Date.now());
  }

  /** Forgets `id` (a publish that claimed it did not go through after all). */
  delete(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(now: number): void {
    // Map iteration is insertion order, so the oldest entries come first.
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxKeys && now - e.at <= this.windowMs) break;
      this.entries.delete(k);
    }
  }
}
