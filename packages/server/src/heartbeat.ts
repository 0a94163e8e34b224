/**
 * Server-driven heartbeats on one timer wheel. Each connected session alternates between two
 * deadlines: "send a ping" and, `pongTimeoutMs` later, "was it answered?". A session that
 * misses `maxMissed` pings in a row is closed. Any frame from the client counts as an answer,
 * since it proves the path is alive. The same wheel enforces the connect deadline; token expiry
 * is token-refresh.ts's.
 */
import type { HeraldConfig } from './config.js';
import type { Session } from './session.js';
import { TimerWheel, type WheelEntry } from './timer-wheel.js';

export type TimeoutReason = 'connect' | 'pong';

export interface HeartbeatActions {
  ping(session: Session): void;
  timeout(session: Session, reason: TimeoutReason): void;
}

const TICK_MS = 50;
const SLOTS = 2048;

/** One session's heartbeat state, owned here (the session knows nothing of it). */
interface Phase extends WheelEntry {
  readonly session: Session;
  /** Connected: the ping/pong cycle runs. Before that only the connect deadline does. */
  connected: boolean;
  pongCheck: boolean;
  awaitingPong: boolean;
  missedPongs: number;
}

export class Heartbeat {
  private readonly wheel: TimerWheel<Phase>;
  private readonly phases = new WeakMap<Session, Phase>();

  constructor(
    private readonly cfg: HeraldConfig['heartbeat'],
    private readonly actions: HeartbeatActions,
  ) {
    this.wheel = new TimerWheel<Phase>(TICK_MS, SLOTS, (p) => this.expire(p));
  }

  start(): void {
    this.wheel.start();
  }

  stop(): void {
    this.wheel.stop();
  }

  private phaseOf(session: Session): Phase {
    let phase = this.phases.get(session);
    if (!phase) {
      phase = { session, connected: false, pongCheck: false, awaitingPong: false, missedPongs: 0, wheelSlot: -1, wheelRound: 0 };
      this.phases.set(session, phase);
    }
    return phase;
  }

  expectConnect(session: Session, timeoutMs: number): void {
    this.wheel.schedule(this.phaseOf(session), timeoutMs);
  }

  connected(session: Session): void {
    const phase = this.phaseOf(session);
    phase.connected = true;
    phase.pongCheck = false;
    // The first ping comes somewhere in the second half of the interval, so connections opened
    // together (a reconnect storm, a deploy) do not ping — and get their pongs — in one burst.
    this.wheel.schedule(phase, this.cfg.intervalMs * (0.5 + Math.random() / 2));
  }

  alive(session: Session): void {
    const phase = this.phases.get(session);
    if (!phase) return;
    phase.awaitingPong = false;
    phase.missedPongs = 0;
  }

  forget(session: Session): void {
    const phase = this.phases.get(session);
    if (!phase) return;
    this.wheel.cancel(phase);
    this.phases.delete(session);
  }

  /** For tests: advance the wheel by hand. */
  tick(): void {
    this.wheel.tick();
  }

  private expire(phase: Phase): void {
    const s = phase.session;
    if (!s.open) return;
    if (s.state === 'connecting') return this.actions.timeout(s, 'connect');
    if (!phase.connected) return;
    if (phase.pongCheck) {
      phase.pongCheck = false;
      if (phase.awaitingPong && ++phase.missedPongs >= this.cfg.maxMissed) return this.actions.timeout(s, 'pong');
      this.wheel.schedule(phase, this.cfg.intervalMs - this.cfg.pongTimeoutMs);
      return;
    }
    phase.awaitingPong = true;
    this.actions.ping(s);
    phase.pongCheck = true;
    this.wheel.schedule(phase, this.cfg.pongTimeoutMs);
  }
}
