/**
 * The scenarios that publish over HTTP and time every delivery (fanout, reliable, channels,
 * burst) share one run: open the connections (subscribed as the scenario says), publish at the
 * rate for the duration, wait for every expected delivery, then report.
 *
 * Expected deliveries are counted per channel: the messages the server accepted on a channel
 * times the connections subscribed to it. Every channel carries its own seq 1, 2, 3… (burst: one
 * seq run across the channels of a batch), so each connection sees an unbroken run and the
 * worker's lost / duplicated / out-of-order accounting holds.
 */
import { decodeHistogram, round, summarize } from '../lib/stats.js';
import type { DeliveryMode, PublisherConfig } from '../loadgen/messages.js';
import { MeasuredWindow, mb, openConnections, serverRss, sleep, startLoadGen, type RunOptions, type RunResult, type Scenario } from './scenario.js';

/**
 * After an at-least-once run the connections stay open this long (outside the measured window):
 * Herald's first retransmission of an unacknowledged delivery is due after
 * delivery.ackTimeoutMs + retry.initialDelayMs ± jitter (defaults 10 s + 2 s ± 20 %), so any
 * ACK that did not take effect shows up as a delivery arriving in this wait.
 */
const RETRANSMIT_WATCH_MS = 15_000;

export interface PublishingSpec {
  name: string;
  summary: string;
  defaults: Partial<RunOptions>;
  /** Delivery mode when the run does not set one; undefined = the server's default. */
  delivery?: DeliveryMode;
  /** See Scenario.compareModes. */
  compareModes?: DeliveryMode[];
  /**
   * Channel layout. `single`: every connection on `options.channel`. `one`: channelCount
   * channels, connection g on channel g mod n, publishes spread over them. `all`: every
   * connection on all channelCount channels, one batch publish (a message per channel) per tick.
   */
  layout: 'single' | 'one' | 'all';
}

function channelNames(options: RunOptions): string[] {
  const n = Math.max(1, options.channelCount ?? 1);
  return Array.from({ length: n }, (_, i) => `${options.channel}-${i}`);
}

/** Connections subscribed to channel c when `connections` are spread one per connection over n channels. */
function spreadSubscribers(connections: number, n: number, c: number): number {
  return Math.floor(connections / n) + (c < connections % n ? 1 : 0);
}

export function publishingScenario(spec: PublishingSpec): Scenario {
  return {
    name: spec.name,
    summary: spec.summary,
    defaults: spec.defaults,
    ...(spec.compareModes ? { compareModes: spec.compareModes } : {}),
    async run(ctx) {
      const { server, options } = ctx;
      const delivery = options.delivery ?? spec.delivery;
      const names = spec.layout === 'single' ? [] : channelNames(options);
      const loadgen = await startLoadGen(ctx);
      try {
        const subscriptions = spec.layout === 'single' ? undefined : { channels: names, perConnection: spec.layout === 'one' ? ('one' as const) : ('all' as const) };
        const opened = await openConnections(ctx, loadgen, subscriptions);
        await sleep(1000);

        let lastCount = 0;
        const window = new MeasuredWindow(ctx, loadgen.pids, () => {
          const now = loadgen.deliveriesSoFar;
          const line = `deliveries ${now - lastCount}/s open ${loadgen.openSoFar}`;
          lastCount = now;
          return line;
        });
        loadgen.measure();
        const config: PublisherConfig = {
          url: server.publishUrl,
          apiKey: server.apiKey,
          channel: options.channel,
          rate: options.rate,
          durationS: options.durationS,
          sockets: options.publishSockets,
          maxInFlight: 1000,
          delivery,
          channels: spec.layout === 'single' ? undefined : { names, mode: spec.layout === 'one' ? 'spread' : 'batch' },
        };
        const published = await loadgen.publish(config);
        // A failed connection is left out of the expectation as if it were the last ones (it
        // may have been another: `failed` says when this approximation was needed).
        const connected = opened.connected;
        let expected: number;
        let messages: number;
        if (spec.layout === 'single') {
          expected = published.ok * connected;
          messages = published.ok;
        } else {
          const ok = published.okByChannel ?? [];
          messages = ok.reduce((s, n) => s + n, 0);
          expected = spec.layout === 'all' ? messages * connected : ok.reduce((s, n, c) => s + n * spreadSubscribers(connected, names.length, c), 0);
        }
        await loadgen.drain(expected, 2000, 20_000);
        // ACKs of the last deliveries are in flight still: give them a moment inside the window.
        if (delivery === 'at-least-once') await sleep(200);
        const totals = window.stop();
        const rss = serverRss(ctx);
        const report = await loadgen.report();
        if (published.errors > 0) ctx.progress(`publish errors: ${published.errors} (first: ${published.firstError})`);
        const latency = summarize(report.latency);
        const publishLatency = summarize(decodeHistogram(published.histogram));
        const brokerUs = totals.brokerCpuMicros;
        const result: RunResult = {
          scenario: spec.name,
          server: server.name,
          connections: opened.connected,
          rate: options.rate,
          duration_s: options.durationS,
          p50_ms: latency.p50_ms,
          p90_ms: latency.p90_ms,
          p99_ms: latency.p99_ms,
          p999_ms: latency.p999_ms,
          max_ms: latency.max_ms,
          deliveries_per_s: round(report.deliveries / (totals.wallMs / 1000), 0),
          server_us_per_delivery: report.deliveries > 0 ? round(totals.serverCpuMicros / report.deliveries, 2) : null,
          lost: Math.max(0, expected - report.unique),
          duplicated: report.duplicated,
          out_of_order: report.outOfOrder,
          cpu_pct: totals.serverCpuPct,
          server_sys_share: totals.serverCpuMicros > 0 ? round(totals.serverSysMicros / totals.serverCpuMicros, 2) : null,
          loadgen_cpu_pct: totals.loadgenCpuPct,
          rss_mb: mb(rss),
          rss_per_conn_kb: null,
          limited_by: totals.limitedBy,
          other_cpu_pct: totals.otherCpuPct,
          steal_pct: totals.stealPct,
          failed: opened.failed,
          delivery: delivery ?? 'default',
          nodes: server.pids.length,
          channels: spec.layout === 'single' ? 1 : names.length,
          published: published.ok,
          messages,
          publish_errors: published.errors,
          publish_late: published.late,
          publish_p99_ms: publishLatency.p99_ms,
          server_us_per_message: messages > 0 ? round(totals.serverCpuMicros / messages, 1) : null,
          deliveries: report.deliveries,
          expected,
          acks: report.acks,
          ack_frames: report.ackFrames,
          error_frames: report.errorFrames,
          closed: report.closedByCode,
          loadgen_workers: loadgen.workerCount,
        };
        if (delivery === 'at-least-once' && server.dialect === 'herald') {
          ctx.progress(`watching ${RETRANSMIT_WATCH_MS / 1000} s for retransmissions`);
          await sleep(RETRANSMIT_WATCH_MS);
          const later = await loadgen.report();
          later.latency.destroy();
          // Every expected delivery had arrived: whatever arrives now is a retransmission.
          result.retransmitted = report.duplicated + (later.deliveries - report.deliveries);
          result.retransmit_watch_s = RETRANSMIT_WATCH_MS / 1000;
        }
        if (brokerUs !== undefined) {
          result.redis_cpu_pct = totals.brokerCpuPct;
          result.redis_us_per_message = messages > 0 ? round(brokerUs / messages, 1) : null;
          result.redis_us_per_delivery = report.deliveries > 0 ? round(brokerUs / report.deliveries, 2) : null;
          result.total_us_per_delivery = report.deliveries > 0 ? round((totals.serverCpuMicros + brokerUs) / report.deliveries, 2) : null;
        }
        report.latency.destroy();
        return result;
      } finally {
        await loadgen.close();
      }
    },
  };
}
