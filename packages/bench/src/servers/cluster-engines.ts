/**
 * The shared backends a Herald cluster target runs on: Redis (`herald-redis-<n>`) and NATS with
 * JetStream (`herald-nats-<n>`). Each start gets a key prefix / stream prefix of its own, so runs
 * never see each other's state (or another test's on the same broker), and that state is deleted
 * when the cluster stops.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';

/** The Redis the Redis cluster targets use. */
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The NATS server (JetStream on) the NATS cluster targets use. */
export const BENCH_NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';

/** Where a cluster's nodes talk to each other: what a scenario needs to watch their control bus. */
export interface ClusterBus {
  type: 'redis' | 'nats';
  url: string;
  prefix: string;
}

/** One start's backend: the `engine` section every node gets, its broker process, and its cleanup. */
export interface ClusterEngine {
  bus: ClusterBus;
  engineConfig: Record<string, unknown>;
  /** The broker's process on this machine (measured apart from the nodes), if found. */
  brokerPid: number | undefined;
  /** Deletes what the start left on the broker; logs, never throws. */
  drop(log: (line: string) => void): Promise<void>;
}

/** Unique prefix of one benchmark start (NATS prefixes allow `[A-Za-z0-9_-]` only). */
export function benchPrefix(): string {
  return `herald-bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** The pid of the local process named exactly `name` (`pgrep -x`; the first when several run), or undefined. */
export function processPid(name: string): number | undefined {
  try {
    const pid = Number(execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Deletes every key under `prefix:` (SCAN + DEL through redis-cli); returns how many. */
export function deleteRedisKeys(redisUrl: string, prefix: string): number {
  const keys = execFileSync('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${prefix}:*`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) execFileSync('redis-cli', ['-u', redisUrl, 'DEL', ...keys.slice(i, i + 500)], { stdio: 'ignore' });
  return keys.length;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function redisClusterEngine(url = BENCH_REDIS_URL): ClusterEngine {
  const prefix = benchPrefix();
  return {
    bus: { type: 'redis', url, prefix },
    engineConfig: { type: 'redis', redis: { url, prefix } },
    brokerPid: processPid('redis-server'),
    drop: async (log) => {
      try {
        log(`deleted ${deleteRedisKeys(url, prefix)} redis keys under ${prefix}:`);
      } catch (error) {
        log(`could not delete redis keys under ${prefix}: ${message(error)}`);
      }
    },
  };
}

/** Deletes every JetStream stream whose name carries `prefix` (history, inbox, the KV buckets); returns how many. */
export async function deleteNatsStreams(url: string, prefix: string): Promise<number> {
  const nc = await connect({ servers: url, name: 'herald-bench-cleanup' });
  try {
    const jsm = await nc.jetstreamManager();
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (name.startsWith(`${prefix}_`) || name.startsWith(`KV_${prefix}_`)) names.push(name);
    for (const name of names) await jsm.streams.delete(name);
    return names.length;
  } finally {
    await nc.close();
  }
}

export function natsClusterEngine(url = BENCH_NATS_URL): ClusterEngine {
  const prefix = benchPrefix().replace(/[^A-Za-z0-9_-]/g, '_');
  return {
    bus: { type: 'nats', url, prefix },
    engineConfig: { type: 'nats', nats: { servers: [url], prefix } },
    brokerPid: processPid('nats-server'),
    drop: async (log) => {
      try {
        log(`deleted ${await deleteNatsStreams(url, prefix)} JetStream streams of ${prefix}`);
      } catch (error) {
        log(`could not delete the JetStream streams of ${prefix}: ${message(error)}`);
      }
    },
  };
}
