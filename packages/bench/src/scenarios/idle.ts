/**
 * idle: N authenticated connections, each subscribed to one channel, then held idle. Measures
 * connection set-up rate (connect + subscribe round trips, `concurrency` in flight per worker),
 * the server's CPU per connection set up, and its memory per connection: (RSS after − RSS
 * before) / N, RSS "after" being the median of the last three seconds of the hold.
 */
import { median, round } from '../lib/stats.js';
import { mb, MeasuredWindow, NO_DELIVERY_FIGURES, openConnections, type RunResult, type Scenario, SeriesRecorder, serverRss, sleep, startLoadGen } from './scenario.js';

export const idle: Scenario = {
  name: 'idle',
  summary: 'N idle authenticated subscribed connections: memory per connection, connections/s',
  defaults: { connections: 1000, rate: 0, durationS: 5 },
  async run(ctx) {
    const { server, options } = ctx;
    await sleep(1000);
    const before = serverRss(ctx);
    const loadgen = await startLoadGen(ctx);
    try {
      const recorder = new SeriesRecorder();
      const connecting = new MeasuredWindow(ctx, loadgen, () => `open ${loadgen.openSoFar}`, recorder);
      const opened = await openConnections(ctx, loadgen);
      const setup = connecting.stop();

      const samples: number[] = [];
      const holding = new MeasuredWindow(ctx, loadgen, () => `open ${loadgen.openSoFar}`, recorder);
      const holdMs = Math.max(3, options.durationS) * 1000;
      for (let t = 0; t < holdMs; t += 1000) {
        await sleep(1000);
        samples.push(serverRss(ctx));
      }
      const hold = holding.stop();
      const after = median(samples.slice(-3));
      const report = await loadgen.report();
      report.destroy();
      return {
        scenario: 'idle',
        server: server.name,
        connections: opened.connected,
        rate: null,
        duration_s: holdMs / 1000,
        ...NO_DELIVERY_FIGURES,
        cpu_pct: hold.serverCpuPct,
        loadgen_cpu_pct: setup.loadgenCpuPct,
        rss_mb: mb(after),
        rss_per_conn_kb: round((after - before) / opened.connected / 1024, 2),
        limited_by: setup.limitedBy,
        other_cpu_pct: Math.max(setup.otherCpuPct, hold.otherCpuPct),
        steal_pct: Math.max(setup.stealPct, hold.stealPct),
        failed: opened.failed,
        conns_per_s: round(opened.connected / (opened.elapsedMs / 1000), 0),
        setup_server_cpu_pct: setup.serverCpuPct,
        server_us_per_conn: round(setup.serverCpuMicros / opened.connected, 1),
        rss_before_mb: mb(before),
        still_open: report.open,
        closed: report.closedByCode,
        loadgen_workers: loadgen.workerCount,
        series: hold.series,
      } satisfies RunResult;
    } finally {
      await loadgen.close();
    }
  },
};
