import { ClientErrorCode, HeraldError } from './errors.js';

/**
 * How the client waits between reconnect attempts. `attempt` counts consecutive failures since
 * the last successful `connected` (1 for the first retry). After `maxAttempts` retries the client
 * gives up and moves to the `disconnected` state.
 */
export type ReconnectOptions =
  | { strategy: 'immediate'; maxAttempts?: number }
  | {
      strategy: 'exponential';
      /** First ceiling in ms (default 500). */
      initialDelay?: number;
      /** Largest ceiling in ms (default 20 000). */
      maxDelay?: number;
      /** Growth per attempt (default 2). */
      factor?: number;
      /** `full`: a uniform random delay in [0, ceiling] (default); `none`: exactly the ceiling. */
      jitter?: 'full' | 'none';
      maxAttempts?: number;
    }
  | { strategy: 'fixed'; /** ms between attempts (default 1 000). */ delay?: number; maxAttempts?: number };

export interface BackoffPolicy {
  readonly strategy: ReconnectOptions['strategy'];
  readonly maxAttempts: number;
  /** The longest delay this policy ever returns (ms). */
  readonly maxDelay: number;
  /** Delay in ms before retry number `attempt` (1-based), or `null` once attempts are exhausted. */
  delay(attempt: number): number | null;
}

/** Default: exponential from 500 ms doubling to 20 s with full jitter, retrying forever. */
export const DEFAULT_RECONNECT: ReconnectOptions = { strategy: 'exponential' };
/** `immediate` retries back to back, so it stops after this many attempts unless told otherwise. */
export const IMMEDIATE_DEFAULT_MAX_ATTEMPTS = 10;

function invalid(name: string, rule: string): HeraldError {
  return new HeraldError(ClientErrorCode.INVALID_OPTION, `option "${name}" ${rule}`);
}

function num(value: unknown, name: string, fallback: number, min: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    !Number.isNaN(value) &&
    value >= min &&
    (Number.isFinite(value) || (allowInfinity && value === Infinity));
  if (!ok) throw invalid(name, `must be a number >= ${min}${allowInfinity ? ' (or Infinity)' : ''}, got ${String(value)}`);
  return value;
}

function attempts(value: unknown, fallback: number): number {
  const n = num(value, 'reconnect.maxAttempts', fallback, 0, true);
  if (n !== Infinity && !Number.isInteger(n)) throw invalid('reconnect.maxAttempts', 'must be an integer');
  return n;
}

/** Validates reconnect options and builds a policy; throws HeraldError(invalid_option) naming the option. */
export function createBackoff(options: ReconnectOptions = DEFAULT_RECONNECT, random: () => number = Math.random): BackoffPolicy {
  if (typeof options !== 'object' || options === null) throw invalid('reconnect', 'must be an object');
  const known = ['strategy', 'maxAttempts', 'initialDelay', 'maxDelay', 'factor', 'jitter', 'delay'];
  for (const key of Object.keys(options)) if (!known.includes(key)) throw invalid(`reconnect.${key}`, 'is not a known option');
  switch (options.strategy) {
    case 'immediate': {
      const maxAttempts = attempts(options.maxAttempts, IMMEDIATE_DEFAULT_MAX_ATTEMPTS);
      return { strategy: 'immediate', maxAttempts, maxDelay: 0, delay: (n) => (n > maxAttempts ? null : 0) };
    }
    case 'fixed': {
      const maxAttempts = attempts(options.maxAttempts, Infinity);
      const fixed = num(options.delay, 'reconnect.delay', 1000, 0);
      return { strategy: 'fixed', maxAttempts, maxDelay: fixed, delay: (n) => (n > maxAttempts ? null : fixed) };
    }
    case 'exponential': {
      const maxAttempts = attempts(options.maxAttempts, Infinity);
      const initial = num(options.initialDelay, 'reconnect.initialDelay', 500, 1);
      const maxDelay = num(options.maxDelay, 'reconnect.maxDelay', 20_000, 0);
      if (maxDelay < initial) throw invalid('reconnect.maxDelay', `must be >= reconnect.initialDelay (${initial})`);
      const factor = num(options.factor, 'reconnect.factor', 2, 1);
      const jitter = options.jitter ?? 'full';
      if (jitter !== 'full' && jitter !== 'none') throw invalid('reconnect.jitter', 'must be "full" or "none"');
      return {
        strategy: 'exponential',
        maxAttempts,
        maxDelay,
        delay(n) {
          if (n > maxAttempts) return null;
          const ceiling = Math.min(maxDelay, initial * Math.pow(factor, Math.max(0, n - 1)));
          return jitter === 'full' ? Math.floor(random() * ceiling) : ceiling;
        },
      };
    }
    default:
      throw invalid('reconnect.strategy', `must be "immediate", "exponential" or "fixed", got ${String((options as { strategy?: unknown }).strategy)}`);
  }
}
