/**
 * fanout: N connections subscribe to one channel; the publisher posts R messages per second over
 * HTTP for the duration; every delivery's publish-to-receive latency is recorded.
 */
import { rssBytes } from '../lib/proc.js';
import { decodeHistogram, round, summarize } from '../lib/stats.js';
import { MeasuredWindow, mb, openConnections, sleep, startLoadGen, type RunResult, type Scenario } from './scenario.js';

export const fanout: Scenario = {
  name: 'fanout',
  summary: 'N subscribers on one channel, R publishes/s over HTTP',
  defaults: { connections: 1000, rate: 20, durationS: 10 },
  async run(ctx) {
    const { server, options } = ctx;
    const loadgen = await startLoadGen(ctx);
    try {
      const opened = await openConnections(ctx, loadgen);
      await sleep(1000);

      let lastCount = 0;
      const window = new MeasuredWindow(ctx, loadgen.pids, () => {
        const now = loadgen.deliveriesSoFar;
        const line = `deliveries ${now - lastCount}/s open ${loadgen.openSoFar}`;
        lastCount = now;
        return line;
      });
      loadgen.measure();
      const published = await loadgen.publish({
        url: server.publishUrl,
        apiKey: server.apiKey,
        channel: options.channel,
        rate: options.rate,
        durationS: options.durationS,
        sockets: options.publishSockets,
        maxInFlight: 1000,
      });
      const expected = published.ok * opened.connected;
      await loadgen.drain(expected, 2000, 20_000);
      const totals = window.stop();
      const rss = rssBytes(server.pid);
      const report = await loadgen.report();
      if (published.errors > 0) ctx.progress(`publish errors: ${published.errors} (first: ${published.firstError})`);
      const latency = summarize(report.latency);
      const publishLatency = summarize(decodeHistogram(published.histogram));
      const result: RunResult = {
        scenario: 'fanout',
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
        loadgen_cpu_pct: totals.loadgenCpuPct,
        rss_mb: mb(rss),
        rss_per_conn_kb: null,
        limited_by: totals.limitedBy,
        other_cpu_pct: totals.otherCpuPct,
        steal_pct: totals.stealPct,
        failed: opened.failed,
        published: published.ok,
        publish_errors: published.errors,
        publish_late: published.late,
        publish_p99_ms: publishLatency.p99_ms,
        deliveries: report.deliveries,
        closed: report.closedByCode,
        loadgen_workers: loadgen.workerCount,
      };
      report.latency.destroy();
      return result;
    } finally {
      await loadgen.close();
    }
  },
};
