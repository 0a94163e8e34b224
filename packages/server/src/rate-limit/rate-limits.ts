/**
 * Which token buckets a request is charged to (`rateLimits.*` in the configuration; the policy is
 * described in docs/security.md). This module owns the rule "a request passes only if every bucket
 * it is charged to has a token, and a refused request takes no token": the callers — the frame
 * handler, the WebSocket gateway, the API and poll routes and the publish fast path — ask one
 * question each and turn a refusal into their own answer (an `error` frame or HTTP 429).
 *
 * Per connection: every frame but `ack` (`connection.frames`), and by kind `publish`,
 * `subscribe`/`unsubscribe` (`connection.*`, or the channel namespace's own bucket when
 * `channels.namespaces.<ns>.rateLimits` sets one) and `request` (`connection.rpc`). Per user on
 * this node: the same kinds, shared by the user's connections; anonymous connections have no user
 * and are limited per connection only. A connection refused more than `abuse.maxRejected` times
 * within `abuse.windowMs` is reported as abusive (the caller closes it with 4506).
 */
import type { Counter } from 'prom-client';
import { ErrorCode } from '@herald/protocol';
import { namespaceOf } from '../channels.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { bucketSpec, KeyedBuckets, monotonicClock, TokenBucket, type BucketSpec, type Clock } from './token-bucket.js';

export type LimitName =
  | 'connection.frames'
  | 'connection.publish'
  | 'connection.subscribe'
  | 'connection.rpc'
  | 'namespace.publish'
  | 'namespace.subscribe'
  | 'user.publish'
  | 'user.subscribe'
  | 'user.rpc'
  | 'ip.handshakes'
  | 'apiKey.requests'
  | 'poll.requests';

export interface Refusal {
  limit: LimitName;
  /** When the refused request would pass, if nothing else spends the tokens meanwhile. */
  retryAfterMs: number;
}

export interface FrameRefusal extends Refusal {
  /** More than `abuse.maxRejected` refusals within `abuse.windowMs`: close the connection. */
  abusive: boolean;
}

/** The part of a client frame the limits look at. */
export interface LimitedFrame {
  type: string;
  channel?: string;
}

/**
 * Keys held per keyed limit (users, IPs, API keys). A key is held only while its bucket is below
 * full, so this is the number of keys active within one refill period; what happens at the cap is
 * described on `KeyedBuckets`.
 */
export const MAX_KEYS_PER_LIMIT = 100_000;

export function rateLimitedError(refusal: Refusal): HeraldError {
  return new HeraldError(ErrorCode.RATE_LIMITED, `rate limit ${refusal.limit} reached; retry in ${refusal.retryAfterMs} ms`, {
    limit: refusal.limit,
    retryAfterMs: refusal.retryAfterMs,
  });
}

/** The HTTP `Retry-After` value (whole seconds, rounded up) of a `rate_limited` error, else undefined. */
export function retryAfterHeader(err: HeraldError): string | undefined {
  if (err.code !== ErrorCode.RATE_LIMITED) return undefined;
  const ms = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === 'number' ? String(Math.max(1, Math.ceil(ms / 1000))) : undefined;
}

type Kind = 'publish' | 'subscribe' | 'rpc';

function kindOf(frameType: string): Kind | undefined {
  switch (frameType) {
    case 'publish':
      return 'publish';
    case 'subscribe':
    case 'unsubscribe':
      return 'subscribe';
    // A presence read is a request answered from the engine, as costly as one.
    case 'request':
    case 'presence':
    case 'presence_stats':
      return 'rpc';
    default:
      return undefined;
  }
}

/** A namespace's replacement for a connection bucket: a spec, or null when it turns the limit off there. */
type NamespaceSpecs = Partial<Record<'publish' | 'subscribe', BucketSpec | null>>;

interface ConnectionState {
  frames: TokenBucket | undefined;
  kinds: Partial<Record<Kind, TokenBucket>>;
  /** Per-namespace replacements, created when first used (only configured namespaces). */
  namespaces: Map<string, Partial<Record<'publish' | 'subscribe', TokenBucket>>> | undefined;
  /** Times of the last `maxRejected` refusals, a ring; allocated at the first refusal. */
  rejected: Float64Array | undefined;
  nextRejected: number;
}

export class RateLimits {
  private readonly enabled: boolean;
  private readonly connection: { frames?: BucketSpec; publish?: BucketSpec; subscribe?: BucketSpec; rpc?: BucketSpec };
  private readonly namespaces = new Map<string, NamespaceSpecs>();
  private readonly users: Partial<Record<Kind, KeyedBuckets>> = {};
  private readonly handshakes: KeyedBuckets | undefined;
  private readonly apiKeys: KeyedBuckets | undefined;
  private readonly polls: KeyedBuckets | undefined;
  private readonly abuse: { maxRejected: number; windowMs: number };
  private readonly states = new WeakMap<object, ConnectionState>();

  constructor(
    config: Readonly<HeraldConfig>,
    private readonly counter: Counter<'limit'> | undefined,
    private readonly clock: Clock = monotonicClock,
  ) {
    const rl = config.rateLimits;
    this.enabled = rl.enabled;
    this.abuse = rl.abuse;
    this.connection = {
      frames: bucketSpec(rl.connection.frames),
      publish: bucketSpec(rl.connection.publish),
      subscribe: bucketSpec(rl.connection.subscribe),
      rpc: bucketSpec(rl.connection.rpc),
    };
    for (const [ns, entry] of Object.entries(config.channels.namespaces)) {
      const own = entry.rateLimits;
      if (!own) continue;
      const specs: NamespaceSpecs = {};
      if (own.publish) specs.publish = bucketSpec(own.publish) ?? null;
      if (own.subscribe) specs.subscribe = bucketSpec(own.subscribe) ?? null;
      this.namespaces.set(ns, specs);
    }
    const keyed = (spec: BucketSpec | undefined) => (spec ? new KeyedBuckets(spec, MAX_KEYS_PER_LIMIT, clock) : undefined);
    for (const kind of ['publish', 'subscribe', 'rpc'] as const) {
      const buckets = keyed(bucketSpec(rl.user[kind]));
      if (buckets) this.users[kind] = buckets;
    }
    this.handshakes = keyed(bucketSpec(rl.ip.handshakes));
    this.apiKeys = keyed(bucketSpec(rl.apiKey.requests));
    this.polls = keyed(bucketSpec(rl.poll.requests));
  }

  /**
   * Charges one client frame of `session` (an object that lives as long as the connection; its
   * `user` is '' for anonymous connections). Returns undefined when it may be acted on, or why not.
   */
  frame(session: { readonly user: string }, frame: LimitedFrame): FrameRefusal | undefined {
    if (!this.enabled || frame.type === 'ack') return undefined;
    const now = this.clock();
    let state = this.states.get(session);
    if (!state) {
      state = { frames: undefined, kinds: {}, namespaces: undefined, rejected: undefined, nextRejected: 0 };
      if (this.connection.frames) state.frames = new TokenBucket(this.connection.frames, now);
      this.states.set(session, state);
    }
    // Up to three buckets: every frame, the connection's (or namespace's) bucket for the kind,
    // and the user's. The longest wait is the one the client must honour.
    let wait = state.frames ? state.frames.wait(now) : 0;
    let limit: LimitName = 'connection.frames';
    let own: TokenBucket | undefined;
    let user: TokenBucket | undefined;
    const kind = kindOf(frame.type);
    if (kind) {
      const [bucket, name] = this.connectionBucket(state, kind, frame.channel, now);
      own = bucket;
      if (own) {
        const w = own.wait(now);
        if (w > wait) [wait, limit] = [w, name];
      }
      if (session.user) {
        user = this.users[kind]?.get(session.user, now);
        if (user) {
          const w = user.wait(now);
          if (w > wait) [wait, limit] = [w, `user.${kind}`];
        }
      }
    }
    if (wait === 0) {
      state.frames?.take(now);
      own?.take(now);
      user?.take(now);
      return undefined;
    }
    this.counter?.inc({ limit });
    return { limit, retryAfterMs: wait, abusive: this.recordRefusal(state, now) };
  }

  /** Charges one WebSocket upgrade from `ip` (the gateway's client address). */
  handshake(ip: string): Refusal | undefined {
    return this.charge(this.handshakes, ip, 'ip.handshakes');
  }

  /** Charges one `/api/v1` request (fastify route or publish fast path) made with a valid API key. */
  apiRequest(apiKey: string): Refusal | undefined {
    return this.charge(this.apiKeys, apiKey, 'apiKey.requests');
  }

  /** Charges one `/poll/v1` request: `user` for an authenticated client, else its IP. */
  pollRequest(user: string, ip: string): Refusal | undefined {
    return this.charge(this.polls, user ? `u:${user}` : `ip:${ip}`, 'poll.requests');
  }

  private charge(buckets: KeyedBuckets | undefined, key: string, limit: LimitName): Refusal | undefined {
    if (!this.enabled || !buckets) return undefined;
    const retryAfterMs = buckets.take(key);
    if (retryAfterMs === 0) return undefined;
    this.counter?.inc({ limit });
    return { limit, retryAfterMs };
  }

  private connectionBucket(state: ConnectionState, kind: Kind, channel: string | undefined, now: number): [TokenBucket | undefined, LimitName] {
    if (kind !== 'rpc' && channel !== undefined && this.namespaces.size > 0) {
      const ns = namespaceOf(channel);
      const specs = this.namespaces.get(ns);
      const spec = specs?.[kind];
      if (spec !== undefined) {
        if (spec === null) return [undefined, `namespace.${kind}`];
        state.namespaces ??= new Map();
        let buckets = state.namespaces.get(ns);
        if (!buckets) state.namespaces.set(ns, (buckets = {}));
        return [(buckets[kind] ??= new TokenBucket(spec, now)), `namespace.${kind}`];
      }
    }
    const spec = this.connection[kind];
    return [spec ? (state.kinds[kind] ??= new TokenBucket(spec, now)) : undefined, `connection.${kind}`];
  }

  /** Records a refusal; true when it is the (maxRejected + 1)-th within windowMs. */
  private recordRefusal(state: ConnectionState, now: number): boolean {
    const { maxRejected, windowMs } = this.abuse;
    const ring = (state.rejected ??= new Float64Array(maxRejected).fill(-Infinity));
    const oldest = ring[state.nextRejected]!;
    ring[state.nextRejected] = now;
    state.nextRejected = (state.nextRejected + 1) % maxRejected;
    return now - oldest < windowMs;
  }
}
