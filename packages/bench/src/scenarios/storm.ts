/**
 * storm: connect/reconnect bursts under a steady publish stream. N connections subscribe to the
 * bench channel; while the publisher posts R messages/s to it for the duration, `--rounds` times
 * (evenly spaced) the churning `--churn` % of the connections (connection g churns when
 * g mod 100 < churn) are dropped at once and reconnected at once (connect + subscribe,
 * `concurrency` handshakes in flight per worker). Reported: reconnects/s (reconnects / time the
 * rounds took), reconnect handshake percentiles (TCP connect → `subscribed`), failed reconnects,
 * server CPU and RSS (peak too), and latency and loss for the connections that never dropped.
 */
import { peakRssBytes } from '../lib/proc.js';
import { round, summarize } from '../lib/stats.js';
import { churns } from '../loadgen/audience.js';
import { measurePublishing, publishPlan, withConnections, type PublishPlan } from './publishing.js';
import { mb, sleep, type RunOptions, type Scenario } from './scenario.js';

/** Connections among the first `connected` that never drop. */
function steadyAmong(connected: number, churnPct: number): number {
  let n = 0;
  for (let g = 0; g < connected; g++) if (!churns(g, churnPct)) n++;
  return n;
}

function stormPlan(options: RunOptions, churnPct: number): PublishPlan {
  const single = publishPlan('single', options);
  return {
    ...single,
    connections: { audience: { kind: 'churn', churnPct } },
    // A failed connection is taken for one of the last ones, as in every other scenario.
    expect: (p, connected) => ({ expected: p.ok * steadyAmong(connected, churnPct), messages: p.ok }),
    extras: { ...single.extras, churn_pct: churnPct },
  };
}

export const storm: Scenario = {
  name: 'storm',
  summary: 'N subscribers, R publishes/s; 30 % drop and reconnect at once, 5 rounds',
  defaults: { connections: 1000, rate: 20, durationS: 10, churnPct: 30, rounds: 5 },
  async run(ctx) {
    const { options, server } = ctx;
    const churnPct = Math.min(100, Math.max(1, options.churnPct ?? 30));
    const rounds = Math.max(1, options.rounds ?? 5);
    const plan = stormPlan(options, churnPct);
    const roundMs: number[] = [];
    return withConnections(ctx, plan, async (loadgen, opened) => {
      const stormRounds = async (): Promise<void> => {
        const spacing = (options.durationS * 1000) / (rounds + 1);
        const start = performance.now();
        for (let r = 1; r <= rounds; r++) {
          await sleep(Math.max(0, start + r * spacing - performance.now()));
          const t0 = performance.now();
          const res = await loadgen.churn(120_000);
          const ms = performance.now() - t0;
          roundMs.push(round(ms, 0));
          ctx.progress(`round ${r}/${rounds}: ${res.connected} reconnected, ${res.failed} failed in ${ms.toFixed(0)} ms`);
          for (const e of res.errors) ctx.progress(`  ${e}`);
        }
      };
      const { result } = await measurePublishing(ctx, 'storm', loadgen, opened, plan, {
        rate: options.rate,
        durationS: options.durationS,
        delivery: options.delivery,
        during: stormRounds,
        fromReport: (report) => {
          const handshakes = summarize(report.handshakes);
          const busyMs = roundMs.reduce((s, n) => s + n, 0);
          return {
            steady: steadyAmong(opened.connected, churnPct),
            churning: opened.connected - steadyAmong(opened.connected, churnPct),
            rounds,
            reconnects: report.reconnects,
            reconnects_failed: report.reconnectsFailed,
            reconnects_per_s: busyMs > 0 ? round(report.reconnects / (busyMs / 1000), 0) : null,
            round_ms: roundMs,
            handshake_p50_ms: report.reconnects > 0 ? handshakes.p50_ms : null,
            handshake_p99_ms: report.reconnects > 0 ? handshakes.p99_ms : null,
            handshake_p999_ms: report.reconnects > 0 ? handshakes.p999_ms : null,
            handshake_max_ms: report.reconnects > 0 ? handshakes.max_ms : null,
            rss_peak_mb: mb(server.pids.reduce((s, pid) => s + (peakRssBytes(pid) ?? 0), 0)),
          };
        },
      });
      return result;
    });
  },
};
