/**
 * Server-driven heartbeats on one timer wheel. Each connected session alternates between two
 * deadlines: "send a ping" and, `pongTimeoutMs` later, "was it answered?". A session that
 * misses `maxMissed` pings in a row is closed. Any frame from the client counts as an answer,
 * since it proves the path is alive. The same wheel enforces the connect deadline and notices
 * token expiry at ping time.
 */
import type { HeraldConfig } from './config.js';
import type { Session } from './session.js';
import { TimerWheel } from './timer-wheel.js';

export type TimeoutReason = 'connect' | 'pong' | 'token';

export interface HeartbeatActions {
  ping(session: Session): void;
  timeout(session: Session, reason: TimeoutReason): void;
}

const TICK_MS = 50;
const SLOTS = 2048;

interface Phase {
  pongCheck: boolean;
  expiresAtMs: number | undefined;
}

export class Heartbeat {
  private readonly wheel: TimerWheel<Session>;
  private readonly phase = new WeakMap<Session, Phase>();

  constructor(
    private readonly cfg: HeraldConfig['heartbeat'],
    private readonly actions: HeartbeatActions,
  ) {
    this.wheel = new TimerWheel<Session>(TICK_MS, SLOTS, (s) => this.expire(s));
  }

  start(): void {
    this.wheel.start();
  }

  stop(): void {
    this.wheel.stop();
  }

  expectConnect(session: Session, timeoutMs: number): void {
    this.wheel.schedule(session, timeoutMs);
  }

  connected(session: Session, expiresAtSec: number | undefined): void {
    this.phase.set(session, { pongCheck: false, expiresAtMs: expiresAtSec === undefined ? undefined : expiresAtSec * 1000 });
    // The first ping comes somewhere in the second half of the interval, so connections opened
    // together (a reconnect storm, a deploy) do not ping — and get their pongs — in one burst.
    this.wheel.schedule(session, this.cfg.intervalMs * (0.5 + Math.random() / 2));
  }

  alive(session: Session): void {
    session.awaitingPong = false;
    session.missedPongs = 0;
  }

  forget(session: Session): void {
    this.wheel.cancel(session);
  }

  /** For tests: advance the wheel by hand. */
  tick(): void {
    this.wheel.tick();
  }

  private expire(s: Session): void {
    if (!s.open) return;
    if (s.state === 'connecting') return this.actions.timeout(s, 'connect');
    const phase = this.phase.get(s);
    if (!phase) return;
    if (phase.pongCheck) {
      phase.pongCheck = false;
      if (s.awaitingPong && ++s.missedPongs >= this.cfg.maxMissed) return this.actions.timeout(s, 'pong');
      this.wheel.schedule(s, this.cfg.intervalMs - this.cfg.pongTimeoutMs);
      return;
    }
    if (phase.expiresAtMs !== undefined && Date.now() >= phase.expiresAtMs) return this.actions.timeout(s, 'token');
    s.awaitingPong = true;
    this.actions.ping(s);
    phase.pongCheck = true;
    this.wheel.schedule(s, this.cfg.pongTimeoutMs);
  }
}
