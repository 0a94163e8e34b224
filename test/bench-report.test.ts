import { describe, expect, it } from 'vitest';
import { renderReport } from '../bench/report/html-report.js';

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
});
