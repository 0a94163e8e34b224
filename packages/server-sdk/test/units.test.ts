/** Constructor and argument validation, the Retry-After parser, the SDK code list: no server needed. */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, HeraldError, HeraldServerClient, ServerSdkErrorCode } from '@herald/server';
import type { HeraldServerClientOptions } from '@herald/server';
import { HttpCaller, retryAfter } from '../src/http.js';
import { resolveOptions } from '../src/options.js';
import type { FetchLike } from '../src/options.js';

const good = { url: 'http://127.0.0.1:1', apiKey: 'key-12345678' };

function refused(options: unknown): HeraldError {
  try {
    new HeraldServerClient(options as HeraldServerClientOptions);
  } catch (err) {
    expect(err).toBeInstanceOf(HeraldError);
    return err as HeraldError;
  }
  throw new Error('constructor accepted bad options');
}

describe('options', () => {
  it.each([
    [null, 'options'],
    [{ ...good, colour: 1 }, 'colour'],
    [{ apiKey: good.apiKey }, 'url'],
    [{ ...good, url: 'ws://127.0.0.1:8080' }, 'url'],
    [{ ...good, url: 'not a url' }, 'url'],
    [{ ...good, url: 'http://h:1/?x=1' }, 'url'],
    [{ url: good.url }, 'apiKey'],
    [{ ...good, apiKey: 'short' }, 'apiKey'],
    [{ ...good, timeoutMs: 0 }, 'timeoutMs'],
    [{ ...good, timeoutMs: 1.5 }, 'timeoutMs'],
    [{ ...good, retries: 3 }, 'retries'],
    [{ ...good, retries: { attempts: 0 } }, 'retries.attempts'],
    [{ ...good, retries: { tries: 2 } }, 'retries.tries'],
    [{ ...good, retries: { initialDelayMs: -1 } }, 'retries.initialDelayMs'],
    [{ ...good, retries: { initialDelayMs: 500, maxDelayMs: 100 } }, 'retries.maxDelayMs'],
    [{ ...good, fetch: 'fetch' }, 'fetch'],
  ])('refuses %j naming %s', (options, name) => {
    const err = refused(options);
    expect(err.code).toBe('invalid_option');
    expect(err.origin).toBe('sdk');
    expect(err.message).toContain(`"${name}"`);
  });

  it('never repeats the API key in an error', () => {
    expect(refused({ ...good, apiKey: 'hunter2 secret' }).message).not.toContain('hunter2');
  });

  it('accepts a valid set and drops a trailing slash from the URL', () => {
    const client = new HeraldServerClient({ ...good, url: 'https://herald.internal:8443/', timeoutMs: 500, retries: { attempts: 1 } });
    expect(client.url).toBe('https://herald.internal:8443');
    expect(new HeraldServerClient({ ...good, retries: false })).toBeInstanceOf(HeraldServerClient);
  });

  it('refuses bad arguments before sending anything', async () => {
    const client = new HeraldServerClient({ ...good, fetch: () => Promise.reject(new Error('must not be called')) });
    await expect(client.publishBatch([])).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('"messages"') });
    await expect(client.publish({ channel: 'c', eventType: 'x', payload: 1, msgId: '' })).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('"message.msgId"') });
    await expect(client.requestClient('conn', 'm', null, 0)).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('"timeoutMs"') });
    await expect(client.userConnections('')).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('"user"') });
  });
});

describe('retryAfter', () => {
  const err = (details?: unknown) => new HeraldError('rate_limited', 'x', { temporary: true, details });

  it('prefers the body\'s retryAfterMs, then Retry-After in seconds or as an HTTP date', () => {
    expect(retryAfter(err({ retryAfterMs: 12.2 }), '5')).toBe(13);
    expect(retryAfter(err(), '5')).toBe(5000);
    const now = Date.parse('2026-12-03T12:00:00Z');
    expect(retryAfter(err(), 'Thu, 03 Dec 2026 12:00:02 GMT', now)).toBe(2000);
    expect(retryAfter(err(), 'Thu, 03 Dec 2026 11:00:00 GMT', now)).toBe(0);
    expect(retryAfter(err(), 'soon')).toBeUndefined();
    expect(retryAfter(err(), null)).toBeUndefined();
  });
});

describe('SDK error codes', () => {
  it('never collide with the server\'s codes and are all documented in docs/server-sdk.md', () => {
    const server = new Set<string>(Object.values(ErrorCode));
    const sdk = Object.values(ServerSdkErrorCode);
    expect(sdk.filter((c) => server.has(c))).toEqual([]);
    const doc = readFileSync(new URL('../../../docs/server-sdk.md', import.meta.url), 'utf8');
    // request_timeout is the server's code, reused on purpose for an attempt's own deadline.
    for (const code of [...sdk, ErrorCode.REQUEST_TIMEOUT]) expect(doc, code).toMatch(new RegExp(`^\\| \`${code}\` \\|`, 'm'));
  });
});

describe('backoff schedule', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits random × min(maxDelayMs, initialDelayMs × 2^(try − 1)) between tries, then gives up', async () => {
    vi.useFakeTimers();
    const triedAt: number[] = [];
    // A transport that always fails as a refused connection does (undici's shape), so only the schedule is under test.
    const refuse: FetchLike = () => {
      triedAt.push(Date.now());
      return Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' } }));
    };
    const options = resolveOptions({ url: 'http://127.0.0.1:1', apiKey: 'key-12345678', fetch: refuse, retries: { attempts: 5, initialDelayMs: 100, maxDelayMs: 300 } });
    const caller = new HttpCaller(options, () => 0.5);
    const start = Date.now();
    const outcome = caller.call({ method: 'GET', path: '/api/v1/stats', retry: 'idempotent' }).catch((err: unknown) => err);
    await vi.runAllTimersAsync();
    const err = (await outcome) as HeraldError;
    expect(err).toMatchObject({ code: 'connection_failed', temporary: true, attempts: 5 });
    expect(triedAt.map((t) => t - start)).toEqual([0, 50, 150, 300, 450]);
  });

  it('a call that must not run twice is not repeated after a connection failure', async () => {
    let tries = 0;
    const refuse: FetchLike = () => {
      tries++;
      return Promise.reject(new TypeError('fetch failed'));
    };
    const caller = new HttpCaller(resolveOptions({ url: 'http://127.0.0.1:1', apiKey: 'key-12345678', fetch: refuse }));
    await expect(caller.call({ method: 'POST', path: '/api/v1/connections/c/request', body: {}, retry: 'once' })).rejects.toMatchObject({ code: 'connection_failed', attempts: 1 });
    expect(tries).toBe(1);
  });
});
