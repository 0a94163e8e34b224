#!/usr/bin/env node
/**
 * `npm run fuzz -- [options]`: the protocol fuzzer against a Herald it starts itself (from the
 * built CLI, as a child process). Progress goes to stderr every few seconds, one JSON summary
 * line to stdout at the end, the full report (anomalies with their inputs, the last inputs, a
 * crash's reproducer) to --out. Exit code 1 when the server crashed, the bystander lost a message
 * or its connection, or the server stopped answering /healthz; 2 for bad options.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { InputRecord } from './recorder.js';
import { replay } from './replay.js';
import { DEFAULT_OPTIONS, runFuzz } from './run.js';

function positiveInt(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command('herald-fuzz')
  .description('Fuzz a Herald server (started here as a child process) over WebSocket and HTTP, with a bystander client watching for lost messages and stalls')
  .option('--frames <n>', 'inputs to send', positiveInt, DEFAULT_OPTIONS.frames)
  .option('--seed <n>', 'random seed (default: chosen and printed)', positiveInt)
  .option('--connections <n>', 'attacker connections kept open', positiveInt, DEFAULT_OPTIONS.connections)
  .option('--duration <seconds>', 'stop after this many seconds even if --frames are not all sent (0: no limit)', positiveInt, 0)
  .option('--rate <n>', 'inputs per second', positiveInt, DEFAULT_OPTIONS.rate)
  .option('--out <file>', 'the JSON report (default fuzz-report-<seed>.json)')
  .option('--engine <engine>', 'memory or sqlite', DEFAULT_OPTIONS.engine)
  .option('--set <key=value>', 'server config key, as herald serve --set (repeatable)', collect, [])
  .option('--bystander-rate <n>', 'bystander publishes per second', positiveInt, DEFAULT_OPTIONS.bystanderRate)
  .option('--stall-ms <n>', 'a bystander delivery slower than this is reported', positiveInt, DEFAULT_OPTIONS.stallMs)
  .option('--valid-only', 'send only valid frames and requests: a baseline with the same load and bystander, no fuzzing')
  .option('--no-minimize', 'after a crash, do not replay the last inputs one by one to find a reproducer')
  .option('--replay <file>', "replay a report's reproducer (or its last inputs) against a fresh server, then exit")
  .option('--herald <file>', "Herald's CLI entry point (default: the built herald package's dist/cli/herald.js)");

program.exitOverride();
try {
  program.parse();
} catch (err) {
  // Help and version exit 0; a bad option 2 (commander has printed why).
  process.exit((err as { exitCode?: number }).exitCode === 0 ? 0 : 2);
}
const o = program.opts<{
  frames: number;
  seed?: number;
  connections: number;
  duration: number;
  rate: number;
  out?: string;
  engine: string;
  set: string[];
  bystanderRate: number;
  stallMs: number;
  minimize: boolean;
  validOnly?: boolean;
  replay?: string;
  herald?: string;
}>();

if (o.engine !== 'memory' && o.engine !== 'sqlite') {
  process.stderr.write('herald-fuzz: --engine is memory or sqlite\n');
  process.exit(2);
}
const engine = o.engine;
const progress = (line: string) => process.stderr.write(`${line}\n`);

if (o.replay) {
  const report = JSON.parse(readFileSync(o.replay, 'utf8')) as { options: { engine: 'memory' | 'sqlite'; set: string[] }; crash?: { reproducer?: InputRecord }; lastInputs: InputRecord[] };
  const inputs = report.crash?.reproducer ? [report.crash.reproducer] : report.lastInputs;
  progress(`herald-fuzz: replaying ${inputs.length} input(s) from ${o.replay}`);
  const result = await replay(inputs, { engine: report.options.engine, set: report.options.set, ...(o.herald ? { cli: o.herald } : {}) }, 3000);
  process.stdout.write(`${JSON.stringify({ crashed: result.crashed, exit: result.exit ?? null, inputs: inputs.map((i) => i.label) })}\n`);
  if (result.serverOutput) progress(result.serverOutput);
  process.exit(result.crashed ? 1 : 0);
}

const seed = o.seed ?? (Date.now() ^ (process.pid << 16)) >>> 0;
const summary = await runFuzz({
  frames: o.frames,
  seed,
  connections: Math.max(1, o.connections),
  durationMs: o.duration * 1000,
  rate: Math.max(1, o.rate),
  out: o.out ?? `fuzz-report-${seed}.json`,
  engine,
  set: o.set,
  bystanderRate: Math.max(1, o.bystanderRate),
  stallMs: o.stallMs,
  minimize: o.minimize,
  validOnly: o.validOnly === true,
  progress,
  ...(o.herald ? { cli: o.herald } : {}),
});
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(summary.ok ? 0 : 1);
