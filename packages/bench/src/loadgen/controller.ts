/**
 * The harness's handle on the load generator: worker processes holding the connections and one
 * publisher process, all optionally pinned to the loadgen's cores. Connections are split evenly
 * over the workers and spread over source addresses 127.0.0.x so tens of thousands fit under the
 * ephemeral-port range; the process fd limit is respected, never raised.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { drainOutput, raiseOpenFiles, spawnNode, stopChild } from '../lib/child.js';
import { decodeHistogram, newLatencyHistogram, type Histogram } from '../lib/stats.js';
import type { FromPublisher, FromWorker, OpenResult, PublisherConfig, PublishReport, ToPublisher, ToWorker, WorkerConfig, WorkerReport } from './messages.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const PUBLISHER = fileURLToPath(new URL('./publisher.js', import.meta.url));

/** File descriptors a worker keeps for itself besides its sockets. */
const FD_RESERVE = 256;

export interface LoadGenOptions {
  connections: number;
  /** Worker processes; 0 picks as few as the fd limit allows. */
  workers: number;
  /** `taskset -c` cores for the workers and the publisher; undefined runs unpinned. */
  cpus?: string | undefined;
  /** Number of source addresses 127.0.0.2… to spread connections over. */
  sourceAddresses: number;
  log: (line: string) => void;
}

export interface LoadGenReport {
  latency: Histogram;
  /** `--client native`: publish to the kernel's receive timestamp, µs (empty otherwise). */
  wire: Histogram;
  /** Storm: reconnect handshakes (TCP connect → subscribed), µs. */
  handshakes: Histogram;
  deliveries: number;
  unexpected: number;
  reconnects: number;
  reconnectsFailed: number;
  unique: number;
  duplicated: number;
  outOfOrder: number;
  maxSeq: number;
  open: number;
  closedByCode: Record<string, number>;
  pings: number;
  errorFrames: number;
  acks: number;
  ackFrames: number;
  /** Sum of the workers' self-reported CPU over the window, µs. */
  workerCpuMicros: number;
  /** Frees the histograms. */
  destroy(): void;
}

/**
 * The open-files limit a loadgen process gets when it asks for `wanted`: raised as far as the
 * hard limit (or, for root where permitted, beyond it) allows. Here both limits are 20 000 and
 * cannot be raised, so more connections take more worker processes.
 */
export function fdLimit(wanted: number): number {
  try {
    return Number(execFileSync('sh', ['-c', `${raiseOpenFiles(wanted)}ulimit -n`], { encoding: 'utf8' }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

/** Resolves with the child's next message for which `pick` returns a value. */
function nextMessage<M, T>(child: ChildProcess, pick: (msg: M) => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: unknown): void => {
      const value = pick(msg as M);
      if (value === undefined) return;
      cleanup();
      resolve(value);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${what}: process exited (code ${code})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export class LoadGen {
  private readonly deliveriesBy = new Map<ChildProcess, number>();
  private readonly openBy = new Map<ChildProcess, number>();
  /** `measure` calls so far; ticks of an earlier epoch carry counts from before the reset. */
  private epoch = 0;

  private constructor(
    private readonly workers: ChildProcess[],
    private readonly publisher: ChildProcess,
    private readonly options: LoadGenOptions,
  ) {
    for (const w of workers) {
      w.on('message', (msg: FromWorker) => {
        if (msg.ev === 'tick') {
          this.openBy.set(w, msg.open);
          if (msg.epoch === this.epoch) this.deliveriesBy.set(w, msg.deliveries);
        }
      });
    }
  }

  static async start(options: LoadGenOptions): Promise<LoadGen> {
    const openFiles = Math.min(1 << 20, options.connections + FD_RESERVE);
    const perWorker = fdLimit(openFiles) - FD_RESERVE;
    const needed = Math.ceil(options.connections / perWorker);
    const count = Math.max(1, options.workers || 1, needed);
    if (options.workers && options.workers < needed) options.log(`loadgen: ${options.workers} worker(s) cannot hold ${options.connections} connections under the fd limit; using ${count}`);
    const spawnChild = (script: string): ChildProcess => {
      // BENCH_LOADGEN_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the loadgen itself.
      const nodeArgs = process.env.BENCH_LOADGEN_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
      const child = spawnNode(script, [], { ipc: true, cpus: options.cpus, nodeArgs, openFiles });
      drainOutput(child, (line) => options.log(`loadgen: ${line}`));
      return child;
    };
    const workers = Array.from({ length: count }, () => spawnChild(WORKER));
    const publisher = spawnChild(PUBLISHER);
    const ready = (c: ChildProcess, what: string): Promise<true> =>
      nextMessage<FromWorker | FromPublisher, true>(c, (m) => (m.ev === 'ready' ? true : undefined), 15_000, what);
    await Promise.all([...workers.map((w, i) => ready(w, `worker ${i}`)), ready(publisher, 'publisher')]);
    return new LoadGen(workers, publisher, options);
  }

  /** PIDs of every loadgen process (for CPU accounting). */
  get pids(): number[] {
    return [...this.workers, this.publisher].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  get workerCount(): number {
    return this.workers.length;
  }

  /** Deliveries counted so far (from the workers' once-a-second ticks). */
  get deliveriesSoFar(): number {
    let sum = 0;
    for (const n of this.deliveriesBy.values()) sum += n;
    return sum;
  }

  get openSoFar(): number {
    let sum = 0;
    for (const n of this.openBy.values()) sum += n;
    return sum;
  }

  /** Merges the workers' open (or reconnect) results. */
  private static merge(results: OpenResult[]): OpenResult {
    return {
      connected: results.reduce((s, r) => s + r.connected, 0),
      failed: results.reduce((s, r) => s + r.failed, 0),
      elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
      errors: results.flatMap((r) => r.errors).slice(0, 5),
    };
  }

  /** Opens all connections (each connects and subscribes) and waits until every one is done. */
  async open(base: Omit<WorkerConfig, 'count' | 'firstIndex' | 'sourceAddresses'>, timeoutMs: number): Promise<OpenResult> {
    const n = this.workers.length;
    const addresses = Array.from({ length: Math.max(1, Math.min(250, this.options.sourceAddresses)) }, (_, i) => `127.0.0.${i + 2}`);
    let first = 0;
    const results = await Promise.all(
      this.workers.map((w, i) => {
        const count = Math.floor(this.options.connections / n) + (i < this.options.connections % n ? 1 : 0);
        const config: WorkerConfig = { ...base, count, firstIndex: first, sourceAddresses: addresses };
        first += count;
        w.send({ cmd: 'open', config } satisfies ToWorker);
        return nextMessage<FromWorker, OpenResult>(w, (m) => (m.ev === 'opened' ? m.result : undefined), timeoutMs, `worker ${i} open`);
      }),
    );
    return LoadGen.merge(results);
  }

  /** Storm: every worker drops its churning connections at once and reconnects them; resolves when all are back (or failed). */
  async churn(timeoutMs: number): Promise<OpenResult> {
    const results = await Promise.all(
      this.workers.map((w, i) => {
        w.send({ cmd: 'churn' } satisfies ToWorker);
        return nextMessage<FromWorker, OpenResult>(w, (m) => (m.ev === 'churned' ? m.result : undefined), timeoutMs, `worker ${i} churn`);
      }),
    );
    return LoadGen.merge(results);
  }

  /** Starts the measured window in every worker. */
  measure(): void {
    this.epoch++;
    for (const w of this.workers) w.send({ cmd: 'measure' } satisfies ToWorker);
    for (const w of this.workers) this.deliveriesBy.set(w, 0);
  }

  /** Runs the publisher to completion. */
  publish(config: PublisherConfig): Promise<PublishReport> {
    this.publisher.send({ cmd: 'publish', config } satisfies ToPublisher);
    const timeoutMs = config.durationS * 1000 + 60_000;
    return nextMessage<FromPublisher, PublishReport>(this.publisher, (m) => (m.ev === 'published' ? m.report : undefined), timeoutMs, 'publisher');
  }

  /** Waits until `expected` deliveries were counted, or nothing arrived for `quietMs`, or `timeoutMs`. */
  async drain(expected: number, quietMs: number, timeoutMs: number): Promise<void> {
    const start = performance.now();
    let last = -1;
    let lastChange = start;
    for (;;) {
      const counts = await Promise.all(
        this.workers.map((w, i) => {
          w.send({ cmd: 'count' } satisfies ToWorker);
          return nextMessage<FromWorker, number>(w, (m) => (m.ev === 'count' ? m.deliveries : undefined), 30_000, `worker ${i} count`);
        }),
      );
      const deliveries = counts.reduce((s, n) => s + n, 0);
      const now = performance.now();
      if (deliveries >= expected || now - start > timeoutMs) return;
      if (deliveries !== last) {
        last = deliveries;
        lastChange = now;
      } else if (now - lastChange > quietMs) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Asks every worker for its counters and merges them. */
  async report(): Promise<LoadGenReport> {
    const reports = await Promise.all(
      this.workers.map((w, i) => {
        w.send({ cmd: 'report' } satisfies ToWorker);
        return nextMessage<FromWorker, WorkerReport>(w, (m) => (m.ev === 'report' ? m.report : undefined), 30_000, `worker ${i} report`);
      }),
    );
    const latency = newLatencyHistogram();
    const wire = newLatencyHistogram();
    const handshakes = newLatencyHistogram();
    const closedByCode: Record<string, number> = {};
    for (const r of reports) {
      for (const [into, text] of [[latency, r.histogram], [handshakes, r.handshakeHistogram], [wire, r.wireHistogram]] as const) {
        if (text === undefined) continue;
        const h = decodeHistogram(text);
        into.add(h);
        h.destroy();
      }
      for (const [code, n] of Object.entries(r.closedByCode)) closedByCode[code] = (closedByCode[code] ?? 0) + n;
    }
    const sum = (f: (r: WorkerReport) => number): number => reports.reduce((s, r) => s + f(r), 0);
    return {
      latency,
      wire,
      handshakes,
      deliveries: sum((r) => r.deliveries),
      unexpected: sum((r) => r.unexpected),
      reconnects: sum((r) => r.reconnects),
      reconnectsFailed: sum((r) => r.reconnectsFailed),
      unique: sum((r) => r.unique),
      duplicated: sum((r) => r.duplicated),
      outOfOrder: sum((r) => r.outOfOrder),
      maxSeq: Math.max(0, ...reports.map((r) => r.maxSeq)),
      open: sum((r) => r.open),
      closedByCode,
      pings: sum((r) => r.pings),
      errorFrames: sum((r) => r.errorFrames),
      acks: sum((r) => r.acks),
      ackFrames: sum((r) => r.ackFrames),
      workerCpuMicros: sum((r) => r.cpuMicros),
      destroy: () => {
        latency.destroy();
        wire.destroy();
        handshakes.destroy();
      },
    };
  }

  async close(): Promise<void> {
    for (const w of this.workers) if (w.connected) w.send({ cmd: 'close' } satisfies ToWorker);
    await Promise.all([...this.workers, this.publisher].map((c) => stopChild(c, 3000)));
  }
}
