/**
 * What a scenario is and what it gets to work with. A scenario module exports one `Scenario`;
 * `scenarios/index.ts` lists them. The runner starts the server under test and calls `run`; the
 * scenario starts its load generator, drives it, and returns one `RunResult`.
 */
import { LoopDelayProbe } from '../lib/loop-delay.js';
import { CpuMeter, cpuMicros, machineCpuMicros, rssBytes, sysCpuMicros } from '../lib/proc.js';
import { round } from '../lib/stats.js';
import { LoadGen } from '../loadgen/controller.js';
import type { AudienceSpec } from '../loadgen/audience.js';
import type { ClientKind, DeliveryMode, OpenResult, WorkerConfig } from '../loadgen/messages.js';
import type { ServerName, ServerUnderTest } from '../servers/targets.js';
import type { Column } from '../lib/report.js';

export interface RunOptions {
  connections: number;
  /** Publishes per second (scenarios that publish). */
  rate: number;
  /** Measured window (publishing, or holding idle connections), seconds. */
  durationS: number;
  /** Loadgen worker processes; 0 = as few as the fd limit allows. */
  workers: number;
  /** Source addresses 127.0.0.2… the connections are spread over. */
  sourceAddresses: number;
  /** Concurrent handshakes per worker. */
  concurrency: number;
  /** Channel the connections subscribe to. */
  channel: string;
  /** Keep-alive HTTP connections the publisher uses. 1 keeps publishes in order, so any
   * out-of-order delivery is the server's doing; more allow higher rates but may reorder. */
  publishSockets: number;
  /** Loadgen WebSocket client: its own minimal one ('raw'), the same with the native receive path after the handshake ('native'), or the `ws` library. */
  client: ClientKind;
  /**
   * Read Herald's event-loop delay from its /metrics each second. A scrape costs the server CPU
   * and blocks its loop while it runs (BENCHMARKS.md), which the peers (no metrics) never pay, so
   * latency comparisons may turn it off.
   */
  loopDelay?: boolean | undefined;
  /** Publishing scenarios: publish at the rate this long before the measured window (JIT warm-up). */
  warmupS?: number | undefined;
  /** `"delivery"` of every publish; undefined leaves the server's default (at-most-once). */
  delivery?: DeliveryMode | undefined;
  /** Channels of the multi-channel scenarios (channels: one per connection; burst: all per connection). */
  channelCount?: number | undefined;
  /** users: users have 1, 2, … maxDevices connections in turn. */
  maxDevices?: number | undefined;
  /** storm: % of the connections dropped and reconnected each round, and the rounds. */
  churnPct?: number | undefined;
  rounds?: number | undefined;
  /** saturate: stop raising the rate once p99 passes this, ms; and after this many steps. */
  maxP99Ms?: number | undefined;
  maxSteps?: number | undefined;
}

export interface Pinning {
  server?: string | undefined;
  loadgen?: string | undefined;
}

/** One scenario run against one server; numbers a scenario cannot measure are null. */
export interface RunResult {
  scenario: string;
  server: string;
  connections: number;
  rate: number | null;
  duration_s: number;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  p999_ms: number | null;
  max_ms: number | null;
  deliveries_per_s: number | null;
  server_us_per_delivery: number | null;
  lost: number | null;
  duplicated: number | null;
  out_of_order: number | null;
  /** Server CPU over the measured window, % of one core. */
  cpu_pct: number;
  /** All loadgen processes together over the window, % of one core. */
  loadgen_cpu_pct: number;
  rss_mb: number;
  rss_per_conn_kb: number | null;
  limited_by: 'server' | 'loadgen';
  /** Scenario-specific extras (connected, failed, conns_per_s, published…). */
  [extra: string]: unknown;
}

/** The delivery columns of a scenario that measures no message delivery (idle, connect, admin calls, webhooks). */
export const NO_DELIVERY_FIGURES = {
  p50_ms: null,
  p90_ms: null,
  p99_ms: null,
  p999_ms: null,
  max_ms: null,
  deliveries_per_s: null,
  server_us_per_delivery: null,
  lost: null,
  duplicated: null,
  out_of_order: null,
} as const satisfies Partial<RunResult>;

export interface ScenarioContext {
  server: ServerUnderTest;
  options: RunOptions;
  /** The Herald configuration variant of this run (Scenario.variants), if the scenario has any. */
  variant?: string | undefined;
  /** What the scenario's `prepare` started before the server, if it has one. */
  prepared?: Prepared | undefined;
  pin: Pinning;
  /** A progress line on stderr, prefixed with the run's label. */
  progress(line: string): void;
}

export interface Scenario {
  name: string;
  summary: string;
  /** Defaults for options the user did not give. */
  defaults: Partial<RunOptions>;
  /** Delivery modes `bench compare` runs each server in when `--modes` is not given. */
  compareModes?: DeliveryMode[];
  /** Set when only Herald can run the scenario: why (e.g. the peers have no tag filters). */
  heraldOnly?: string;
  /** Columns of its result tables, when its run lines are not the fan-out kind. */
  columns?: Column[];
  /** Keys of its run lines `compare` gives ratios of, beyond the common ones, and which way is better. */
  ratioKeys?: Record<string, 'lower' | 'higher'>;
  /**
   * Herald configurations `compare` runs as targets of their own on each server, first first (its
   * medians are the ratios' numerator): e.g. JWT-only against the connect proxy in one invocation.
   */
  variants?: readonly string[];
  /**
   * Starts what the server under test must find running when it starts (a proxy backend, a webhook
   * receiver), and says what to add to its configuration; `close` runs after the server stopped.
   */
  prepare?(setup: PrepareSetup): Promise<Prepared>;
  run(ctx: ScenarioContext): Promise<RunResult>;
}

export interface PrepareSetup {
  server: ServerName;
  /** The run's variant; undefined on `run <scenario>`, which takes the scenario's first. */
  variant: string | undefined;
  options: RunOptions;
  progress(line: string): void;
}

export interface Prepared {
  /** Top-level sections merged over the benchmark's Herald configuration. */
  heraldConfig: Record<string, unknown>;
  /** The scenario's own handle on what it started (its backend, its receiver). */
  state: unknown;
  close(): Promise<void>;
}

export function startLoadGen(ctx: ScenarioContext, connections = ctx.options.connections): Promise<LoadGen> {
  return LoadGen.start({
    connections,
    workers: ctx.options.workers,
    cpus: ctx.pin.loadgen,
    sourceAddresses: ctx.options.sourceAddresses,
    log: ctx.progress,
  });
}

/** How the connections subscribe and who they are; default: all on the bench channel, `user-<g>`. */
export interface ConnectionLayout {
  subscriptions?: WorkerConfig['subscriptions'];
  /** Channel every connection subscribes to ('' none); default the bench channel. */
  channel?: string | undefined;
  audience?: AudienceSpec | undefined;
}

/** Opens every connection of the loadgen (connect + subscribe as `layout` says) and logs how it went. */
export async function openConnections(ctx: ScenarioContext, loadgen: LoadGen, layout: ConnectionLayout = {}): Promise<OpenResult> {
  const { server, options } = ctx;
  const opened = await loadgen.open(
    {
      url: server.wsUrl,
      urls: server.wsUrls,
      subscriptions: layout.subscriptions,
      audience: layout.audience,
      dialect: server.dialect,
      client: options.client,
      channel: layout.channel ?? options.channel,
      secret: server.secret,
      concurrency: options.concurrency,
      connectTimeoutMs: 30_000,
    },
    600_000,
  );
  ctx.progress(`${opened.connected} connected, ${opened.failed} failed in ${(opened.elapsedMs / 1000).toFixed(1)} s`);
  for (const e of opened.errors) ctx.progress(`  ${e}`);
  if (opened.connected === 0) throw new Error(`no connection succeeded: ${opened.errors.join('; ')}`);
  return opened;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Per-second samples of a run, for the report's time-series charts. */
export interface Series {
  /** Seconds since the recorder started. */
  t: number[];
  cpu_pct: number[];
  rss_mb: number[];
  deliveries_per_s: number[];
  /** Herald's p99 event-loop delay over the second (from its /metrics); null when unknown. */
  loop_delay_p99_ms?: Array<number | null>;
}

/** Collects the samples of one or more consecutive windows of a run on one time axis. */
export class SeriesRecorder {
  readonly series: Series = { t: [], cpu_pct: [], rss_mb: [], deliveries_per_s: [] };
  private readonly startAt = performance.now();

  add(sample: { cpuPct: number; rssMb: number; deliveriesPerS: number; loopDelayMs: number | undefined }, withLoopDelay: boolean): void {
    const s = this.series;
    s.t.push(round((performance.now() - this.startAt) / 1000, 1));
    s.cpu_pct.push(round(sample.cpuPct, 1));
    s.rss_mb.push(round(sample.rssMb, 1));
    s.deliveries_per_s.push(Math.round(sample.deliveriesPerS));
    if (withLoopDelay) (s.loop_delay_p99_ms ??= []).push(sample.loopDelayMs === undefined ? null : round(sample.loopDelayMs, 2));
  }
}

export interface WindowTotals {
  wallMs: number;
  /** Summed over every server process (a cluster's nodes). */
  serverCpuMicros: number;
  /** The part of serverCpuMicros spent in the kernel (stime): syscalls, loopback TCP. */
  serverSysMicros: number;
  /** The broker process (redis-server) over the window; undefined without one. */
  brokerCpuMicros: number | undefined;
  brokerCpuPct: number | undefined;
  serverCpuPct: number;
  loadgenCpuPct: number;
  /** CPU % of the loadgen's busiest core: the sum when pinned to one core, else the busiest process. */
  loadgenCorePct: number;
  limitedBy: 'server' | 'loadgen';
  /** CPU used on the machine by anything but the server, the loadgen and this harness, % of one core. */
  otherCpuPct: number;
  /** CPU the hypervisor took from this machine's cores, % of one core. */
  stealPct: number;
  /** The recorder's samples so far (this window's and any earlier one's on the same recorder). */
  series: Series;
}

/**
 * A measured window: server and loadgen CPU from /proc, plus each second a progress line (`extra`
 * adds scenario figures to it) and a sample into `recorder` (server CPU and RSS, deliveries/s
 * from the workers' ticks, and Herald's event-loop delay from its /metrics).
 */
export class MeasuredWindow {
  private readonly server: CpuMeter;
  private readonly broker: CpuMeter | undefined;
  private readonly loadgen: CpuMeter;
  private readonly perProcess: Map<number, number>;
  private readonly timer: NodeJS.Timeout;
  private readonly startAt = performance.now();
  private readonly machineStart = machineCpuMicros();
  private readonly selfStart = cpuMicros(process.pid) ?? 0;
  private readonly serverSysStart: number;
  private machineLast = this.machineStart;
  private othersLast = 0;
  private readonly loadgenPids: number[];

  constructor(
    private readonly ctx: ScenarioContext,
    loadgen: LoadGen,
    extra: () => string = () => '',
    private readonly recorder = new SeriesRecorder(),
  ) {
    this.loadgenPids = loadgen.pids;
    const herald = ctx.server.dialect === 'herald' && ctx.server.name.startsWith('herald') && ctx.options.loopDelay !== false;
    const loopDelay = herald ? new LoopDelayProbe(`${new URL(ctx.server.publishUrl).origin}/metrics`) : undefined;
    loopDelay?.scrape();
    let lastDeliveries = loadgen.deliveriesSoFar;
    this.server = new CpuMeter(ctx.server.pids);
    this.serverSysStart = this.serverSys();
    this.broker = ctx.server.brokerPid !== undefined ? new CpuMeter([ctx.server.brokerPid]) : undefined;
    this.loadgen = new CpuMeter(this.loadgenPids);
    this.perProcess = new Map(this.loadgenPids.map((pid) => [pid, cpuMicros(pid) ?? 0]));
    this.othersLast = this.ownCpu();
    let lastAt = this.startAt;
    this.timer = setInterval(() => {
      const now = performance.now();
      const t = Math.round((now - this.startAt) / 1000);
      let rss = 0;
      for (const pid of ctx.server.pids) rss += (rssBytes(pid) ?? 0) / 2 ** 20;
      const broker = this.broker ? ` redis cpu ${this.broker.lap().toFixed(0)}%` : '';
      const machine = machineCpuMicros();
      const own = this.ownCpu();
      const other = ((machine.busy - this.machineLast.busy - (own - this.othersLast)) / ((now - lastAt) * 1000)) * 100;
      this.machineLast = machine;
      this.othersLast = own;
      const deliveriesNow = loadgen.deliveriesSoFar;
      const deliveriesPerS = Math.max(0, deliveriesNow - lastDeliveries) / ((now - lastAt) / 1000);
      lastDeliveries = deliveriesNow;
      lastAt = now;
      const cpu = this.server.lap();
      const loop = loopDelay?.latestMs;
      this.recorder.add({ cpuPct: cpu, rssMb: rss, deliveriesPerS, loopDelayMs: loop }, loopDelay !== undefined);
      loopDelay?.scrape();
      const loopText = loop !== undefined ? ` loop p99 ${loop.toFixed(1)} ms,` : '';
      ctx.progress(`t=${t}s server cpu ${cpu.toFixed(0)}% rss ${rss.toFixed(0)} MB,${loopText}${broker} loadgen cpu ${this.loadgen.lap().toFixed(0)}%, other ${Math.max(0, other).toFixed(0)}%; deliveries ${Math.round(deliveriesPerS)}/s ${extra()}`);
    }, 1000);
  }

  private serverSys(): number {
    let sum = 0;
    for (const pid of this.ctx.server.pids) sum += sysCpuMicros(pid) ?? 0;
    return sum;
  }

  /** CPU µs used so far by the server, the loadgen and this process. */
  private ownCpu(): number {
    let sum = cpuMicros(process.pid) ?? 0;
    for (const pid of this.ctx.server.pids) sum += cpuMicros(pid) ?? 0;
    if (this.ctx.server.brokerPid !== undefined) sum += cpuMicros(this.ctx.server.brokerPid) ?? 0;
    for (const pid of this.loadgenPids) sum += cpuMicros(pid) ?? 0;
    return sum;
  }

  stop(): WindowTotals {
    clearInterval(this.timer);
    const machine = machineCpuMicros();
    const server = this.server.total();
    const broker = this.broker?.total();
    const loadgen = this.loadgen.total();
    const self = (cpuMicros(process.pid) ?? 0) - this.selfStart;
    const wallMicros = server.wallMs * 1000;
    const otherMicros = machine.busy - this.machineStart.busy - server.cpuMicros - (broker?.cpuMicros ?? 0) - loadgen.cpuMicros - self;
    let busiest = 0;
    for (const [pid, before] of this.perProcess) busiest = Math.max(busiest, (cpuMicros(pid) ?? before) - before);
    const busiestPct = (busiest / (loadgen.wallMs * 1000)) * 100;
    const loadgenCorePct = this.ctx.pin.loadgen !== undefined ? loadgen.pct : busiestPct;
    return {
      wallMs: server.wallMs,
      serverCpuMicros: server.cpuMicros,
      serverSysMicros: this.serverSys() - this.serverSysStart,
      brokerCpuMicros: broker?.cpuMicros,
      brokerCpuPct: broker ? round(broker.pct, 1) : undefined,
      serverCpuPct: round(server.pct, 1),
      loadgenCpuPct: round(loadgen.pct, 1),
      loadgenCorePct: round(loadgenCorePct, 1),
      limitedBy: server.pct >= loadgenCorePct ? 'server' : 'loadgen',
      otherCpuPct: round(Math.max(0, (otherMicros / wallMicros) * 100), 1),
      stealPct: round(((machine.steal - this.machineStart.steal) / wallMicros) * 100, 1),
      series: this.recorder.series,
    };
  }
}

/** RSS summed over the server's processes. */
export function serverRss(ctx: ScenarioContext): number {
  let sum = 0;
  for (const pid of ctx.server.pids) sum += rssBytes(pid) ?? 0;
  return sum;
}

export function mb(bytes: number | undefined): number {
  return round((bytes ?? 0) / 2 ** 20, 1);
}
