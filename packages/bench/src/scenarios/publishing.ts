/**
 * The scenarios that publish over HTTP and time every delivery (fanout, reliable, channels,
 * burst, users, filter; saturate repeats the measured part at rising rates) share one run: open
 * the connections (subscribed and identified as the layout says), publish at the rate for the
 * duration, wait for every expected delivery, then report.
 *
 * Expected deliveries are counted per target: the messages the server accepted for a channel,
 * user or filter times the connections that should get them. Every target carries its own seq
 * 1, 2, 3… (burst: one seq run across the channels of a batch; filter: one global seq that each
 * connection maps onto the publishes its tags match), so each connection sees an unbroken run and
 * the worker's lost / duplicated / out-of-order accounting holds.
 */
import { decodeHistogram, round, summarize } from '../lib/stats.js';
import { connectionsOfUser, FILTER_CASES, filterAudience, userCount, userName } from '../loadgen/audience.js';
import type { LoadGen, LoadGenReport } from '../loadgen/controller.js';
import type { DeliveryMode, OpenResult, PublisherConfig, PublishReport } from '../loadgen/messages.js';
import {
  MeasuredWindow,
  mb,
  openConnections,
  serverRss,
  sleep,
  startLoadGen,
  type ConnectionLayout,
  type RunOptions,
  type RunResult,
  type Scenario,
  type ScenarioContext,
  type SeriesRecorder,
} from './scenario.js';

/**
 * After an at-least-once run the connections stay open this long (outside the measured window):
 * Herald's first retransmission of an unacknowledged delivery is due after
 * delivery.ackTimeoutMs + retry.initialDelayMs ± jitter (defaults 10 s + 2 s ± 20 %), so any
 * ACK that did not take effect shows up as a delivery arriving in this wait.
 */
const RETRANSMIT_WATCH_MS = 15_000;

/**
 * Who gets what. `single`: every connection on `options.channel`. `one`: channelCount channels,
 * connection g on channel g mod n, publishes spread over them. `all`: every connection on all
 * channelCount channels, one batch publish (a message per channel) per tick. `users`: no
 * subscriptions; users with 1…maxDevices connections, publishes spread round robin over the
 * users. `filter`: no subscriptions; tagged connections, filtered broadcasts (audience.ts).
 */
export type Layout = 'single' | 'one' | 'all' | 'users' | 'filter';

export interface PublishingSpec {
  name: string;
  summary: string;
  defaults: Partial<RunOptions>;
  /** Delivery mode when the run does not set one; undefined = the server's default. */
  delivery?: DeliveryMode;
  /** See Scenario.compareModes. */
  compareModes?: DeliveryMode[];
  /** See Scenario.heraldOnly. */
  heraldOnly?: string;
  layout: Layout;
}

/** A layout made concrete for one run: how to open the connections, what to publish, what to expect. */
export interface PublishPlan {
  connections: ConnectionLayout;
  publish: Pick<PublisherConfig, 'targets' | 'filters'>;
  /** Deliveries expected and messages accepted, given the publisher's report and the connections that connected. */
  expect(published: PublishReport, connected: number): { expected: number; messages: number };
  /** Layout figures for the result line. */
  extras: Record<string, number>;
}

function channelNames(options: RunOptions): string[] {
  const n = Math.max(1, options.channelCount ?? 1);
  return Array.from({ length: n }, (_, i) => `${options.channel}-${i}`);
}

/** Connections subscribed to channel c when `connections` are spread one per connection over n channels. */
function spreadSubscribers(connections: number, n: number, c: number): number {
  return Math.floor(connections / n) + (c < connections % n ? 1 : 0);
}

const sum = (xs: readonly number[]): number => xs.reduce((s, n) => s + n, 0);

// A failed connection is left out of the expectations as if it were the last ones (it may have
// been another: `failed` says when this approximation was needed).
export function publishPlan(layout: Layout, options: RunOptions): PublishPlan {
  switch (layout) {
    case 'single':
      return { connections: {}, publish: {}, expect: (p, connected) => ({ expected: p.ok * connected, messages: p.ok }), extras: { channels: 1 } };
    case 'one':
    case 'all': {
      const names = channelNames(options);
      return {
        connections: { subscriptions: { channels: names, perConnection: layout } },
        publish: { targets: { names, mode: layout === 'one' ? 'spread' : 'batch', field: 'channel' } },
        expect: (p, connected) => {
          const ok = p.okByTarget ?? [];
          const messages = sum(ok);
          const expected = layout === 'all' ? messages * connected : sum(ok.map((n, c) => n * spreadSubscribers(connected, names.length, c)));
          return { expected, messages };
        },
        extras: { channels: names.length },
      };
    }
    case 'users': {
      const maxDevices = Math.max(1, options.maxDevices ?? 1);
      const users = userCount(options.connections, maxDevices);
      return {
        connections: { channel: '', audience: { kind: 'users', maxDevices } },
        publish: { targets: { names: Array.from({ length: users }, (_, u) => userName(u)), mode: 'spread', field: 'user' } },
        expect: (p, connected) => {
          const ok = p.okByTarget ?? [];
          return { expected: sum(ok.map((n, u) => n * connectionsOfUser(u, connected, maxDevices))), messages: sum(ok) };
        },
        extras: { users, max_devices: maxDevices },
      };
    }
    case 'filter':
      return {
        connections: { channel: '', audience: { kind: 'filter' } },
        publish: { filters: FILTER_CASES.map((c) => c.filter) },
        expect: (p, connected) => {
          const ok = p.okByTarget ?? [];
          return { expected: sum(ok.map((n, f) => n * filterAudience(connected, f))), messages: sum(ok) };
        },
        extras: { filters: FILTER_CASES.length },
      };
  }
}

export interface PublishingWindow {
  rate: number;
  durationS: number;
  delivery: DeliveryMode | undefined;
  /** Seqs continue after this many earlier publishes on the same connections. */
  seqOffset?: number;
  /** Samples go here (a run of several windows keeps one time axis). */
  recorder?: SeriesRecorder;
  /** Runs alongside the publisher (storm: the reconnect rounds); awaited before the drain. */
  during?: () => Promise<void>;
  /** Scenario figures read from the loadgen's report, added to the run line. */
  fromReport?: (report: LoadGenReport) => Record<string, unknown>;
}

/**
 * One measured publishing window on open connections: publish at `rate` for `durationS`, wait
 * for the expected deliveries (at most 20 s), and build the run line.
 */
export async function measurePublishing(
  ctx: ScenarioContext,
  name: string,
  loadgen: LoadGen,
  opened: OpenResult,
  plan: PublishPlan,
  w: PublishingWindow,
): Promise<{ result: RunResult; published: PublishReport; lastDeliveries: number }> {
  const { server, options } = ctx;
  loadgen.measure();
  const window = new MeasuredWindow(ctx, loadgen, () => `open ${loadgen.openSoFar}`, w.recorder);
  const config: PublisherConfig = {
    url: server.publishUrl,
    apiKey: server.apiKey,
    channel: options.channel,
    rate: w.rate,
    durationS: w.durationS,
    sockets: options.publishSockets,
    maxInFlight: 1000,
    delivery: w.delivery,
    seqOffset: w.seqOffset,
    ...plan.publish,
  };
  const [published] = await Promise.all([loadgen.publish(config), w.during?.()]);
  const { expected, messages } = plan.expect(published, opened.connected);
  await loadgen.drain(expected, 2000, 20_000);
  // ACKs of the last deliveries are in flight still: give them a moment inside the window.
  if (w.delivery === 'at-least-once') await sleep(200);
  const totals = window.stop();
  const rss = serverRss(ctx);
  const report = await loadgen.report();
  if (published.errors > 0) ctx.progress(`publish errors: ${published.errors} (first: ${published.firstError})`);
  if (report.unexpected > 0) ctx.progress(`${report.unexpected} deliveries reached connections they were not meant for`);
  const latency = summarize(report.latency);
  const wire = report.wire.totalCount > 0 ? summarize(report.wire) : undefined;
  const publishLatency = summarize(decodeHistogram(published.histogram));
  const brokerUs = totals.brokerCpuMicros;
  const result: RunResult = {
    scenario: name,
    server: server.name,
    connections: opened.connected,
    rate: w.rate,
    duration_s: w.durationS,
    p50_ms: latency.p50_ms,
    p90_ms: latency.p90_ms,
    p99_ms: latency.p99_ms,
    p999_ms: latency.p999_ms,
    max_ms: latency.max_ms,
    ...(wire ? { wire_p50_ms: wire.p50_ms, wire_p90_ms: wire.p90_ms, wire_p99_ms: wire.p99_ms, wire_p999_ms: wire.p999_ms, wire_max_ms: wire.max_ms } : {}),
    deliveries_per_s: round(report.deliveries / (totals.wallMs / 1000), 0),
    server_us_per_delivery: report.deliveries > 0 ? round(totals.serverCpuMicros / report.deliveries, 2) : null,
    lost: Math.max(0, expected - report.unique),
    duplicated: report.duplicated,
    out_of_order: report.outOfOrder,
    cpu_pct: totals.serverCpuPct,
    server_sys_share: totals.serverCpuMicros > 0 ? round(totals.serverSysMicros / totals.serverCpuMicros, 2) : null,
    loadgen_cpu_pct: totals.loadgenCpuPct,
    loadgen_core_pct: totals.loadgenCorePct,
    rss_mb: mb(rss),
    rss_per_conn_kb: null,
    limited_by: totals.limitedBy,
    other_cpu_pct: totals.otherCpuPct,
    steal_pct: totals.stealPct,
    failed: opened.failed,
    delivery: w.delivery ?? 'default',
    nodes: server.pids.length,
    ...plan.extras,
    published: published.ok,
    messages,
    publish_errors: published.errors,
    publish_late: published.late,
    publish_p99_ms: publishLatency.p99_ms,
    server_us_per_message: messages > 0 ? round(totals.serverCpuMicros / messages, 1) : null,
    deliveries: report.deliveries,
    expected,
    unexpected: report.unexpected,
    acks: report.acks,
    ack_frames: report.ackFrames,
    error_frames: report.errorFrames,
    closed: report.closedByCode,
    loadgen_workers: loadgen.workerCount,
    ...w.fromReport?.(report),
    series: totals.series,
  };
  if (brokerUs !== undefined) {
    result.redis_cpu_pct = totals.brokerCpuPct;
    result.redis_us_per_message = messages > 0 ? round(brokerUs / messages, 1) : null;
    result.redis_us_per_delivery = report.deliveries > 0 ? round(brokerUs / report.deliveries, 2) : null;
    result.total_us_per_delivery = report.deliveries > 0 ? round((totals.serverCpuMicros + brokerUs) / report.deliveries, 2) : null;
  }
  const lastDeliveries = report.deliveries;
  report.destroy();
  return { result, published, lastDeliveries };
}

/** Starts the loadgen and opens the plan's connections; `use` runs with them, and the loadgen is closed after. */
export async function withConnections<T>(ctx: ScenarioContext, plan: PublishPlan, use: (loadgen: LoadGen, opened: OpenResult) => Promise<T>): Promise<T> {
  const loadgen = await startLoadGen(ctx);
  try {
    const opened = await openConnections(ctx, loadgen, plan.connections);
    await sleep(1000);
    return await use(loadgen, opened);
  } finally {
    await loadgen.close();
  }
}

export function publishingScenario(spec: PublishingSpec): Scenario {
  return {
    name: spec.name,
    summary: spec.summary,
    defaults: spec.defaults,
    ...(spec.compareModes ? { compareModes: spec.compareModes } : {}),
    ...(spec.heraldOnly ? { heraldOnly: spec.heraldOnly } : {}),
    async run(ctx) {
      const { options, server } = ctx;
      const delivery = options.delivery ?? spec.delivery;
      const plan = publishPlan(spec.layout, options);
      return withConnections(ctx, plan, async (loadgen, opened) => {
        // A warm-up window at the same rate lets each server's JIT compile its publish path
        // before anything is measured; its seqs are continued, its figures dropped.
        let seqOffset = 0;
        if ((options.warmupS ?? 0) > 0) {
          ctx.progress(`warming up: ${options.rate} publishes/s for ${options.warmupS} s (not measured)`);
          const warm = await measurePublishing(ctx, spec.name, loadgen, opened, plan, { rate: options.rate, durationS: options.warmupS!, delivery });
          seqOffset = warm.published.sent;
        }
        const { result, lastDeliveries } = await measurePublishing(ctx, spec.name, loadgen, opened, plan, { rate: options.rate, durationS: options.durationS, delivery, seqOffset });
        if (seqOffset > 0) result.warmup_s = options.warmupS;
        if (delivery === 'at-least-once' && server.dialect === 'herald') {
          ctx.progress(`watching ${RETRANSMIT_WATCH_MS / 1000} s for retransmissions`);
          await sleep(RETRANSMIT_WATCH_MS);
          const later = await loadgen.report();
          later.destroy();
          // Every expected delivery had arrived: whatever arrives now is a retransmission.
          result.retransmitted = Number(result.duplicated) + (later.deliveries - lastDeliveries);
          result.retransmit_watch_s = RETRANSMIT_WATCH_MS / 1000;
        }
        return result;
      });
    },
  };
}
