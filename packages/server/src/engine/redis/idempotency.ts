/**
 * The idempotency window in Redis: one key per accepted (scope, audience, msgId), holding the
 * original's result, with the window as its expiry. The key is in the hash slot of its audience's
 * other keys — a channel's meta and stream, a user's inbox and topic — so the script that stores or
 * sends the message checks and takes the key in the same atomic step, on a Redis Cluster too.
 */
import type { AcceptedPublish, IdempotencyKey } from '../idempotency.js';
import { windowId } from '../idempotency.js';
import type { DispatchTarget } from '../broker.js';

export function idempotencyKeyName(prefix: string, target: DispatchTarget, key: IdempotencyKey): string {
  const id = windowId(target, key);
  if (target.kind === 'channel') return `${prefix}:idem:{${target.channel}}:${id}`;
  if (target.kind === 'user') return `${prefix}:idem:{${target.user}}:${id}`;
  return `${prefix}:idem:${id}`;
}

/** A result as the scripts store it: `{"t":timestamp}`, plus `"o":offset,"e":epoch` for channels. */
export function parseStoredResult(json: string): AcceptedPublish {
  const r = JSON.parse(json) as { t: number; o?: number; e?: string };
  return r.o !== undefined && r.e !== undefined ? { timestamp: Number(r.t), position: { offset: Number(r.o), epoch: r.e } } : { timestamp: Number(r.t) };
}

