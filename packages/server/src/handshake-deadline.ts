/**
 * The handshake deadline covers a connection from its TCP accept to `connected`:
 * `limits.handshakeTimeoutMs` in all, whoever is slow. This module times the first part — until
 * the first request head has arrived — so a client dribbling its upgrade request a byte at a time
 * is cut off at the deadline rather than at Node's `headersTimeout`. Then:
 *
 * - a plain HTTP request leaves the deadline (`settle` from the request listener); Node's
 *   header and request timeouts govern it from there;
 * - a WebSocket upgrade takes what is left of the deadline (`settle` returns it) into its session,
 *   whose connect deadline on the heartbeat wheel closes it with 4007 if `connected` is not
 *   reached in time.
 *
 * A connection whose head is still incomplete at the deadline is answered `408 client_timeout`
 * and closed (it may have been either kind). One timer wheel serves every socket.
 */
import type { Socket } from 'node:net';
import { TimerWheel, type WheelEntry } from './timer-wheel.js';

interface Accepted extends WheelEntry {
  readonly socket: Socket;
  readonly acceptedAt: number;
}

const ACCEPTED = Symbol('herald.accepted');
type Watched = Socket & { [ACCEPTED]?: Accepted };

// The same resolution as the heartbeat wheel: a deadline fires at most one tick late.
const TICK_MS = 50;
const SLOTS = 2048;

export class HandshakeDeadline {
  private readonly wheel: TimerWheel<Accepted>;

  constructor(
    private readonly timeoutMs: number,
    onExpired: (socket: Socket) => void,
  ) {
    this.wheel = new TimerWheel<Accepted>(TICK_MS, SLOTS, (entry) => {
      const socket = entry.socket as Watched;
      socket[ACCEPTED] = undefined;
      if (!socket.destroyed) onExpired(socket);
    });
    this.wheel.start();
  }

  /** The server's `connection` listener: starts the deadline of a new socket. */
  readonly watch = (socket: Socket): void => {
    const entry: Accepted = { socket, acceptedAt: Date.now(), wheelSlot: -1, wheelRound: 0 };
    (socket as Watched)[ACCEPTED] = entry;
    this.wheel.schedule(entry, this.timeoutMs);
  };

  /**
   * The socket's request head has arrived: stops timing it and returns the milliseconds left of
   * its deadline (the whole timeout for a socket that no longer has one, e.g. an upgrade after
   * earlier requests on a kept-alive connection).
   */
  settle(socket: Socket): number {
    const entry = (socket as Watched)[ACCEPTED];
    if (!entry) return this.timeoutMs;
    (socket as Watched)[ACCEPTED] = undefined;
    this.wheel.cancel(entry);
    return this.timeoutMs - (Date.now() - entry.acceptedAt);
  }

  /** Sockets still being timed (for tests). */
  get size(): number {
    return this.wheel.size;
  }

  stop(): void {
    this.wheel.stop();
  }
}
