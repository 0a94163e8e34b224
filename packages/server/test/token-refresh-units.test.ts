/**
 * The expiry schedule of token-refresh.ts on a fake clock: when the refresh hook is asked, how an
 * unavailable backend is asked again, when an unrefreshed connection is closed, and that a
 * connection's timer goes with it. The same behaviour over real sockets is in token-refresh.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FastifyBaseLogger } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import type { Identity } from '../src/auth.js';
import { ChannelPatterns } from '../src/channels.js';
import { HeraldError } from '../src/errors.js';
import type { Session } from '../src/session.js';
import { TokenRefresh } from '../src/token-refresh.js';

const log = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} } as unknown as FastifyBaseLogger;

function identity(expiresAt: number | undefined): Identity {
  return { user: 'u', expiresAt, subscribe: new ChannelPatterns(['*']), publish: new ChannelPatterns([]), tags: {} };
}

/** What TokenRefresh uses of a session, recording closes. */
function standIn(expiresAt: number | undefined) {
  const s = {
    id: 'c1',
    user: 'u',
    open: true,
    identity: identity(expiresAt),
    closes: [] as Array<{ code: number; at: number }>,
    subscribedChannels: () => [][Symbol.iterator](),
    reauthenticate(next: Identity) {
      s.identity = next;
    },
    close(code: number) {
      s.closes.push({ code, at: Date.now() });
      s.open = false;
    },
  };
  return s;
}

function refresher(hook?: { aheadMs: number; refresh(session: Session): Promise<Identity> }, toleranceMs?: number) {
  return new TokenRefresh({
    ...(toleranceMs !== undefined ? { toleranceMs } : {}),
    verifier: { verify: async () => identity(undefined) },
    access: { canRead: () => true },
    hub: { retag: (_s, change) => change() },
    unsubscribe: () => false,
    hook,
    send: () => {},
    log,
  });
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  vi.setSystemTime(1_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('token expiry schedule', () => {
  it('closes an unrefreshed connection with 4006 exactly at expiry; forget() cancels', async () => {
    const t = refresher();
    const s = standIn(1_000 + 60); // 60 s from now, in seconds
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(s.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.closes).toEqual([{ code: 4006, at: 1_060_000 }]);
    const other = standIn(1_060 + 10);
    t.track(other as unknown as Session);
    t.forget(other as unknown as Session);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(other.closes).toEqual([]);
  });

  it('keeps a connection until expiry plus the clock tolerance its token was accepted with', async () => {
    const t = refresher(undefined, 5000);
    // Accepted 2 s after its exp, inside the 5 s tolerance: it lives 3 s more, not one turn.
    const late = standIn(1_000 - 2);
    t.track(late as unknown as Session);
    await vi.advanceTimersByTimeAsync(2_999);
    expect(late.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(late.closes).toEqual([{ code: 4006, at: 1_003_000 }]);
    const s = standIn(1_003 + 60); // now is 1_003 s
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(64_999);
    expect(s.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.closes).toEqual([{ code: 4006, at: 1_068_000 }]);
  });

  it('with a clock tolerance, still asks the refresh hook aheadMs before exp itself', async () => {
    const asked: number[] = [];
    const t = refresher({ aheadMs: 15_000, refresh: async () => (asked.push(Date.now()), identity(Math.floor(Date.now() / 1000) + 60)) }, 5000);
    const s = standIn(1_000 + 60);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(45_000);
    expect(asked).toEqual([1_045_000]);
  });

  it('asks the refresh hook aheadMs before expiry and starts over with the new expiry', async () => {
    const asked: number[] = [];
    const t = refresher({ aheadMs: 15_000, refresh: async () => (asked.push(Date.now()), identity(Math.floor(Date.now() / 1000) + 60)) });
    const s = standIn(1_000 + 60);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(200_000);
    // 45 s in, then 45 s after each new 60 s expiry.
    expect(asked.slice(0, 3)).toEqual([1_045_000, 1_090_000, 1_135_000]);
    expect(s.closes).toEqual([]);
  });

  it('asks an unavailable backend again every 2 s, then closes at expiry', async () => {
    const asked: number[] = [];
    const t = refresher({ aheadMs: 5000, refresh: async () => (asked.push(Date.now()), Promise.reject(new HeraldError(ErrorCode.BACKEND_UNAVAILABLE))) });
    const s = standIn(1_000 + 10);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(asked).toEqual([1_005_000, 1_007_000, 1_009_000]);
    expect(s.closes).toEqual([{ code: 4006, at: 1_010_000 }]);
  });

  it('a refusal closes with 4006 at once', async () => {
    const t = refresher({ aheadMs: 5000, refresh: () => Promise.reject(new HeraldError('revoked', 'no', undefined, false)) });
    const s = standIn(1_000 + 10);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.closes).toEqual([{ code: 4006, at: 1_005_000 }]);
  });

  it('an expiry past setTimeout’s range is checked again instead of firing early', async () => {
    const t = refresher();
    const s = standIn(1_000 + 40 * 86_400); // 40 days
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(30 * 86_400_000);
    expect(s.closes).toEqual([]);
    await vi.advanceTimersByTimeAsync(10 * 86_400_000);
    expect(s.closes).toEqual([{ code: 4006, at: 1_000_000 + 40 * 86_400_000 }]);
  });

  it('a backend that answers without moving the expiry is asked again only every 2 s, and the connection closes at expiry', async () => {
    const asked: number[] = [];
    // Always the same expiry (or one already past): a loop of immediate asks before the fix.
    const t = refresher({ aheadMs: 5000, refresh: async () => (asked.push(Date.now()), identity(1_000 + 10)) });
    const s = standIn(1_000 + 10);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(asked).toEqual([1_005_000, 1_007_000, 1_009_000]);
    expect(s.closes).toEqual([{ code: 4006, at: 1_010_000 }]);
  });

  it('an answer whose expiry is already past closes the connection with 4006', async () => {
    const t = refresher({ aheadMs: 5000, refresh: async () => identity(1) });
    const s = standIn(1_000 + 10);
    t.track(s as unknown as Session);
    await vi.advanceTimersByTimeAsync(5001); // the close is on the turn after the answer
    expect(s.closes.map((c) => c.code)).toEqual([4006]);
    expect(s.closes[0]!.at).toBeLessThanOrEqual(1_005_001);
  });
});
