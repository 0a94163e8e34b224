/**
 * Reachability checks for the external services the engine tests need. When a service is down,
 * its tests are skipped with a loud warning saying what to start — except under CI=true, where a
 * missing service is a failure: CI must never go green by silently testing nothing.
 */
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';

export const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function reachable(url: string, defaultPort: number, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port || defaultPort);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function requireService(what: string, url: string, defaultPort: number, howToStart: string): Promise<boolean> {
  if (await reachable(url, defaultPort)) return true;
  const message = `${what} is not reachable at ${url}: ${howToStart}`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing instead of skipping)`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING ${what} TESTS — ${message}\n${bar}\n`);
  return false;
}

/** True when Redis answers; false (after a loud warning) when it does not; throws under CI=true. */
export function requireRedis(): Promise<boolean> {
  return requireService('Redis', REDIS_URL, 6379, 'start one with `redis-server` or `docker run -p 6379:6379 redis:7` (or set HERALD_TEST_REDIS_URL)');
}

/** Same for NATS with JetStream enabled. */
export function requireNats(): Promise<boolean> {
  return requireService('NATS', NATS_URL, 4222, 'start one with `nats-server -js` or `docker run -p 4222:4222 nats:2 -js` (or set HERALD_TEST_NATS_URL)');
}

/** A key/subject prefix no other test run shares. */
export function uniquePrefix(base: string): string {
  return `${base}${process.pid.toString(36)}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** Deletes every Redis key under a prefix (SCAN, so it is safe on a shared server). */
export async function dropRedisKeys(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await r.del(...keys);
  } while (cursor !== '0');
  await r.quit();
}

/** Deletes every JetStream stream Herald makes under a NATS prefix: history, inbox and the presence bucket. */
export async function dropNatsStreams(prefix: string): Promise<void> {
  const nc = await natsConnect({ servers: NATS_URL });
  const jsm = await nc.jetstreamManager();
  for (const name of [`${prefix}_history`, `${prefix}_inbox`, `KV_${prefix}_presence`, `KV_${prefix}_idem`, `${prefix}_webhooks`, `${prefix}_webhooks_dead`, `KV_${prefix}_chpres`, `KV_${prefix}_chpres_live`]) {
    await jsm.streams.delete(name).catch(() => undefined);
  }
  await nc.close();
}

/**
 * The title prefix of a case that needs several nodes sharing one store or bus: on the single-node
 * engines (memory, SQLite) it is skipped, and the skip says why.
 */
export const SKIP_ONE_NODE = '[distributed engines only: the memory and SQLite engines are one node] ';
