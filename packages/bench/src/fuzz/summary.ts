/**
 * What a run reports: the one-line summary (stdout of `npm run fuzz`, the return value of
 * runFuzz) and the report file, plus the progress line printed while it runs.
 */
import type { Bystander, BystanderReport } from './bystander.js';
import type { InputGenerator } from './generator.js';
import type { Anomaly, InputRecord } from './recorder.js';
import type { RunState } from './run-state.js';
import { procMemory, type ServerExit, type ServerHandle } from './server-process.js';

export interface FuzzSummary {
  /** No crash, the bystander lost nothing and kept its connection, and the server still answers /healthz. */
  ok: boolean;
  seed: number;
  durationMs: number;
  crashes: number;
  crash: {
    code: number | null;
    signal: string | null;
    /** Milliseconds after the server started. */
    atMs: number;
    /** Labels of the last inputs sent before the exit, oldest first. */
    lastInputs: string[];
    /** The end of the server's output (usually the fatal error and its stack). */
    serverOutput: string;
    /** The single input that crashes a fresh server, when the minimizer found one. */
    reproducer: string | undefined;
  } | null;
  inputs: { total: number; sweep: number; sweepComplete: boolean; wsMessages: number; wsControl: number; firstFrames: number; http: number; raw: number; autoReplies: number };
  /** Scheduler turns (5 ms) the rate was held back, by what the oldest waiting input needed. */
  limitedBy: Record<string, number>;
  wsFramesSent: number;
  wsBytesSent: number;
  connectionsOpened: number;
  closes: Record<string, number>;
  /** Connections the server dropped without a close frame, by the kind of their last input. */
  droppedWithoutCloseFrame: Record<string, number>;
  errors: Record<string, number>;
  http: Record<string, number>;
  rawAndUpgrades: Record<string, number>;
  rss: { beforeBytes: number | null; afterBytes: number | null; peakBytes: number | null };
  bystander: BystanderReport;
  healthzAfter: boolean;
  anomalies: Record<string, number>;
  report: string;
}

export interface Report {
  summary: FuzzSummary;
  options: { seed: number; engine: string; set: string[]; limit: number };
  crash?: { exit: ServerExit; serverOutput: string; reproducer?: InputRecord };
  anomalies: Anomaly[];
  lastInputs: InputRecord[];
}

/** The end of the server's output without its JSON log lines: what Node printed when it died. */
export function fatalOutput(tail: string): string {
  const plain = tail.split('\n').filter((line) => !line.startsWith('{"level"'));
  return plain.slice(-16).join('\n').slice(-2000);
}

export function mb(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

export function progressLine(run: RunState, opts: { frames: number }, gen: InputGenerator, bystander: Bystander, server: ServerHandle, startedAt: number): string {
  const secs = (Date.now() - startedAt) / 1000;
  const b = bystander.report();
  const rss = procMemory(server.pid, 'VmRSS');
  return [
    `fuzz ${secs.toFixed(0)}s`,
    `inputs ${run.counts.inputs}/${opts.frames} (${Math.round(run.counts.inputs / Math.max(secs, 0.001))}/s)`,
    gen.sweepDone ? 'sweep done' : `sweep ${gen.sweepGenerated}`,
    `conns ${run.counts.connectionsOpened}`,
    `closes ${run.closes.total()}`,
    `errors ${run.errors.total()}`,
    `http ${run.http.total()}`,
    `bystander ${b.delivered}/${b.published} lost ${b.lost} p99 ${b.latencyMs.p99}ms max ${b.latencyMs.max}ms`,
    `rss ${rss ? mb(rss) : '?'}MB`,
    `anomalies ${run.anomalies.counts.total()}`,
  ].join(' | ');
}
