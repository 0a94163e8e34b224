/**
 * Runs scenarios against servers and reports. `runScenario` is one run against one server;
 * `compare` runs a scenario against Herald and each peer, `runs` times in rotating order, and
 * reports medians and Herald/peer ratios. Results go to stdout (JSON lines, then tables) and,
 * when asked, are appended to a JSON-lines file; progress goes to stderr.
 */
import { appendFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { cpuMicros, machineCpuMicros } from './lib/proc.js';
import { resultsTable, table, columnsFor } from './lib/report.js';
import { median, round } from './lib/stats.js';
import { findScenario } from './scenarios/index.js';
import type { ClientKind, DeliveryMode } from './loadgen/messages.js';
import type { Pinning, RunOptions, RunResult } from './scenarios/scenario.js';
import { DEFAULT_HERALD_BIN, PEERS, startServer, type ServerName } from './servers/targets.js';

export interface BenchOptions {
  scenario: string;
  connections?: number | undefined;
  rate?: number | undefined;
  durationS?: number | undefined;
  workers: number;
  sourceAddresses: number;
  concurrency: number;
  publishSockets: number;
  client: ClientKind;
  /** Scrape Herald's /metrics each second for its event-loop delay (each scrape costs Herald CPU; BENCHMARKS.md). */
  loopDelay?: boolean | undefined;
  /** Publishing scenarios: an unmeasured window at the same rate first, seconds (0 = none). */
  warmupS?: number | undefined;
  /** Channels of the multi-channel scenarios (scenario default otherwise). */
  channels?: number | undefined;
  /** users: devices of the users with the most (scenario default otherwise). */
  devices?: number | undefined;
  /** storm: % of the connections that drop and reconnect each round; rounds. */
  churnPct?: number | undefined;
  rounds?: number | undefined;
  /** saturate: p99 bound, ms; most steps. */
  maxP99Ms?: number | undefined;
  maxSteps?: number | undefined;
  /**
   * Delivery modes to run each server in (compare: every server × every mode; run: the first).
   * Default: the scenario's `compareModes` (reliable: at-least-once, at-most-once), else the
   * scenario's own mode.
   */
  modes?: DeliveryMode[] | undefined;
  /**
   * A run during which other processes used more than this % of a core is repeated (at most
   * twice), and each run first waits (at most 2 min) for the machine to be that quiet. 0 = off.
   */
  maxOtherPct: number;
  /** `true` pins the server to core 0 and the loadgen to core 1; "A:B" gives taskset lists. */
  pin?: boolean | string | undefined;
  jsonOut?: string | undefined;
  heraldBin?: string | undefined;
  heraldWsPath: string;
  /** Write progress lines (stderr by default). */
  log?: (line: string) => void;
  /** Write result lines (stdout by default). */
  out?: (line: string) => void;
}

/** Keys compared between Herald and each peer, and whether lower is better. */
const RATIO_KEYS: Record<string, 'lower' | 'higher'> = {
  p50_ms: 'lower',
  p90_ms: 'lower',
  p99_ms: 'lower',
  p999_ms: 'lower',
  max_ms: 'lower',
  wire_p50_ms: 'lower',
  wire_p99_ms: 'lower',
  wire_p999_ms: 'lower',
  deliveries_per_s: 'higher',
  server_us_per_delivery: 'lower',
  cpu_pct: 'lower',
  rss_mb: 'lower',
  rss_per_conn_kb: 'lower',
  conns_per_s: 'higher',
  server_us_per_conn: 'lower',
  server_us_per_message: 'lower',
  total_us_per_delivery: 'lower',
};

/** One column of a comparison: a server, optionally in a given delivery mode. */
export interface Target {
  server: ServerName;
  delivery?: DeliveryMode | undefined;
  /** The scenario's Herald configuration variant (Scenario.variants). */
  variant?: string | undefined;
  /** Name in the results: the server, plus `/<variant>` and `/<mode>` when there are several. */
  label: string;
}

export function targetsOf(servers: ServerName[], options: BenchOptions): Target[] {
  const scenario = findScenario(options.scenario);
  const modes: Array<DeliveryMode | undefined> = options.modes ?? scenario.compareModes ?? [undefined];
  const variants: Array<string | undefined> = scenario.variants ? [...scenario.variants] : [undefined];
  return servers.flatMap((server) =>
    variants.flatMap((variant) =>
      modes.map((delivery) => {
        const base = variant !== undefined ? `${server}/${variant}` : server;
        return { server, delivery, variant, label: modes.length > 1 && delivery ? `${base}/${delivery}` : base };
      }),
    ),
  );
}

/**
 * The servers a scenario can run against: all of `servers`, or for a Herald-only scenario (see
 * Scenario.heraldOnly) those that are Herald, saying which peers were left out and why.
 */
export function serversFor(scenarioName: string, servers: ServerName[], log: (line: string) => void): ServerName[] {
  const scenario = findScenario(scenarioName);
  if (!scenario.heraldOnly) return servers;
  const peers = servers.filter((s) => PEERS.includes(s));
  if (peers.length > 0) log(`${scenario.name} runs against Herald only (${scenario.heraldOnly}): leaving out ${peers.join(', ')}`);
  return servers.filter((s) => !PEERS.includes(s));
}

export function parsePin(pin: boolean | string | undefined, log: (line: string) => void): Pinning {
  if (pin === undefined || pin === false) return {};
  if (availableParallelism() < 2) {
    log('pin: fewer than 2 cores, running unpinned');
    return {};
  }
  if (pin === true || pin === '') return { server: '0', loadgen: '1' };
  const [server, loadgen] = pin.split(':');
  if (!server || !loadgen) throw new Error(`--pin expects SERVER_CPUS:LOADGEN_CPUS (taskset lists), e.g. 0:1, got "${pin}"`);
  return { server, loadgen };
}

function runOptions(options: BenchOptions, delivery?: DeliveryMode): RunOptions {
  const defaults = findScenario(options.scenario).defaults;
  return {
    channelCount: options.channels ?? defaults.channelCount,
    maxDevices: options.devices ?? defaults.maxDevices,
    churnPct: options.churnPct ?? defaults.churnPct,
    rounds: options.rounds ?? defaults.rounds,
    maxP99Ms: options.maxP99Ms ?? defaults.maxP99Ms,
    maxSteps: options.maxSteps ?? defaults.maxSteps,
    delivery: delivery ?? options.modes?.[0],
    connections: options.connections ?? defaults.connections ?? 1000,
    rate: options.rate ?? defaults.rate ?? 20,
    durationS: options.durationS ?? defaults.durationS ?? 10,
    workers: options.workers,
    sourceAddresses: options.sourceAddresses,
    concurrency: options.concurrency,
    publishSockets: options.publishSockets,
    client: options.client,
    loopDelay: options.loopDelay !== false,
    warmupS: options.warmupS ?? 0,
    channel: 'bench',
  };
}

function io(options: BenchOptions): { log: (line: string) => void; out: (line: string) => void } {
  return {
    log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    out: options.out ?? ((line) => process.stdout.write(`${line}\n`)),
  };
}

function emit(options: BenchOptions, record: object): void {
  const line = JSON.stringify(record);
  io(options).out(line);
  if (options.jsonOut) appendFileSync(options.jsonOut, `${line}\n`);
}

/** CPU % of one core used by processes other than this one over `ms`. */
async function machineLoad(ms: number): Promise<number> {
  const m0 = machineCpuMicros().busy;
  const s0 = cpuMicros(process.pid) ?? 0;
  await new Promise((r) => setTimeout(r, ms));
  const busy = machineCpuMicros().busy - m0 - ((cpuMicros(process.pid) ?? 0) - s0);
  return (busy / (ms * 1000)) * 100;
}

async function waitForQuiet(maxOtherPct: number, log: (line: string) => void): Promise<void> {
  const deadline = performance.now() + 120_000;
  let load = await machineLoad(1000);
  if (load <= maxOtherPct) return;
  log(`waiting for the machine to quieten (other processes use ${load.toFixed(0)}% of a core, want <= ${maxOtherPct}%)`);
  while (load > maxOtherPct && performance.now() < deadline) load = await machineLoad(2000);
  if (load > maxOtherPct) log(`still busy (${load.toFixed(0)}%) after 2 min; running anyway`);
}

/**
 * One run of `options.scenario` against `serverName` (see `runScenarioOnce`), repeated while
 * other processes disturbed it, as `maxOtherPct` says.
 */
export async function runScenario(target: ServerName | Target, options: BenchOptions, label = ''): Promise<RunResult> {
  const { log } = io(options);
  const t: Target = typeof target === 'string' ? { server: target, label: target } : target;
  const serverName = t.label;
  for (let attempt = 1; ; attempt++) {
    if (options.maxOtherPct > 0) await waitForQuiet(options.maxOtherPct, log);
    const result = await runScenarioOnce(t, options, attempt > 1 ? `${label} retry ${attempt - 1}` : label);
    const other = Number(result.other_cpu_pct ?? 0);
    if (options.maxOtherPct <= 0 || other <= options.maxOtherPct || attempt >= 3) {
      emit(options, result);
      return result;
    }
    log(`[${options.scenario} ${serverName}${label}] other processes used ${other}% of a core (> ${options.maxOtherPct}%): discarding this run and repeating it`);
  }
}

/** One run of `options.scenario` against `serverName`; the server is started and stopped here. */
async function runScenarioOnce(target: Target, options: BenchOptions, label = ''): Promise<RunResult> {
  const { log } = io(options);
  const scenario = findScenario(options.scenario);
  const pin = parsePin(options.pin, log);
  const prefix = `[${scenario.name} ${target.label}${label}]`;
  const progress = (line: string): void => log(`${prefix} ${line}`);
  const runOpts = runOptions(options, target.delivery);
  const prepared = await scenario.prepare?.({ server: target.server, variant: target.variant, options: runOpts, progress });
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(target.server, {
      cpus: pin.server,
      heraldBin: options.heraldBin ?? DEFAULT_HERALD_BIN,
      heraldWsPath: options.heraldWsPath,
      heraldConfig: prepared?.heraldConfig,
      log: progress,
    });
  } catch (error) {
    await prepared?.close();
    throw error;
  }
  progress(`started pid ${server.pid} on port ${server.port}${pin.server !== undefined ? ` (server cpus ${pin.server}, loadgen cpus ${pin.loadgen})` : ''}`);
  try {
    const result = await scenario.run({ server, options: runOpts, pin, progress, variant: target.variant, prepared });
    result.server = target.label;
    result.pinned = pin.server !== undefined;
    result.loadgen_client = options.client;
    const other = Number(result.other_cpu_pct ?? 0);
    if (other > 15) progress(`warning: other processes used ${other}% of a core during the run; its numbers are noisy`);
    return result;
  } finally {
    await server.stop();
    await prepared?.close();
  }
}

export async function runOne(serverName: ServerName, options: BenchOptions): Promise<RunResult> {
  const result = await runScenario(serverName, options);
  io(options).out(`\n${resultsTable([result], findScenario(options.scenario).columns)}`);
  return result;
}

export interface CompareSummary {
  kind: 'compare';
  scenario: string;
  runs: number;
  options: RunOptions;
  medians: Record<string, Record<string, unknown>>;
  /** The first target's median (Herald's) divided by each other target's, per metric. */
  ratios: Record<string, Record<string, number | null>>;
}

function medianRecord(results: RunResult[]): Record<string, unknown> {
  const first = results[0]!;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(first)) {
    if (typeof value === 'number') {
      const values = results.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
      out[key] = round(median(values), 3);
    } else if (key === 'limited_by') {
      const server = results.filter((r) => r.limited_by === 'server').length;
      out[key] = server * 2 >= results.length ? 'server' : 'loadgen';
    } else if (typeof value !== 'object' || value === null) {
      out[key] = value;
    }
  }
  return out;
}

/** Runs the scenario against every server `runs` times (rotating the order), then reports. */
export async function compare(servers: ServerName[], runs: number, options: BenchOptions): Promise<CompareSummary> {
  const { log, out } = io(options);
  const targets = targetsOf(servers, options);
  const results = new Map<string, RunResult[]>(targets.map((t) => [t.label, []]));
  for (let r = 0; r < runs; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    for (const target of order) {
      try {
        results.get(target.label)!.push(await runScenario(target, options, ` run ${r + 1}/${runs}`));
      } catch (error) {
        log(`[${options.scenario} ${target.label} run ${r + 1}/${runs}] failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  // Runs disturbed by other processes even after retries are left out of the medians when at
  // least one undisturbed run of that server exists.
  const medians: CompareSummary['medians'] = {};
  for (const [name, list] of results) {
    if (list.length === 0) continue;
    const clean = options.maxOtherPct > 0 ? list.filter((r) => Number(r.other_cpu_pct ?? 0) <= options.maxOtherPct) : list;
    const used = clean.length > 0 ? clean : list;
    medians[name] = { ...medianRecord(used), runs_used: used.length, runs_disturbed: list.length - clean.length };
  }
  const scenario = findScenario(options.scenario);
  const ratioKeys = { ...RATIO_KEYS, ...scenario.ratioKeys };
  const ratios: CompareSummary['ratios'] = {};
  const baseline = targets[0]!.label;
  const herald = medians[baseline];
  if (herald) {
    for (const { label: name } of targets) {
      const peer = medians[name];
      if (name === baseline || !peer) continue;
      ratios[name] = {};
      for (const key of Object.keys(ratioKeys)) {
        const h = herald[key];
        const p = peer[key];
        if (typeof h === 'number' && typeof p === 'number') ratios[name][key] = p === 0 ? null : round(h / p, 2);
      }
    }
  }
  const summary: CompareSummary = { kind: 'compare', scenario: options.scenario, runs, options: runOptions(options, targets[0]!.delivery), medians, ratios };
  emit(options, summary);

  const all = [...results.values()].flat();
  out(`\nAll runs (${options.scenario}):\n${resultsTable(all, scenario.columns)}`);
  const medianRows = Object.values(medians);
  out(`\nMedians of ${runs} run(s):\n${table(medianRows, columnsFor(options.scenario, medianRows, scenario.columns))}`);
  const ratioRows = Object.entries(ratios).map(([peer, r]) => ({ peer: `${baseline} ÷ ${peer}`, ...r }));
  const ratioColumns = [{ title: 'ratio', key: 'peer' }, ...columnsFor(options.scenario, medianRows, scenario.columns).filter((c) => c.key in ratioKeys)];
  if (ratioRows.length > 0) {
    out(`\n${baseline} / other (medians; <1 means ${baseline}'s figure is lower):\n${table(ratioRows, ratioColumns)}`);
  }
  return summary;
}
