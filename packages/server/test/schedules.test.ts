/**
 * The server's own schedules on fake time: the at-least-once retransmission backoff (and when
 * retries run out) and the heartbeat's ping / pong-check / close sequence. Both run on the timer
 * wheel's interval, so `vi.advanceTimersByTime` drives them to the millisecond, in-process, with
 * stand-in sessions that carry only what these modules read — no sockets, no waiting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Envelope } from '@herald/protocol';
import { resolveConfig } from '../src/config.js';
import { ReliableDelivery } from '../src/delivery/reliable-delivery.js';
import { MemoryInbox } from '../src/engine/memory/inbox.js';
import { Heartbeat, type TimeoutReason } from '../src/heartbeat.js';
import type { Session } from '../src/session.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(0);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** A connection as these modules see it. */
function standIn(id: string, user = ''): Session {
  return { id, user, state: 'connected', open: true, backlogBytes: 0, room: 1 << 20 } as unknown as Session;
}

const envelope = (msgId: string): Envelope => ({ msgId, timestamp: Date.now(), source: 'test', eventType: 'x', version: '1.0', payload: null });

describe('at-least-once retransmission schedule', () => {
  const RETRY = { ackTimeoutMs: 1000, retry: { initialDelayMs: 500, multiplier: 2, maxDelayMs: 3000, jitter: 0 }, maxAttempts: 5 };

  function delivery(overrides: object = {}) {
    const sent: Array<{ msgId: string; at: number }> = [];
    const exhausted: Array<{ msgId: string; at: number }> = [];
    const cfg = resolveConfig({ delivery: { ...RETRY, ...overrides } });
    const d = new ReliableDelivery(cfg, {
      inbox: new MemoryInbox(),
      userSessions: () => undefined,
      onExhausted: (item) => void exhausted.push({ msgId: item.msgId, at: Date.now() }),
      onInboxDrop: () => {},
      log: { warn: () => {}, error: () => {} },
      write: (_session, frame) => (sent.push({ msgId: frame.toString(), at: Date.now() }), true),
    });
    d.start();
    const deliver = (session: Session, msgId: string) => d.send(session, msgId, Buffer.from(msgId), envelope(msgId), 'c', false);
    return { d, sent, exhausted, deliver };
  }

  it('waits ackTimeout plus a doubling backoff capped at maxDelay, then gives up after maxAttempts', () => {
    const { d, sent, exhausted, deliver } = delivery();
    deliver(standIn('s1'), 'm1');
    // Gaps: 1000 + 500, 1000 + 1000, 1000 + 2000, 1000 + min(4000, 3000).
    const expected = [0, 1500, 3500, 6500, 10_500];
    vi.advanceTimersByTime(1499);
    expect(sent.map((s) => s.at)).toEqual([0]);
    vi.advanceTimersByTime(20_000);
    expect(sent.map((s) => s.at)).toEqual(expected);
    expect(sent.every((s) => s.msgId === 'm1')).toBe(true); // the same frame each time
    // After the last transmission it waits one more round for an ACK, then counts it exhausted.
    expect(exhausted).toEqual([{ msgId: 'm1', at: 10_500 + 1000 + 3000 }]);
    d.stop();
  });

  it('an ACK cancels what was still scheduled, whichever attempt it follows', () => {
    const { d, sent, exhausted, deliver } = delivery();
    const s = standIn('s1');
    deliver(s, 'early');
    deliver(s, 'late');
    d.ack(s, ['early']);
    vi.advanceTimersByTime(3500); // 'late' went out at 0, 1500 and 3500
    d.ack(s, ['late']);
    vi.advanceTimersByTime(60_000);
    expect(sent.filter((x) => x.msgId === 'early').map((x) => x.at)).toEqual([0]);
    expect(sent.filter((x) => x.msgId === 'late').map((x) => x.at)).toEqual([0, 1500, 3500]);
    expect(exhausted).toEqual([]);
    d.stop();
  });

  it('a delivery held back by maxInFlight starts its own schedule when it is let through', () => {
    const { d, sent, deliver } = delivery({ maxInFlight: 1 });
    const s = standIn('s1');
    deliver(s, 'first');
    deliver(s, 'second'); // waits for a free slot
    vi.advanceTimersByTime(2000);
    expect(sent.map((x) => x.msgId)).toEqual(['first', 'first']);
    d.ack(s, ['first']);
    vi.advanceTimersByTime(1500);
    expect(sent.filter((x) => x.msgId === 'second').map((x) => x.at)).toEqual([2000, 3500]);
    d.stop();
  });

  it('jitter spreads each wait by at most ±jitter of the backoff, never the ACK timeout', () => {
    const { d } = delivery({ retry: { initialDelayMs: 1000, multiplier: 2, maxDelayMs: 8000, jitter: 0.25 } });
    const random = vi.spyOn(Math, 'random');
    const at = (r: number, attempt: number): number => {
      random.mockReturnValue(r);
      return d.delayAfter(attempt);
    };
    expect([at(0, 1), at(0.5, 1), at(1, 1)]).toEqual([1000 + 750, 1000 + 1000, 1000 + 1250]);
    expect([at(0, 3), at(1, 3)]).toEqual([1000 + 3000, 1000 + 5000]);
    expect([at(0, 10), at(1, 10)]).toEqual([1000 + 6000, 1000 + 10_000]); // the cap, then jitter
  });
});

describe('heartbeat schedule', () => {
  const CFG = { intervalMs: 1000, pongTimeoutMs: 400, maxMissed: 2 };

  function heartbeat(cfg = CFG) {
    const pings: number[] = [];
    const timeouts: Array<{ reason: TimeoutReason; at: number }> = [];
    const hb = new Heartbeat(cfg, {
      ping: () => void pings.push(Date.now()),
      timeout: (_s, reason) => void timeouts.push({ reason, at: Date.now() }),
    });
    hb.start();
    return { hb, pings, timeouts };
  }

  it('spreads the first ping over the second half of the interval', () => {
    const random = vi.spyOn(Math, 'random');
    const { hb, pings } = heartbeat();
    random.mockReturnValue(0);
    hb.connected(standIn('early'));
    random.mockReturnValue(0.999);
    hb.connected(standIn('late'));
    vi.advanceTimersByTime(1000);
    expect(pings).toEqual([500, 1000]);
    hb.stop();
  });

  it('pings once per interval while every ping is answered, and never closes', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { hb, pings, timeouts } = heartbeat();
    const s = standIn('s1');
    hb.connected(s);
    let answered = 0;
    for (let t = 0; t < 10_000; t += 50) {
      vi.advanceTimersByTime(50);
      if (pings.length > answered) {
        answered = pings.length;
        hb.alive(s); // the pong comes back at once
      }
    }
    expect(pings).toEqual([500, 1500, 2500, 3500, 4500, 5500, 6500, 7500, 8500, 9500]);
    expect(timeouts).toEqual([]);
    hb.stop();
  });

  it('closes after maxMissed unanswered pings, pongTimeout after the last one', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { hb, pings, timeouts } = heartbeat();
    hb.connected(standIn('silent'));
    vi.advanceTimersByTime(10_000);
    // The first miss is counted at 900 and the next ping still goes at the interval.
    expect(pings).toEqual([500, 1500]);
    expect(timeouts).toEqual([{ reason: 'pong', at: 1500 + 400 }]);
    hb.stop();
  });

  it('an answered ping resets the count of misses', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { hb, pings, timeouts } = heartbeat();
    const s = standIn('flaky');
    hb.connected(s);
    vi.advanceTimersByTime(1000); // ping at 500 missed (counted at 900)
    vi.advanceTimersByTime(550); // ping at 1500
    hb.alive(s); // answered
    vi.advanceTimersByTime(10_000); // 2500 missed, 3500 missed: closed at 3900
    expect(pings).toEqual([500, 1500, 2500, 3500]);
    expect(timeouts).toEqual([{ reason: 'pong', at: 3900 }]);
    hb.stop();
  });

  it('closes a connection that is not connected by its connect deadline, and forget() cancels it', () => {
    const { hb, timeouts } = heartbeat();
    const slow = standIn('slow');
    const quick = standIn('quick');
    (slow as { state: string }).state = 'connecting';
    (quick as { state: string }).state = 'connecting';
    hb.expectConnect(slow, 3000);
    hb.expectConnect(quick, 3000);
    hb.forget(quick); // it authenticated and its deadline was dropped
    vi.advanceTimersByTime(2999);
    expect(timeouts).toEqual([]);
    vi.advanceTimersByTime(10_000);
    expect(timeouts).toEqual([{ reason: 'connect', at: 3000 }]);
    hb.stop();
  });
});
