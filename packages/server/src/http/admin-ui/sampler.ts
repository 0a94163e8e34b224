/**
 * The admin UI's live numbers: once a second, this node's rates (publishes, deliveries,
 * slow-consumer closes), delivery latency percentiles and event-loop lag are computed from the
 * node's metrics, then combined with every node's latest figures (gathered through the cluster's
 * `stats` operation, where each node reports its own `localFields`) into one sample. The last
 * `historySeconds` samples are kept in a ring; nothing else grows.
 *
 * Combining: rates and connections are summed over the nodes that answered; p99 and event-loop
 * lag are the worst node's; p50 is the median of the nodes' p50s weighted by their deliveries
 * (quantiles of different nodes cannot be merged exactly; Prometheus over the raw histograms can).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Metrics } from '../../metrics.js';
import type { NodesAnswer } from '../../admin.js';

/** One second of the cluster, as the overview charts it. */
export interface AdminSample {
  /** Unix ms at the end of the second. */
  t: number;
  connections: number;
  publishesPerSecond: number;
  deliveriesPerSecond: number;
  /** Milliseconds, null in a second without deliveries. */
  deliveryP50Ms: number | null;
  deliveryP99Ms: number | null;
  slowConsumerCloses: number;
  eventLoopLagMs: number;
  /** Nodes that answered this second. */
  nodes: number;
}

/** What one node reports of its last second (flat numbers, as the `stats` operation carries them). */
export interface NodeFigures {
  publishesPerSecond: number;
  deliveriesPerSecond: number;
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  slowConsumerCloses: number;
  eventLoopLagMs: number;
}

export interface SamplerSources {
  metrics: Pick<Metrics, 'publishes' | 'deliveries' | 'deliveryLatency' | 'slowConsumerCloses'>;
  /** Every node's counters (admin `stats`): each entry of byNode carries `connections` and, on nodes running the sampler, the NodeFigures fields. */
  clusterStats(): Promise<{ byNode?: unknown; nodes?: NodesAnswer }>;
  historySeconds: number;
}

const LAG_RESOLUTION_MS = 50;

interface Totals {
  publishes: number;
  deliveries: number;
  slow: number;
  buckets: Array<[number, number]>;
}

export class AdminSampler {
  private readonly ring: AdminSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private last: Totals | undefined;
  private figures: NodeFigures | undefined;
  private readonly lag: IntervalHistogram;

  constructor(private readonly s: SamplerSources) {
    // A finer resolution wakes an idle server more often than a chart needs.
    this.lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  }

  start(intervalMs = 1000): void {
    this.lag.enable();
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.lag.disable();
  }

  /** The samples held, oldest first. */
  samples(): AdminSample[] {
    return [...this.ring];
  }

  /** This node's last second, for the `stats` operation (empty until the first second has passed). */
  localFields(): Partial<NodeFigures> {
    return this.figures ?? {};
  }

  /** One sampling step; the timer calls it, tests may too. Overlapping steps are skipped (a slow cluster answer). */
  async tick(now = Date.now()): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.sampleLocal();
      const stats = await this.s.clusterStats();
      this.push(combine(now, Array.isArray(stats.byNode) ? (stats.byNode as Array<Record<string, unknown>>) : []));
    } catch {
      // A failed gather leaves a gap in the chart rather than a wrong point.
    } finally {
      this.running = false;
    }
  }

  private push(sample: AdminSample): void {
    this.ring.push(sample);
    if (this.ring.length > this.s.historySeconds) this.ring.splice(0, this.ring.length - this.s.historySeconds);
  }

  private async sampleLocal(): Promise<void> {
    const m = this.s.metrics;
    const [pub, del, lat, slow] = await Promise.all([m.publishes.get(), m.deliveries.get(), m.deliveryLatency.get(), m.slowConsumerCloses.get()]);
    const sum = (vs: Array<{ value: number }>) => vs.reduce((n, v) => n + v.value, 0);
    const buckets = lat.values
      .filter((v) => v.metricName?.endsWith('_bucket'))
      .map((v): [number, number] => [v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), v.value]);
    const now: Totals = { publishes: sum(pub.values), deliveries: sum(del.values), slow: sum(slow.values), buckets };
    const before = this.last;
    this.last = now;
    // The histogram records the time between the monitor's timer runs, the resolution included: lag is what is beyond it.
    const lagMs = this.lag.count > 0 ? Math.max(0, this.lag.percentile(99) / 1e6 - LAG_RESOLUTION_MS) : 0;
    this.lag.reset();
    if (!before) return;
    const delta = now.buckets.map(([le, c], i): [number, number] => [le, c - (before.buckets[i]?.[1] ?? 0)]);
    this.figures = {
      publishesPerSecond: now.publishes - before.publishes,
      deliveriesPerSecond: now.deliveries - before.deliveries,
      deliveryP50Ms: quantileMs(delta, 0.5) ?? 0,
      deliveryP99Ms: quantileMs(delta, 0.99) ?? 0,
      slowConsumerCloses: now.slow - before.slow,
      eventLoopLagMs: round(lagMs),
    };
  }
}

/**
 * The q-quantile in ms of cumulative histogram buckets ([upper bound in s, count]), linear within
 * a bucket as Prometheus's histogram_quantile does; undefined without observations.
 */
export function quantileMs(buckets: ReadonlyArray<readonly [number, number]>, q: number): number | undefined {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      // Past the last finite bound: the best answer is that bound.
      if (!Number.isFinite(le)) return round(prevLe * 1000);
      const within = count - prevCount;
      const frac = within > 0 ? (rank - prevCount) / within : 1;
      return round((prevLe + (le - prevLe) * frac) * 1000);
    }
    prevLe = le;
    prevCount = count;
  }
  return round(prevLe * 1000);
}

/** One cluster sample from each node's stats (see the module comment for how figures combine). */
export function combine(t: number, byNode: ReadonlyArray<Record<string, unknown>>): AdminSample {
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  let connections = 0, publishes = 0, deliveries = 0, slow = 0, lag = 0, p99: number | null = null;
  const p50s: Array<[number, number]> = [];
  for (const n of byNode) {
    connections += num(n.connections);
    publishes += num(n.publishesPerSecond);
    deliveries += num(n.deliveriesPerSecond);
    slow += num(n.slowConsumerCloses);
    lag = Math.max(lag, num(n.eventLoopLagMs));
    if (num(n.deliveriesPerSecond) > 0) {
      p99 = Math.max(p99 ?? 0, num(n.deliveryP99Ms));
      p50s.push([num(n.deliveryP50Ms), num(n.deliveriesPerSecond)]);
    }
  }
  return {
    t, connections, publishesPerSecond: publishes, deliveriesPerSecond: deliveries,
    deliveryP50Ms: weightedMedian(p50s), deliveryP99Ms: p99, slowConsumerCloses: slow, eventLoopLagMs: lag, nodes: byNode.length,
  };
}

function weightedMedian(values: Array<[number, number]>): number | null {
  if (values.length === 0) return null;
  values.sort((a, b) => a[0] - b[0]);
  const half = values.reduce((n, [, w]) => n + w, 0) / 2;
  let acc = 0;
  for (const [v, w] of values) if ((acc += w) >= half) return v;
  return values.at(-1)![0];
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
