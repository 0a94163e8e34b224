/**
 * Refused WebSocket connections, logged at warn so an operator sees why clients cannot connect
 * (the metric `herald_connections_rejected_total` says only how many). Each line names the
 * client (IP, Origin) and the config key that decides. A flood of refusals (a misconfigured
 * page reloading, a scanner) must not flood the log: per reason at most one line per window;
 * what was held back is counted and reported in one summary line when the window ends.
 */
export type RefusalReason = 'origin' | 'per_ip' | 'pending' | 'overload' | 'rate_limited' | 'auth';

/** The setting to look at for each reason. */
export const REFUSAL_KEYS: Readonly<Record<RefusalReason, string>> = {
  origin: 'origins.allowed',
  per_ip: 'limits.maxConnectionsPerIp',
  pending: 'limits.maxPendingConnections',
  overload: 'limits.maxConnections (and limits.overload)',
  rate_limited: 'rateLimits.ip.handshakes',
  auth: 'auth.jwt (the client\'s token) or auth.anonymous',
};

const WHAT: Readonly<Record<RefusalReason, string>> = {
  origin: 'its Origin is not allowed',
  per_ip: 'too many connections from this IP',
  pending: 'too many connections still authenticating',
  overload: 'the node is at capacity',
  rate_limited: 'this IP opens connections too fast',
  auth: 'its token was refused (or none was sent)',
};

export interface RefusalLogger {
  warn(obj: object, msg: string): void;
}

interface Window {
  suppressed: number;
  timer: NodeJS.Timeout | undefined;
}

export class RefusalLog {
  private readonly windows = new Map<RefusalReason, Window>();

  constructor(
    private readonly log: RefusalLogger,
    private readonly windowMs = 10_000,
  ) {}

  refused(reason: RefusalReason, who: { ip: string; origin?: string | undefined; detail?: string }): void {
    const open = this.windows.get(reason);
    if (open) {
      open.suppressed++;
      return;
    }
    const configKey = REFUSAL_KEYS[reason];
    const from = `${who.ip}${who.origin ? ` (Origin ${who.origin})` : ''}`;
    const fix = reason === 'origin' ? `add ${who.origin ?? 'the page\'s origin'} to ${configKey}` : `see ${configKey}`;
    this.log.warn(
      { reason, ip: who.ip, ...(who.origin ? { origin: who.origin } : {}), configKey, ...(who.detail ? { detail: who.detail } : {}) },
      `refused a WebSocket connection from ${from}: ${WHAT[reason]}; ${fix}`,
    );
    const window: Window = { suppressed: 0, timer: undefined };
    window.timer = setTimeout(() => {
      this.windows.delete(reason);
      if (window.suppressed > 0) {
        this.log.warn(
          { reason, configKey, suppressed: window.suppressed },
          `refused ${window.suppressed} more WebSocket connection${window.suppressed > 1 ? 's' : ''} (${WHAT[reason]}) in the last ${Math.round(this.windowMs / 1000)} s; see ${configKey}`,
        );
      }
    }, this.windowMs);
    window.timer.unref();
    this.windows.set(reason, window);
  }

  /** Stops the window timers; held-back counts are dropped. */
  close(): void {
    for (const w of this.windows.values()) clearTimeout(w.timer);
    this.windows.clear();
  }
}
