/** Channel names, namespaces and the glob patterns tokens and configuration use to grant them. */
import type { HeraldConfig } from './config-types.generated.js';

/** The same type config.ts exports; named here from the generated type so config.ts (which checks API keys' channel patterns) and this module do not import each other. */
type HistoryConfig = HeraldConfig['channels']['history'];

const CHANNEL_RE = /^[A-Za-z0-9_:.-]{1,255}$/;

export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_RE.test(name);
}

/** `chat:room-1` → `chat`; a name without a colon is in the default namespace `""`. */
export function namespaceOf(channel: string): string {
  const i = channel.indexOf(':');
  return i < 0 ? '' : channel.slice(0, i);
}

/**
 * A compiled set of glob patterns: `*` matches any run of characters (including `:`), every
 * other character matches itself. Patterns come from trusted places (tokens and configuration);
 * clients never send wildcards — but clients choose the names matched against them (every
 * anonymous subscribe is checked against `channels.public`), so matching must stay cheap for
 * any name: see `Glob`.
 */
export class ChannelPatterns {
  private readonly exact = new Set<string>();
  private readonly globs: Glob[] = [];
  private readonly any: boolean;

  constructor(patterns: readonly string[]) {
    let any = false;
    for (const p of patterns) {
      if (/^\*+$/.test(p)) any = true;
      else if (!p.includes('*')) this.exact.add(p);
      else this.globs.push(new Glob(p));
    }
    this.any = any;
  }

  get empty(): boolean {
    return !this.any && this.exact.size === 0 && this.globs.length === 0;
  }

  matches(channel: string): boolean {
    if (this.any || this.exact.has(channel)) return true;
    for (const glob of this.globs) if (glob.matches(channel)) return true;
    return false;
  }
}

/**
 * One pattern with at least one `*`, matched without backtracking. `head*m1*m2*…*tail` matches a
 * name that starts with `head`, ends with `tail`, and holds `m1`, `m2`, … in order in between,
 * not overlapping. Taking the leftmost occurrence of each middle part is always right (it leaves
 * the most room for the parts after it), so one left-to-right pass of `indexOf` decides: at most
 * O(name × pattern) work, where a regular expression with several `.*` backtracks exponentially in
 * their number.
 */
class Glob {
  private readonly head: string;
  private readonly middle: string[];
  private readonly tail: string;
  private readonly minLength: number;

  constructor(pattern: string) {
    const parts = pattern.split('*');
    this.head = parts[0]!;
    this.tail = parts[parts.length - 1]!;
    this.middle = parts.slice(1, -1).filter((m) => m.length > 0);
    this.minLength = parts.reduce((n, part) => n + part.length, 0);
  }

  matches(name: string): boolean {
    if (name.length < this.minLength || !name.startsWith(this.head) || !name.endsWith(this.tail)) return false;
    const end = name.length - this.tail.length;
    let from = this.head.length;
    for (const part of this.middle) {
      const at = name.indexOf(part, from);
      if (at < 0 || at + part.length > end) return false;
      from = at + part.length;
    }
    return true;
  }
}

/** The history settings of a channel: `channels.history` with its namespace's overrides. */
export function historyConfigOf(channels: Readonly<HeraldConfig['channels']>, channel: string): HistoryConfig {
  const ns = channels.namespaces[namespaceOf(channel)]?.history;
  return { ...channels.history, ...ns };
}
