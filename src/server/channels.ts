/** Channel names, namespaces and the glob patterns tokens and configuration use to grant them. */

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
 * clients never send wildcards.
 */
export class ChannelPatterns {
  private readonly exact = new Set<string>();
  private readonly globs: RegExp[] = [];
  private readonly any: boolean;

  constructor(patterns: readonly string[]) {
    let any = false;
    for (const p of patterns) {
      if (p === '*') any = true;
      else if (!p.includes('*')) this.exact.add(p);
      else this.globs.push(new RegExp(`^${p.split('*').map(escapeRegExp).join('.*')}$`));
    }
    this.any = any;
  }

  get empty(): boolean {
    return !this.any && this.exact.size === 0 && this.globs.length === 0;
  }

  matches(channel: string): boolean {
    if (this.any || this.exact.has(channel)) return true;
    for (const re of this.globs) if (re.test(channel)) return true;
    return false;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
