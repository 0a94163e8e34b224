/**
 * Servers under test: Herald (its CLI, `serve --config <file>`) and the comparison peers in
 * packages/bench/src/peers, each started as a child process on a free loopback port, optionally pinned.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drainOutput, portOpen, spawnNode, stopChild, waitForLine } from '../lib/child.js';
import { freePort } from '../lib/ports.js';
import { BENCH_API_KEY, BENCH_SECRET } from '../lib/token.js';
import type { Dialect } from '../loadgen/messages.js';
import { HERALD_BIN } from '../lib/herald-bin.js';
import { BENCH_REDIS_URL, natsClusterEngine, redisClusterEngine, type ClusterBus, type ClusterEngine } from './cluster-engines.js';

export { BENCH_REDIS_URL, deleteRedisKeys } from './cluster-engines.js';

export const SERVERS = ['herald', 'ws-plain', 'ws-preframed', 'socketio', 'ws-native'] as const;
/** What `compare` runs without --servers: Herald and the peers users would otherwise pick (ws-native is the floor, opt-in). */
export const DEFAULT_SERVERS: readonly ServerName[] = ['herald', 'ws-plain', 'ws-preframed', 'socketio'];
/**
 * `herald-redis-<n>`: n Herald processes (n = 1…9) on engine redis sharing one Redis, each on
 * its own port, all pinned like a single server; see `startHeraldCluster`. `herald-nats-<n>`: the
 * same on engine nats (BENCH_NATS_URL, default nats://127.0.0.1:4222, JetStream on).
 */
export type ClusterServerName = `herald-redis-${number}` | `herald-nats-${number}`;
/**
 * `herald-workers-<n>`: one Herald (`serve` with `server.workers = n`, engine redis): n worker
 * processes sharing one port through node:cluster — how one machine's cores and more than one
 * process's file-descriptor limit are used. CPU and RSS are summed over the primary and workers.
 */
export type WorkersServerName = `herald-workers-${number}`;
export type ServerName = (typeof SERVERS)[number] | ClusterServerName | WorkersServerName;
export const PEERS: readonly ServerName[] = SERVERS.filter((s) => s !== 'herald');

const CLUSTER_NAME = /^herald-(redis|nats)-([1-9])$/;
const WORKERS_NAME = /^herald-workers-([1-9])$/;

export function isServerName(name: string): name is ServerName {
  return (SERVERS as readonly string[]).includes(name) || CLUSTER_NAME.test(name) || WORKERS_NAME.test(name);
}

/** Worker processes of a `herald-workers-<n>` target, else undefined. */
export function workerProcesses(name: string): number | undefined {
  const m = WORKERS_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Nodes of a `herald-redis-<n>` or `herald-nats-<n>` cluster, else undefined. */
export function clusterNodes(name: string): number | undefined {
  const m = CLUSTER_NAME.exec(name);
  return m ? Number(m[2]) : undefined;
}

export interface TargetOptions {
  /** `taskset -c` cores for the server; undefined runs unpinned. */
  cpus?: string | undefined;
  /** Herald's CLI entry point (the `herald` package's dist/cli/herald.js). */
  heraldBin: string;
  /** Path of Herald's WebSocket endpoint. */
  heraldWsPath: string;
  /** Extra Herald configuration merged over the benchmark's (deep merge is Herald's job: top-level keys only here). */
  heraldConfig?: Record<string, unknown>;
  /** Redis URL of `herald-redis-<n>` (BENCH_REDIS_URL or redis://127.0.0.1:6379). */
  redisUrl?: string;
  log: (line: string) => void;
}

export interface ServerUnderTest {
  name: ServerName;
  /** The first (or only) process. */
  pid: number;
  /** Every process of the server (a cluster's nodes); CPU is summed over them. */
  pids: number[];
  port: number;
  wsUrl: string;
  /** Every node's WebSocket URL (one for a single server); the loadgen spreads connections over them. */
  wsUrls: string[];
  /** The broker's process (redis-server), measured apart from the nodes; undefined without one. */
  brokerPid?: number | undefined;
  /** A cluster target's control bus (engine and prefix); undefined for the others. */
  bus?: ClusterBus | undefined;
  publishUrl: string;
  dialect: Dialect;
  apiKey: string;
  secret: string;
  stop(): Promise<void>;
}

type PeerName = Exclude<(typeof SERVERS)[number], 'herald'>;

const PEER_SCRIPT: Record<PeerName, string> = {
  'ws-plain': '../peers/ws-plain.js',
  'ws-preframed': '../peers/ws-preframed.js',
  socketio: '../peers/socketio.js',
  'ws-native': '../peers/ws-native.js',
};

export const DEFAULT_HERALD_BIN = HERALD_BIN;

/** The configuration Herald runs with in the benchmark. */
export function heraldBenchConfig(port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port, demoPage: false },
    auth: { jwt: { hmacSecret: BENCH_SECRET }, anonymous: false },
    api: { keys: [BENCH_API_KEY] },
    origins: { allowed: ['*'] },
    log: { level: 'warn' },
    engine: { type: 'memory' },
    limits: { maxConnections: 100_000, maxConnectionsPerIp: 100_000 },
    // The loadgen opens thousands of connections from one IP at once and publishes flat out: a
    // load run measures delivery, not the rate limiter refusing that traffic.
    rateLimits: { enabled: false },
    shutdown: { drainTimeoutMs: 1000 },
    ...extra,
  };
}

export async function startServer(name: ServerName, options: TargetOptions): Promise<ServerUnderTest> {
  const nodes = clusterNodes(name);
  if (nodes !== undefined) {
    const engine = name.startsWith('herald-nats-') ? natsClusterEngine() : redisClusterEngine(options.redisUrl ?? BENCH_REDIS_URL);
    return startHeraldCluster(name, nodes, options, engine);
  }
  const workers = workerProcesses(name);
  if (workers !== undefined) return startHeraldWorkers(name, workers, options);
  const port = await freePort();
  let child: ChildProcess;
  let cleanup = (): void => {};
  if (name === 'herald') {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(heraldBenchConfig(port, options.heraldConfig), null, 2));
    cleanup = () => rmSync(dir, { recursive: true, force: true });
    child = spawnNode(options.heraldBin, ['serve', '--config', file], { cpus: options.cpus });
  } else {
    const script = fileURLToPath(new URL(PEER_SCRIPT[name as PeerName], import.meta.url));
    child = spawnNode(script, ['--port', String(port), '--secret', BENCH_SECRET, '--api-key', BENCH_API_KEY], { cpus: options.cpus });
  }
  try {
    // Herald logs "listening" at info level, which the bench config's "warn" hides: probe the port too.
    await waitForLine(child, (line) => line.includes('listening'), 20_000, () => portOpen(port));
  } catch (error) {
    await stopChild(child, 1000);
    cleanup();
    throw new Error(`${name} did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Keep the pipes drained; show the server's warnings and errors as progress lines.
  drainOutput(child, (line) => options.log(`${name}: ${line}`));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: no pid`);
  const wsPath = name === 'herald' ? options.heraldWsPath : '/';
  return {
    name,
    pid,
    pids: [pid],
    port,
    wsUrl: `ws://127.0.0.1:${port}${wsPath}`,
    wsUrls: [`ws://127.0.0.1:${port}${wsPath}`],
    publishUrl: `http://127.0.0.1:${port}/api/v1/publish`,
    dialect: name === 'socketio' ? 'socketio' : 'herald',
    apiKey: BENCH_API_KEY,
    secret: BENCH_SECRET,
    stop: async () => {
      await stopChild(child, 5000);
      cleanup();
    },
  };
}

/** The pids of `pid`'s child processes (`pgrep -P`). */
function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 0);
  } catch {
    return [];
  }
}

async function startHeraldWorkers(name: ServerName, workers: number, options: TargetOptions): Promise<ServerUnderTest> {
  const redisUrl = options.redisUrl ?? BENCH_REDIS_URL;
  const engine = redisClusterEngine(redisUrl);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-workers-'));
  const base = heraldBenchConfig(port);
  const config = {
    ...base,
    server: { ...(base.server as object), workers },
    engine: engine.engineConfig,
    ...options.heraldConfig,
  };
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const child = spawnNode(options.heraldBin, ['serve', '--config', file], { cpus: options.cpus });
  const cleanup = async (): Promise<void> => {
    await stopChild(child, 8000);
    rmSync(dir, { recursive: true, force: true });
    await engine.drop(options.log);
  };
  const primary = child.pid;
  let pids: number[] = [];
  try {
    if (primary === undefined) throw new Error('no pid');
    await waitForLine(child, (line) => line.includes('listening'), 30_000, () => portOpen(port));
    drainOutput(child, (line) => options.log(`${name}: ${line}`));
    // The port opens with the first worker; wait for all of them.
    for (let i = 0; i < 100 && childPids(primary).length < workers; i++) await new Promise((r) => setTimeout(r, 100));
    pids = [primary, ...childPids(primary)];
    if (pids.length !== workers + 1) throw new Error(`expected ${workers} workers, found ${pids.length - 1}`);
  } catch (error) {
    await cleanup();
    throw new Error(`${name} did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
  const wsUrl = `ws://127.0.0.1:${port}${options.heraldWsPath}`;
  return {
    name,
    pid: primary,
    pids,
    port,
    wsUrl,
    wsUrls: [wsUrl],
    brokerPid: engine.brokerPid,
    bus: engine.bus,
    publishUrl: `http://127.0.0.1:${port}/api/v1/publish`,
    dialect: 'herald',
    apiKey: BENCH_API_KEY,
    secret: BENCH_SECRET,
    stop: cleanup,
  };
}

/**
 * `nodes` Herald processes on `engine`, ports picked apart, node names `bench-node<i>`, one
 * unique prefix per start, whose state is deleted when the cluster stops. All nodes are pinned to
 * `options.cpus`. The publish URL is node 1's.
 */
async function startHeraldCluster(name: ServerName, nodes: number, options: TargetOptions, engine: ClusterEngine): Promise<ServerUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(children.map((c) => stopChild(c, 5000)));
    rmSync(dir, { recursive: true, force: true });
    await engine.drop(options.log);
  };
  try {
    for (let i = 1; i <= nodes; i++) {
      let port = await freePort();
      while (ports.includes(port)) port = await freePort();
      ports.push(port);
      const base = heraldBenchConfig(port);
      const config = {
        ...base,
        server: { ...(base.server as object), nodeName: `bench-node${i}` },
        engine: engine.engineConfig,
        ...options.heraldConfig,
      };
      const file = join(dir, `node${i}.json`);
      writeFileSync(file, JSON.stringify(config, null, 2));
      const child = spawnNode(options.heraldBin, ['serve', '--config', file], { cpus: options.cpus });
      children.push(child);
      await waitForLine(child, (line) => line.includes('listening'), 20_000, () => portOpen(port));
      drainOutput(child, (line) => options.log(`${name} node${i}: ${line}`));
    }
  } catch (error) {
    await cleanup();
    throw new Error(`${name} did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
  const pids = children.map((c) => c.pid).filter((p): p is number => p !== undefined);
  if (pids.length !== nodes) {
    await cleanup();
    throw new Error(`${name}: a node has no pid`);
  }
  const wsUrls = ports.map((p) => `ws://127.0.0.1:${p}${options.heraldWsPath}`);
  return {
    name,
    pid: pids[0]!,
    pids,
    port: ports[0]!,
    wsUrl: wsUrls[0]!,
    wsUrls,
    brokerPid: engine.brokerPid,
    bus: engine.bus,
    publishUrl: `http://127.0.0.1:${ports[0]}/api/v1/publish`,
    dialect: 'herald',
    apiKey: BENCH_API_KEY,
    secret: BENCH_SECRET,
    stop: cleanup,
  };
}
