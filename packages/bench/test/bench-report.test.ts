import { describe, expect, it } from 'vitest';
import { renderReport } from '../src/report/html-report.js';

const line = (server: string, p99: number, other = 0) => ({ scenario: 'fanout', server, connections: 1000, rate: 20, duration_s: 10, p50_ms: 10, p90_ms: 20, p99_ms: p99, p999_ms: p99 * 2, server_us_per_delivery: 15, deliveries_per_s: 20000, rss_mb: 100, lost: 0, duplicated: 0, out_of_order: 0, limited_by: 'loadgen', other_cpu_pct: other });

describe('benchmark HTML report', () => {
  it('draws charts per scenario from the run lines, offline, leaving disturbed runs out', () => {
    const html = renderReport(
      [line('herald', 40), line('herald', 60), line('ws-plain', 55), line('ws-plain', 9999, 90), { kind: 'compare', scenario: 'fanout', server: 'x' } as never],
      { title: 'T', generated: 'now', machine: 'm' },
    );
    expect(html).toContain('<svg');
    expect(html).toContain('Publish-to-receive latency');
    expect(html).toContain('Server CPU per delivery');
    expect(html).toContain('1 runs disturbed');
    expect(html).not.toContain('9999');
    expect(html).not.toMatch(/<script|https?:\/\//); // nothing fetched, nothing executed
    expect(html).toContain('herald p99: 50.0 ms'); // median of 40 and 60
  });

  it("adds the wire latency chart when the runs have it (--client native), and only then", () => {
    const wire = (server: string, p99: number) => ({ ...line(server, p99 + 1), wire_p50_ms: 5, wire_p90_ms: 10, wire_p99_ms: p99, wire_p999_ms: p99 * 2 });
    const html = renderReport([wire('herald', 30), wire('herald', 34), wire('ws-plain', 45)], { title: 'T', generated: 'now', machine: 'm' });
    expect(html).toContain("Publish to the server's send");
    expect(html).toContain('herald wire p99: 32.0 ms');
    expect(html).toContain('herald p99: 33.0 ms');
    const without = renderReport([line('herald', 40)], { title: 'T', generated: 'now', machine: 'm' });
    expect(without).not.toContain("Publish to the server's send");
  });

  it('gives runs of one scenario at another rate or audience their own section', () => {
    const html = renderReport(
      [line('herald', 40), { ...line('herald', 400), rate: 100 }, { ...line('herald', 4), connections: 100, rate: 100 }],
      { title: 'T', generated: 'now', machine: 'm' },
    );
    expect(html.match(/<h2>fanout<\/h2>/g)).toHaveLength(3);
    expect(html).toContain('1000 connections, 20 publishes/s');
    expect(html).toContain('1000 connections, 100 publishes/s');
    expect(html).toContain('100 connections, 100 publishes/s');
    expect(html).toContain('herald p99: 40.0 ms');
    expect(html).toContain('herald p99: 400.0 ms');
  });
});

describe('benchmark HTML report: time series', () => {
  const withSeries = (server: string, series: Record<string, unknown> | undefined) => ({ ...line(server, 50), scenario: 'storm', ...(series ? { series } : {}) });

  it('draws a line per run for each per-second series, breaking lines at missing samples', () => {
    const html = renderReport(
      [
        withSeries('herald', { t: [1, 2, 3, 4], cpu_pct: [40, 55, 61, 58], rss_mb: [120, 121, 125, 124], deliveries_per_s: [20000, 19000, 21000, 20000], loop_delay_p99_ms: [3.1, null, 4.2, 5] }),
        withSeries('ws-plain', { t: [1, 2, 3], cpu_pct: [35, 37, 36], rss_mb: [80, 80, 81], deliveries_per_s: [20000, 20000, 20000] }),
        withSeries('socketio', undefined),
      ],
      { title: 'T', generated: 'now', machine: 'm' },
    );
    expect(html).toContain('Server CPU over time');
    expect(html).toContain('Server RSS over time');
    expect(html).toContain('Deliveries per second over time');
    expect(html).toContain('event-loop delay over time');
    // cpu, rss and deliveries: a line for herald and one for ws-plain; loop delay: herald only, in
    // two pieces (the null splits it: one polyline of 1 point drawn as a dot, one of 2 points).
    const polylines = html.match(/<polyline[^>]*>/g) ?? [];
    expect(polylines.length).toBe(3 * 2 + 1);
    expect(html).toMatch(/<circle cx="[\d.]+" cy="[\d.]+" r="2.5"/);
    expect(html).toContain('1 run(s) without these samples');
    expect(html).not.toMatch(/<script|https?:\/\//);
  });

  it('draws no time-series chart when no run has samples', () => {
    const html = renderReport([line('herald', 40)], { title: 'T', generated: 'now', machine: 'm' });
    expect(html).not.toContain('over time');
    expect(html).not.toContain('<polyline');
  });
});
