/**
 * Starting and stopping the benchmark's child processes. A child may be pinned to a set of CPU
 * cores by running it under `taskset -c`; taskset execs node, so the child's pid is node's pid.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

export interface SpawnNodeOptions {
  /** Cores for `taskset -c`, e.g. "0" or "1"; undefined runs unpinned. */
  cpus?: string | undefined;
  /** Open an IPC channel (process.send) to the child. */
  ipc?: boolean;
  env?: NodeJS.ProcessEnv;
  nodeArgs?: string[];
  /**
   * Raise the child's open-files limit to this many (or as far as the hard limit allows) before
   * Node starts: `sh` sets it and execs, so the child's pid is Node's.
   */
  openFiles?: number | undefined;
}

/** The shell prologue that raises the open-files limit to `wanted`, else to the hard limit, else leaves it. */
export function raiseOpenFiles(wanted: number): string {
  return `ulimit -n ${Math.floor(wanted)} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; `;
}

/** Children still running; killed (by pid) if the harness exits or is interrupted. */
const live = new Set<ChildProcess>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      if (child.pid === undefined) continue;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
}

export function spawnNode(script: string, args: string[], options: SpawnNodeOptions = {}): ChildProcess {
  installCleanup();
  const nodeArgv = [...(options.nodeArgs ?? []), script, ...args];
  const stdio: StdioOptions = options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'];
  const env = { ...process.env, ...options.env };
  const command = options.cpus !== undefined ? ['taskset', '-c', options.cpus, process.execPath, ...nodeArgv] : [process.execPath, ...nodeArgv];
  const child =
    options.openFiles !== undefined
      ? spawn('sh', ['-c', `${raiseOpenFiles(options.openFiles)}exec "$@"`, 'sh', ...command], { stdio, env })
      : spawn(command[0]!, command.slice(1), { stdio, env });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** True once something accepts TCP connections on host:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Resolves with the first stdout/stderr line for which `match` is true, or when `probe` (polled
 * every 100 ms) says ready; rejects if the child exits first or `timeoutMs` passes. Lines seen
 * are kept (last 50) for the error message.
 */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs: number, probe?: () => Promise<boolean>): Promise<string> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const readers = [child.stdout, child.stderr].filter((s) => s !== null).map((s) => createInterface({ input: s }));
    let settled = false;
    let poller: NodeJS.Timeout | undefined;
    if (probe) {
      const poll = (): void => {
        void probe().then((ok) => {
          if (settled) return;
          if (ok) done(undefined, '(probe)');
          else poller = setTimeout(poll, 100);
        });
      };
      poller = setTimeout(poll, 100);
    }
    const done = (error: Error | undefined, line?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(poller);
      child.off('exit', onExit);
      for (const r of readers) r.off('line', onLine);
      if (error) reject(error);
      else resolve(line ?? '');
    };
    const onLine = (line: string): void => {
      seen.push(line);
      if (seen.length > 50) seen.shift();
      if (match(line)) done(undefined, line);
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done(new Error(`child exited (code ${code}, signal ${signal}) before ready:\n${seen.join('\n')}`));
    };
    const timer = setTimeout(() => done(new Error(`child not ready within ${timeoutMs} ms:\n${seen.join('\n')}`)), timeoutMs);
    for (const r of readers) r.on('line', onLine);
    child.once('exit', onExit);
  });
}

/** Keeps draining a child's output so it never blocks on a full pipe; echoes lines when asked. */
export function drainOutput(child: ChildProcess, echo?: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    const reader = createInterface({ input: stream });
    reader.on('line', (line) => echo?.(line));
  }
}

/** SIGTERM the child (by its pid), then SIGKILL if it has not exited within `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        clearTimeout(timer);
        resolve();
      }
    }
  });
}
