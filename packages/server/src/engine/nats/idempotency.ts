/**
 * The idempotency window on NATS (see Broker.publish for the contract). Where a publish is stored
 * in a JetStream stream, the stream's own de-duplication is the window: the message carries its key
 * as `Nats-Msg-Id`, and JetStream refuses a second message with that id within the stream's
 * `duplicate_window` (set to `publish.idempotencyWindowMs`) atomically, answering with the
 * original's sequence. That covers channel messages (the history stream) and at-least-once user
 * messages (the inbox stream). Live-only publishes — at-most-once user messages and broadcasts, sent
 * on core NATS — take their key with an atomic create in the KV bucket `<prefix>_idem`, whose TTL is
 * the window, before they are sent.
 */
import { createHash } from 'node:crypto';
import { nanos, type KV } from 'nats';
import { windowId, type IdempotencyKey } from '../idempotency.js';
import type { DispatchTarget } from '../broker.js';
import type { JetStreamLink } from './jetstream.js';

export function idempotencyBucket(prefix: string): string {
  return `${prefix}_idem`;
}

/**
 * The key as a `Nats-Msg-Id` and as a KV key: a hash of its canonical text, so any channel, user,
 * scope or msgId fits both (a header value may not hold every character, a KV key even fewer).
 */
export function natsIdempotencyId(target: DispatchTarget, key: IdempotencyKey): string {
  return createHash('sha256').update(windowId(target, key)).digest('base64url');
}

/**
 * The stream's duplicate window for `windowMs`: JetStream refuses one longer than the stream's
 * max_age, and a window of 0 turns keys off (the server's default then stays, unused).
 */
export function duplicateWindow(windowMs: number, maxAgeNanos: number): number | undefined {
  if (!(windowMs > 0)) return undefined;
  const w = nanos(windowMs);
  return maxAgeNanos > 0 ? Math.min(w, maxAgeNanos) : w;
}

/** Opens (or creates) the bucket for live-only publishes, its TTL set to the window. */
export async function openIdempotencyBucket(link: JetStreamLink, prefix: string, windowMs: number, replicas: number): Promise<KV> {
  const { js, jsm } = link;
  const bucket = idempotencyBucket(prefix);
  const kv = await js.views.kv(bucket, { history: 1, ttl: windowMs, replicas, timeout: link.timeoutMs });
  // A bucket made earlier with another window keeps its old TTL unless told.
  const stream = `KV_${bucket}`;
  const info = await jsm.streams.info(stream);
  if (info.config.max_age !== nanos(windowMs)) {
    // The stream's duplicate window may not exceed its max_age.
    await jsm.streams.update(stream, { ...info.config, max_age: nanos(windowMs), duplicate_window: nanos(Math.min(windowMs, 120_000)) });
  }
  return kv;
}
