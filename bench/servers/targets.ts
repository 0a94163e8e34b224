/**
 * Servers under test: Herald (its CLI, `serve --config <file>`) and the comparison peers in
 * bench/peers, each started as a child process on a free loopback port, optionally pinned.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drainOutput, portOpen, spawnNode, stopChild, waitForLine } from '../lib/child.js';
import { freePort } from '../lib/ports.js';
import { BENCH_API_KEY, BENCH_SECRET } from '../lib/token.js';
import type { Dialect } from '../loadgen/messages.js';

export const SERVERS = ['herald', 'ws-plain', 'ws-preframed', 'socketio'] as const;
export type ServerName = (typeof SERVERS)[number];
export const PEERS: readonly ServerName[] = SERVERS.filter((s) => s !== 'herald');

export function isServerName(name: string): name is ServerName {
  return (SERVERS as readonly string[]).includes(name);
}

export interface TargetOptions {
  /** `taskset -c` cores for the server; undefined runs unpinned. */
  cpus?: string | undefined;
  /** Herald's CLI entry point (dist/src/cli/herald.js). */
  heraldBin: string;
  /** Path of Herald's WebSocket endpoint. */
  heraldWsPath: string;
  /** Extra Herald configuration merged over the benchmark's (deep merge is Herald's job: top-level keys only here). */
  heraldConfig?: Record<string, unknown>;
  log: (line: string) => void;
}

export interface ServerUnderTest {
  name: ServerName;
  pid: number;
  port: number;
  wsUrl: string;
  publishUrl: string;
  dialect: Dialect;
  apiKey: string;
  secret: string;
  stop(): Promise<void>;
}

const PEER_SCRIPT: Record<Exclude<ServerName, 'herald'>, string> = {
  'ws-plain': '../peers/ws-plain.js',
  'ws-preframed': '../peers/ws-preframed.js',
  socketio: '../peers/socketio.js',
};

export const DEFAULT_HERALD_BIN = fileURLToPath(new URL('../../src/cli/herald.js', import.meta.url));

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
    shutdown: { drainTimeoutMs: 1000 },
    ...extra,
  };
}

export async function startServer(name: ServerName, options: TargetOptions): Promise<ServerUnderTest> {
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
    const script = fileURLToPath(new URL(PEER_SCRIPT[name], import.meta.url));
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
    port,
    wsUrl: `ws://127.0.0.1:${port}${wsPath}`,
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
