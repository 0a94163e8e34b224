/** Human-readable tables of run results and of a comparison's medians and ratios. */
import type { RunResult } from '../scenarios/scenario.js';

export interface Column {
  title: string;
  key: string;
}

const FANOUT_COLUMNS: Column[] = [
  { title: 'server', key: 'server' },
  { title: 'conns', key: 'connections' },
  { title: 'rate', key: 'rate' },
  { title: 'p50 ms', key: 'p50_ms' },
  { title: 'p90 ms', key: 'p90_ms' },
  { title: 'p99 ms', key: 'p99_ms' },
  { title: 'p99.9 ms', key: 'p999_ms' },
  { title: 'max ms', key: 'max_ms' },
  { title: 'deliv/s', key: 'deliveries_per_s' },
  { title: 'µs/deliv', key: 'server_us_per_delivery' },
  { title: 'lost', key: 'lost' },
  { title: 'dup', key: 'duplicated' },
  { title: 'ooo', key: 'out_of_order' },
  { title: 'cpu %', key: 'cpu_pct' },
  { title: 'lg cpu %', key: 'loadgen_cpu_pct' },
  { title: 'rss MB', key: 'rss_mb' },
  { title: 'other %', key: 'other_cpu_pct' },
  { title: 'limited', key: 'limited_by' },
];

const IDLE_COLUMNS: Column[] = [
  { title: 'server', key: 'server' },
  { title: 'conns', key: 'connections' },
  { title: 'failed', key: 'failed' },
  { title: 'conns/s', key: 'conns_per_s' },
  { title: 'µs/conn', key: 'server_us_per_conn' },
  { title: 'KB/conn', key: 'rss_per_conn_kb' },
  { title: 'rss MB', key: 'rss_mb' },
  { title: 'idle cpu %', key: 'cpu_pct' },
  { title: 'lg cpu %', key: 'loadgen_cpu_pct' },
  { title: 'other %', key: 'other_cpu_pct' },
  { title: 'limited', key: 'limited_by' },
];

/** Shown after the fan-out columns when some row has them (reliable, cluster, multi-channel runs). */
const EXTRA_COLUMNS: Column[] = [
  { title: 'wire p50 ms', key: 'wire_p50_ms' },
  { title: 'wire p99 ms', key: 'wire_p99_ms' },
  { title: 'wire p99.9 ms', key: 'wire_p999_ms' },
  { title: 'nodes', key: 'nodes' },
  { title: 'µs/msg', key: 'server_us_per_message' },
  { title: 'acks', key: 'acks' },
  { title: 'ack frames', key: 'ack_frames' },
  { title: 'retx', key: 'retransmitted' },
  { title: 'sys share', key: 'server_sys_share' },
  { title: 'redis %', key: 'redis_cpu_pct' },
  { title: 'redis µs/msg', key: 'redis_us_per_message' },
  { title: 'total µs/deliv', key: 'total_us_per_delivery' },
  { title: 'users', key: 'users' },
  { title: 'unexpected', key: 'unexpected' },
  { title: 'reconn', key: 'reconnects' },
  { title: 'reconn/s', key: 'reconnects_per_s' },
  { title: 'reconn failed', key: 'reconnects_failed' },
  { title: 'hs p50 ms', key: 'handshake_p50_ms' },
  { title: 'hs p99 ms', key: 'handshake_p99_ms' },
  { title: 'rss peak MB', key: 'rss_peak_mb' },
  { title: 'stop', key: 'stop_reason' },
];

/** Columns of the per-step table of a saturate run. */
const STEP_COLUMNS: Column[] = [
  { title: 'rate', key: 'rate' },
  { title: 'deliv/s', key: 'deliveries_per_s' },
  { title: 'p99 ms', key: 'p99_ms' },
  { title: 'lost', key: 'lost' },
  { title: 'cpu %', key: 'cpu_pct' },
  { title: 'lg core %', key: 'loadgen_core_pct' },
  { title: 'late', key: 'publish_late' },
];

/** Extras shown whenever some row has them; the rest only when they say something (nodes > 1, acks > 0). */
const SHOWN_WHEN_PRESENT = new Set(['wire_p50_ms', 'wire_p99_ms', 'wire_p999_ms', 'users', 'unexpected', 'reconnects', 'reconnects_per_s', 'reconnects_failed', 'handshake_p50_ms', 'handshake_p99_ms', 'rss_peak_mb', 'stop_reason']);

/** Columns for a scenario: its own list if it has one (`own`), else the fan-out list (plus the extras `rows` have). */
export function columnsFor(scenario: string, rows: Array<Record<string, unknown>> = [], own?: Column[]): Column[] {
  if (own) return own;
  if (scenario === 'idle') return IDLE_COLUMNS;
  const shown = (key: string, min: number): boolean => rows.some((r) => typeof r[key] === 'number' && (r[key] as number) > min);
  const present = (key: string): boolean => rows.some((r) => r[key] !== undefined && r[key] !== null);
  const extras = EXTRA_COLUMNS.filter((c) =>
    SHOWN_WHEN_PRESENT.has(c.key) ? present(c.key) : c.key === 'nodes' ? shown('nodes', 1) : c.key === 'acks' || c.key === 'ack_frames' ? shown(c.key, 0) : shown(c.key, -1),
  );
  return [...FANOUT_COLUMNS, ...extras];
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
  return String(value);
}

export function table(rows: Array<Record<string, unknown>>, columns: Column[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(r[c.key])));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]): string => values.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** The results, then the steps of every run that has them (saturate). */
export function resultsTable(results: RunResult[], own?: Column[]): string {
  const first = results[0];
  if (!first) return '(no results)';
  const parts = [table(results, columnsFor(first.scenario, results, own))];
  for (const r of results) {
    if (Array.isArray(r.steps)) parts.push(`\nsteps of ${r.server} (stopped: ${String(r.stop_reason)}):\n${table(r.steps as Array<Record<string, unknown>>, STEP_COLUMNS)}`);
  }
  return parts.join('\n');
}
