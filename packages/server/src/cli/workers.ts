/**
 * Worker processes sharing one port (node:cluster), so a node uses every core and holds more
 * connections than one process's file limit allows. Each worker is a full Herald node; fan-out
 * between them goes through the cluster engine (Redis or NATS), exactly as between machines —
 * which is why `server.workers > 1` requires one. The primary only supervises: it restarts a
 * worker that dies and forwards SIGTERM/SIGINT so every worker drains.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { HeraldConfig } from '../config.js';

export function workerCount(config: Readonly<HeraldConfig>): number {
  return config.server.workers === 0 ? availableParallelism() : config.server.workers;
}

/** Runs in the primary: forks the workers and supervises them until told to stop. */
export function runPrimary(config: Readonly<HeraldConfig>, log: (msg: string, extra?: object) => void): void {
  const n = workerCount(config);
  let stopping = false;
  const spawn = (index: number): Worker => {
    const w = cluster.fork({ HERALD_WORKER_INDEX: String(index) });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      log('worker died; starting a new one', { index, code, signal });
      setTimeout(() => spawn(index), 500).unref();
    });
    return w;
  };
  for (let i = 0; i < n; i++) spawn(i);
  log(`started ${n} workers sharing port ${config.server.port}`, { workers: n, engine: config.engine.type });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log('stopping workers', { signal });
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    const hard = setTimeout(() => process.exit(1), config.shutdown.drainTimeoutMs + 5000);
    hard.unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export const isPrimaryOfWorkers = (config: Readonly<HeraldConfig>): boolean => workerCount(config) > 1 && cluster.isPrimary;

/** Worker nodes get distinct names so presence and logs tell them apart. */
export function workerNodeName(base: string): string {
  const index = process.env.HERALD_WORKER_INDEX;
  return index === undefined ? base : `${base || 'herald'}-w${index}`;
}
