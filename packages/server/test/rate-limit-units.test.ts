/**
 * Token buckets and the rate-limit policy on an injected clock: refill, refusal without taking a
 * token, bounded keyed maps, which buckets a frame is charged to, and the abuse window.
 */
import { describe, expect, it } from 'vitest';
import { resolveConfig, type DeepPartial, type HeraldConfig } from '../src/config.js';
import { RateLimits } from '../src/rate-limit/rate-limits.js';
import { bucketSpec, KeyedBuckets, TokenBucket } from '../src/rate-limit/token-bucket.js';

function fakeClock(start = 1000) {
  const clock = () => clock.now;
  clock.now = start;
  return clock;
}

describe('TokenBucket', () => {
  it('starts full, refuses past the burst with the time to the next token, and refills at perSecond', () => {
    const spec = bucketSpec({ perSecond: 10, burst: 3 })!;
    const b = new TokenBucket(spec, 0);
    for (let i = 0; i < 3; i++) {
      expect(b.wait(0)).toBe(0);
      b.take(0);
    }
    expect(b.wait(0)).toBe(100);
    expect(b.wait(40)).toBe(60);
    expect(b.wait(99)).toBe(1);
    expect(b.wait(100)).toBe(0);
    b.take(100);
    expect(b.wait(100)).toBe(100);
    // Refills no higher than the burst.
    expect(b.full(10_000)).toBe(true);
    for (let i = 0; i < 3; i++) b.take(10_000);
    expect(b.wait(10_000)).toBe(100);
  });

  it('treats perSecond 0 as no limit', () => {
    expect(bucketSpec({ perSecond: 0, burst: 5 })).toBeUndefined();
    expect(bucketSpec(undefined)).toBeUndefined();
  });
});

describe('KeyedBuckets', () => {
  it('keeps one bucket per key; a refused take takes nothing', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets(bucketSpec({ perSecond: 1, burst: 2 })!, 100, clock);
    expect(k.take('a')).toBe(0);
    expect(k.take('a')).toBe(0);
    expect(k.take('a')).toBe(1000);
    expect(k.take('b')).toBe(0);
    clock.now += 500;
    expect(k.take('a')).toBe(500);
    clock.now += 500;
    expect(k.take('a')).toBe(0);
  });

  it('drops idle buckets once they have refilled', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets(bucketSpec({ perSecond: 1, burst: 2 })!, 100, clock, 1000);
    for (let i = 0; i < 50; i++) {
      k.take(`key-${i}`);
      k.take(`key-${i}`);
    }
    expect(k.size).toBe(50);
    clock.now += 1000; // one token back: not full yet, kept
    k.take('other');
    k.take('other');
    expect(k.size).toBe(51);
    clock.now += 1000; // the first 50 are full now and swept at the next take; 'other' is not
    k.take('late');
    expect(k.size).toBe(2);
  });

  it('never holds more than maxKeys under churn, and keeps limiting the newest keys', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets(bucketSpec({ perSecond: 0.001, burst: 1 })!, 100, clock);
    for (let i = 0; i < 10_000; i++) {
      k.take(`churn-${i}`);
      expect(k.size).toBeLessThanOrEqual(100);
    }
    // The most recent keys are still held, with their buckets empty.
    expect(k.take('churn-9999')).toBeGreaterThan(0);
    expect(k.take('churn-9990')).toBeGreaterThan(0);
  });
});

function limits(overrides: DeepPartial<HeraldConfig> | Record<string, unknown>, clock: () => number): RateLimits {
  return new RateLimits(resolveConfig(overrides), undefined, clock);
}

const BIG = { perSecond: 1000, burst: 1000 };

describe('RateLimits', () => {
  it('charges a publish to the frames, connection and user buckets, and refuses with the longest wait', () => {
    const clock = fakeClock();
    const rl = limits({ rateLimits: { connection: { publish: { perSecond: 10, burst: 2 }, frames: BIG }, user: { publish: { perSecond: 1, burst: 3 } } } }, clock);
    const a = { user: 'ann' };
    const b = { user: 'ann' };
    expect(rl.frame(a, { type: 'publish', channel: 'x' })).toBeUndefined();
    expect(rl.frame(a, { type: 'publish', channel: 'x' })).toBeUndefined();
    expect(rl.frame(a, { type: 'publish', channel: 'x' })).toEqual({ limit: 'connection.publish', retryAfterMs: 100, abusive: false });
    // The user's third token is still there for her other connection; then the user bucket is empty.
    expect(rl.frame(b, { type: 'publish', channel: 'x' })).toBeUndefined();
    expect(rl.frame(b, { type: 'publish', channel: 'x' })).toEqual({ limit: 'user.publish', retryAfterMs: 1000, abusive: false });
    // Both buckets empty for a: the longer wait is reported.
    expect(rl.frame(a, { type: 'publish', channel: 'x' })).toMatchObject({ limit: 'user.publish', retryAfterMs: 1000 });
    // Anonymous connections have no user bucket.
    const anon1 = { user: '' };
    const anon2 = { user: '' };
    for (const s of [anon1, anon1, anon2, anon2]) expect(rl.frame(s, { type: 'publish', channel: 'x' })).toBeUndefined();
  });

  it('counts every frame but ack against connection.frames', () => {
    const clock = fakeClock();
    const rl = limits({ rateLimits: { connection: { frames: { perSecond: 1, burst: 2 } } } }, clock);
    const s = { user: 'u' };
    for (let i = 0; i < 100; i++) expect(rl.frame(s, { type: 'ack' })).toBeUndefined();
    expect(rl.frame(s, { type: 'ping' })).toBeUndefined();
    expect(rl.frame(s, { type: 'response' })).toBeUndefined();
    expect(rl.frame(s, { type: 'ping' })).toMatchObject({ limit: 'connection.frames' });
  });

  it('lets a namespace replace the connection publish/subscribe bucket, for that namespace only', () => {
    const clock = fakeClock();
    const rl = limits({
      rateLimits: { connection: { publish: { perSecond: 1, burst: 1 }, subscribe: { perSecond: 1, burst: 1 } } },
      channels: { namespaces: { chat: { rateLimits: { publish: { perSecond: 1, burst: 3 } } }, free: { rateLimits: { publish: { perSecond: 0, burst: 1 } } } } },
    }, clock);
    const s = { user: '' };
    for (let i = 0; i < 3; i++) expect(rl.frame(s, { type: 'publish', channel: 'chat:a' })).toBeUndefined();
    expect(rl.frame(s, { type: 'publish', channel: 'chat:b' })).toMatchObject({ limit: 'namespace.publish' });
    expect(rl.frame(s, { type: 'publish', channel: 'news' })).toBeUndefined();
    expect(rl.frame(s, { type: 'publish', channel: 'news' })).toMatchObject({ limit: 'connection.publish' });
    for (let i = 0; i < 20; i++) expect(rl.frame(s, { type: 'publish', channel: 'free:x' })).toBeUndefined();
    // chat sets no subscribe bucket: the connection's applies there.
    expect(rl.frame(s, { type: 'subscribe', channel: 'chat:a' })).toBeUndefined();
    expect(rl.frame(s, { type: 'unsubscribe', channel: 'chat:a' })).toMatchObject({ limit: 'connection.subscribe' });
  });

  it('reports a connection as abusive on the (maxRejected + 1)-th refusal within windowMs', () => {
    const clock = fakeClock();
    const rl = limits({ rateLimits: { connection: { rpc: { perSecond: 0.001, burst: 1 } }, abuse: { maxRejected: 3, windowMs: 1000 } } }, clock);
    const rpc = { type: 'request' };
    const slow = { user: '' };
    expect(rl.frame(slow, rpc)).toBeUndefined();
    // Refusals 400 ms apart: never more than three within one second.
    for (let i = 0; i < 10; i++) {
      expect(rl.frame(slow, rpc)).toMatchObject({ limit: 'connection.rpc', abusive: false });
      clock.now += 400;
    }
    // Four within one second: the fourth is abusive.
    const fast = { user: '' };
    expect(rl.frame(fast, rpc)).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      expect(rl.frame(fast, rpc)?.abusive).toBe(false);
      clock.now += 300;
    }
    expect(rl.frame(fast, rpc)?.abusive).toBe(true);
  });

  it('does nothing with rateLimits.enabled false', () => {
    const rl = limits({ rateLimits: { enabled: false, connection: { publish: { perSecond: 1, burst: 1 } }, ip: { handshakes: { perSecond: 1, burst: 1 } } } }, fakeClock());
    const s = { user: 'u' };
    for (let i = 0; i < 10; i++) {
      expect(rl.frame(s, { type: 'publish', channel: 'x' })).toBeUndefined();
      expect(rl.handshake('1.2.3.4')).toBeUndefined();
    }
  });

  it('keys HTTP limits by IP, API key, and poll user (IP for anonymous)', () => {
    const rl = limits({ rateLimits: { ip: { handshakes: { perSecond: 1, burst: 1 } }, apiKey: { requests: { perSecond: 1, burst: 1 } }, poll: { requests: { perSecond: 1, burst: 1 } } } }, fakeClock());
    expect(rl.handshake('1.2.3.4')).toBeUndefined();
    expect(rl.handshake('1.2.3.4')).toEqual({ limit: 'ip.handshakes', retryAfterMs: 1000 });
    expect(rl.handshake('1.2.3.5')).toBeUndefined();
    expect(rl.apiRequest('key-1')).toBeUndefined();
    expect(rl.apiRequest('key-1')).toMatchObject({ limit: 'apiKey.requests' });
    expect(rl.pollRequest('ann', '1.2.3.4')).toBeUndefined();
    expect(rl.pollRequest('ann', '9.9.9.9')).toMatchObject({ limit: 'poll.requests' });
    expect(rl.pollRequest('', '1.2.3.4')).toBeUndefined();
    expect(rl.pollRequest('', '1.2.3.4')).toMatchObject({ limit: 'poll.requests' });
    expect(rl.pollRequest('bob', '1.2.3.4')).toBeUndefined();
  });
});
