/**
 * The Herald under test, as a child process started from its public CLI (`herald serve --config`),
 * so that a crash is seen for what it is: the process exiting. Keeps the tail of its output for
 * the crash report and reads its memory from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverConfig } from './world.js';
import { HERALD_BIN } from '../lib/herald-bin.js';

export interface ServerExit {
  code: number | null;
  signal: string | null;
  atMs: number;
}

export interface StartOptions {
  engine: 'memory' | 'sqlite';
  /** `--set key=value` assignments passed to `herald serve`, applied over the fuzz config. */
  set: string[];
  /** The Herald entry point; default: the built CLI next to this file, else dist/ under the working directory. */
  cli?: string;
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
}

export interface ServerHandle {
  readonly pid: number;
  readonly port: number;
  readonly baseUrl: string;
  readonly config: Record<string, unknown>;
  /** Set once the process has exited. */
  exit: ServerExit | undefined;
  readonly exited: Promise<ServerExit>;
  /** The last lines the process wrote (stdout and stderr). */
  outputTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  stop(graceMs?: number): Promise<ServerExit>;
}

const TAIL_BYTES = 64 * 1024;

export function heraldCli(explicit?: string): string {
  const candidates = [
    explicit,
    HERALD_BIN,
  ].filter((c): c is string => c !== undefined);
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`Herald's CLI is not built (looked for ${candidates.join(', ')}); run npm run build`);
  return found;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether GET /healthz answers 200 within `timeoutMs`. */
export async function healthy(baseUrl: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Starts Herald and resolves once /healthz answers; rejects (with its output) if it exits first. */
export async function startServer(opts: StartOptions): Promise<ServerHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      // Another process may take the free port between the probe and Herald's listen.
      if (attempt < 2 && /EADDRINUSE/.test(String(err))) continue;
      throw err;
    }
  }
}

async function startOnce(opts: StartOptions): Promise<ServerHandle> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-fuzz-'));
  const config = serverConfig({ port, engine: opts.engine, dataDir: join(dir, 'data') });
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const args = [heraldCli(opts.cli), 'serve', '--config', file, ...opts.set.flatMap((s) => ['--set', s])];
  const proc: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const started = Date.now();
  let tail = '';
  const keep = (d: Buffer): void => {
    tail += String(d);
    if (tail.length > TAIL_BYTES * 2) tail = tail.slice(-TAIL_BYTES);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exit: ServerExit | undefined;
  const exited = new Promise<ServerExit>((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal, atMs: Date.now() - started };
      rmSync(dir, { recursive: true, force: true });
      resolve(exit);
    });
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (!(await healthy(baseUrl))) {
    if (exit) throw new Error(`herald exited (code ${exit.code}, signal ${exit.signal}) before it was ready:\n${tail.slice(-4000)}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`herald did not answer /healthz within 20 s:\n${tail.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const handle: ServerHandle = {
    pid: proc.pid!,
    port,
    baseUrl,
    config,
    get exit() {
      return exit;
    },
    exited,
    outputTail: () => tail.slice(-TAIL_BYTES),
    async stop(graceMs = 5000) {
      if (exit) return exit;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
  return handle;
}

/** A field of /proc/<pid>/status in bytes (VmRSS: resident now, VmHWM: peak), or undefined once gone. */
export function procMemory(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
