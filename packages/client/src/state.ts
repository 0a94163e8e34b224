import type { HeraldError } from './errors.js';

/**
 * Where the client is in its life. `idle` before the first `connect()`; `connecting` while a dial
 * and handshake are in progress; `reconnecting` while waiting `delay` ms before retry `attempt`;
 * `disconnected` when it stopped trying (after `disconnect()`, a close code that forbids
 * reconnecting, or when attempts ran out) — `connect()` starts again; `closed` after `close()`.
 */
export type ClientState =
  | { status: 'idle' }
  | { status: 'connecting'; attempt: number }
  | { status: 'connected'; connectionId: string; user: string; node: string }
  | { status: 'reconnecting'; attempt: number; delay: number; code: number; reason: string }
  | { status: 'disconnected'; code: number; reason: string; error?: HeraldError }
  | { status: 'closed' };

export type ClientStatus = ClientState['status'];
