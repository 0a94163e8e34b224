/**
 * The attacking connections kept open during a run: a fixed number of slots, each of one kind
 * (anonymous, token, or a token connection that stops reading now and then), each reopened when
 * the server closes it — which most inputs end up making it do.
 */
import { Attacker } from './attacker.js';
import type { Auth } from './generator.js';
import type { ConnKind } from './recorder.js';
import type { Rng } from './rng.js';
import type { RunState } from './run-state.js';
import { attackerClaims } from './world.js';

/** Slot kinds, repeating: the first three slots cover every kind even in a small pool. */
const KINDS: ConnKind[] = ['anonymous', 'token', 'lazy', 'anonymous', 'token', 'anonymous', 'token', 'anonymous', 'token', 'anonymous'];

export class AttackerPool {
  private readonly slots: Array<Attacker | undefined>;
  private stopped = false;
  private lazyTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: RunState,
    size: number,
    /** One token per slot (used by token and lazy slots). */
    private readonly tokens: string[],
    private readonly rng: Rng,
  ) {
    this.slots = new Array<Attacker | undefined>(size).fill(undefined);
  }

  private kindOf(slot: number): ConnKind {
    return KINDS[slot % KINDS.length]!;
  }

  /** Opens every slot and waits (up to 10 s) until each has authenticated once. */
  async start(): Promise<void> {
    const first = this.slots.map((_, i) => this.open(i));
    await Promise.race([Promise.all(first.map((a) => a.ready)), new Promise((r) => setTimeout(r, 10_000))]);
    // Lazy connections stop reading for a while, then catch up: the server's queue for them grows meanwhile.
    // Now and then one stops reading for long (20 s): the server must close it as a slow consumer
    // rather than queue for it without bound.
    this.lazyTimer = setInterval(() => {
      for (const a of this.slots) {
        if (a?.kind !== 'lazy' || a.paused) continue;
        if (this.rng.chance(0.02)) a.pauseFor(20_000);
        else if (this.rng.chance(0.3)) a.pauseFor(this.rng.range(500, 3000));
      }
    }, 1000);
  }

  private open(slot: number): Attacker {
    const kind = this.kindOf(slot);
    const withToken = kind === 'token' || kind === 'lazy';
    const a = new Attacker(this.run, kind, this.rng.fork(), withToken ? this.tokens[slot] : undefined, withToken ? attackerClaims(slot).sub : undefined);
    this.slots[slot] = a;
    void a.closed.then(() => {
      if (this.stopped || this.run.serverGone) return;
      // A refused upgrade (rate limit, capacity) is retried later; a closed connection at once.
      setTimeout(() => {
        if (!this.stopped && !this.run.serverGone && this.slots[slot] === a) this.open(slot);
      }, a.refusedStatus ? 1000 : 10);
    });
    return a;
  }

  /** A connection of that kind ready for an input, chosen at random among the ready ones. */
  pick(auth: Auth, rng: Rng): Attacker | undefined {
    const ready = this.slots.filter((a): a is Attacker => a !== undefined && a.kind === auth && a.isReady());
    return ready.length > 0 ? rng.pick(ready) : undefined;
  }

  /** Some live attacker connection, for HTTP calls that name one (never the bystander). */
  live(rng: Rng): Attacker | undefined {
    const live = this.slots.filter((a): a is Attacker => a?.state === 'connected' && a.connectionId !== undefined && !a.condemned && !a.isHeld());
    return live.length > 0 ? rng.pick(live) : undefined;
  }

  all(): Attacker[] {
    return this.slots.filter((a): a is Attacker => a !== undefined);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.lazyTimer);
    for (const a of this.all()) a.close();
  }
}
