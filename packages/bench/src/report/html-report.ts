/**
 * Turns benchmark JSON lines into one self-contained HTML page of charts (inline SVG: nothing to
 * fetch, so it works offline and in CI artefacts). One section per scenario: latency percentiles,
 * server CPU per delivery, throughput and memory per server, with every run drawn as a dot over
 * its median so the spread is visible; then, from each run's per-second `series`, line charts of
 * server CPU, RSS, deliveries/s and event-loop delay over time, a line per run.
 */

export interface RunLine {
  scenario: string;
  server: string;
  [key: string]: unknown;
}

interface Metric {
  key: string;
  label: string;
  unit: string;
  /** True when a lower value is better (drawn in the caption). */
  lowerIsBetter: boolean;
}

const METRICS: Metric[] = [
  { key: 'server_us_per_delivery', label: 'Server CPU per delivery', unit: 'µs', lowerIsBetter: true },
  { key: 'deliveries_per_s', label: 'Deliveries per second', unit: '/s', lowerIsBetter: false },
  { key: 'rss_mb', label: 'Server RSS', unit: 'MB', lowerIsBetter: true },
  { key: 'rss_per_conn_kb', label: 'RSS growth per connection', unit: 'KB', lowerIsBetter: true },
  { key: 'conns_per_s', label: 'New connections per second', unit: '/s', lowerIsBetter: false },
];

const PERCENTILES = [
  ['p50_ms', 'p50'],
  ['p90_ms', 'p90'],
  ['p99_ms', 'p99'],
  ['p999_ms', 'p99.9'],
] as const;

/** The per-second samples a run line may carry (see `Series` in packages/bench/src/scenarios/scenario.ts). */
const SERIES_METRICS = [
  { key: 'cpu_pct', label: 'Server CPU over time', unit: '% of a core' },
  { key: 'rss_mb', label: 'Server RSS over time', unit: 'MB' },
  { key: 'deliveries_per_s', label: 'Deliveries per second over time', unit: '/s' },
  { key: 'loop_delay_p99_ms', label: 'Server event-loop delay over time (p99 of each second)', unit: 'ms' },
] as const;

const COLORS = ['#2952cc', '#d9822b', '#2f9e6e', '#b8336a', '#6c5ce7', '#8a8f98'];

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(v: number): string {
  return v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** A colour key along the bottom edge of a chart `height` high. */
function legendOf(servers: string[], left: number, height: number, colorOf: (s: string) => string): string {
  return servers.map((sv, i) => `<rect x="${left + i * 130}" y="${height - 14}" width="10" height="10" fill="${colorOf(sv)}"/><text x="${left + i * 130 + 14}" y="${height - 5}" class="lbl">${esc(sv)}</text>`).join('');
}

/** Horizontal bars, one per server, with each run as a dot. */
function barChart(title: string, unit: string, rows: Array<{ server: string; runs: number[] }>, colorOf: (s: string) => string, caption: string): string {
  const width = 640;
  const rowH = 30;
  const left = 130;
  const right = 90;
  const top = 30;
  const height = top + rows.length * rowH + 24;
  const max = Math.max(...rows.flatMap((r) => r.runs), 1e-9) * 1.08;
  const x = (v: number) => left + (v / max) * (width - left - right);
  const bars = rows
    .map((r, i) => {
      const y = top + i * rowH;
      const m = median(r.runs);
      const dots = r.runs.map((v) => `<circle cx="${x(v).toFixed(1)}" cy="${y + rowH / 2 - 3}" r="3" fill="#1c1f24" fill-opacity="0.55"/>`).join('');
      return `<text x="${left - 8}" y="${y + rowH / 2 + 1}" text-anchor="end" class="lbl">${esc(r.server)}</text>
<rect x="${left}" y="${y + 4}" width="${Math.max(1, x(m) - left).toFixed(1)}" height="${rowH - 14}" fill="${colorOf(r.server)}" rx="2"/>${dots}
<text x="${(Math.max(x(m), ...r.runs.map(x)) + 8).toFixed(1)}" y="${y + rowH / 2 + 1}" class="val">${fmt(m)} ${esc(unit)}</text>`;
    })
    .join('\n');
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">
<text x="0" y="16" class="ttl">${esc(title)}</text>
<line x1="${left}" y1="${top}" x2="${left}" y2="${height - 20}" stroke="#ccd"/>
${bars}
</svg><figcaption>${esc(caption)}</figcaption></figure>`;
}

/** Which latency a chart draws: publish → received by the loadgen, or (`--client native`) → the kernel's receive timestamp. */
const LATENCY_KINDS = {
  arrival: { prefix: '', title: 'Publish-to-receive latency (ms, log scale, median of runs)', caption: 'Lower is better. Every delivery is timed; percentiles come from an HDR histogram per run.' },
  wire: {
    prefix: 'wire_',
    title: "Publish to the server's send (ms, log scale, median of runs)",
    caption: "Lower is better. The kernel's receive timestamp of each delivery (--client native): on loopback it is taken inside the server's send, so the load generator's own delays are not in it.",
  },
} as const;

/** Grouped bars: latency percentiles per server on a log scale (tails differ by orders of magnitude). */
function latencyChart(rows: Array<{ server: string; lines: RunLine[] }>, colorOf: (s: string) => string, kind: keyof typeof LATENCY_KINDS = 'arrival'): string {
  const { prefix, title, caption } = LATENCY_KINDS[kind];
  const width = 640;
  const height = 260;
  const left = 50;
  const bottom = 40;
  const top = 30;
  const values = rows.flatMap((r) => PERCENTILES.map(([k]) => median(r.lines.map((l) => num(l[prefix + k])).filter((v): v is number => v !== undefined))));
  const finite = values.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return '';
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...finite))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...finite))));
  const y = (v: number) => top + (1 - (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (height - top - bottom);
  const groupW = (width - left - 10) / PERCENTILES.length;
  const barW = Math.min(26, (groupW - 16) / rows.length);
  let bars = '';
  PERCENTILES.forEach(([k, label], g) => {
    const gx = left + g * groupW + 8;
    rows.forEach((r, i) => {
      const v = median(r.lines.map((l) => num(l[prefix + k])).filter((n): n is number => n !== undefined));
      if (!(v > 0)) return;
      const bx = gx + i * barW;
      bars += `<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(height - bottom - y(v)).toFixed(1)}" fill="${colorOf(r.server)}"><title>${esc(r.server)} ${kind === 'wire' ? 'wire ' : ''}${label}: ${fmt(v)} ms</title></rect>`;
    });
    bars += `<text x="${(gx + (rows.length * barW) / 2).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle" class="lbl">${label}</text>`;
  });
  let grid = '';
  for (let d = lo; d <= hi; d *= 10) grid += `<line x1="${left}" x2="${width - 5}" y1="${y(d).toFixed(1)}" y2="${y(d).toFixed(1)}" stroke="#e3e6ea"/><text x="${left - 6}" y="${(y(d) + 4).toFixed(1)}" text-anchor="end" class="axis">${fmt(d)}</text>`;
  const legend = legendOf(rows.map((r) => r.server), left, height, colorOf);
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="Latency percentiles">
<text x="0" y="16" class="ttl">${esc(title)}</text>
${grid}${bars}${legend}</svg><figcaption>${esc(caption)}</figcaption></figure>`;
}

/** Points (t, value) of one series of a run; a null value ends a segment. */
function seriesPoints(line: RunLine, key: string): Array<Array<[number, number]>> {
  const series = line.series as Record<string, unknown> | undefined;
  const t = series?.t;
  const values = series?.[key];
  if (!Array.isArray(t) || !Array.isArray(values)) return [];
  const segments: Array<Array<[number, number]>> = [[]];
  values.forEach((v, i) => {
    const x = num(t[i]);
    const y = num(v);
    if (x === undefined || y === undefined) {
      if (segments.at(-1)!.length > 0) segments.push([]);
    } else segments.at(-1)!.push([x, y]);
  });
  return segments.filter((s) => s.length > 0);
}

/** A line per run of one per-second series, coloured by server; '' when no run has it. */
function timeSeriesChart(title: string, unit: string, key: string, lines: RunLine[], colorOf: (s: string) => string): string {
  const runs = lines.map((l) => ({ server: l.server, segments: seriesPoints(l, key) })).filter((r) => r.segments.length > 0);
  if (runs.length === 0) return '';
  const width = 640;
  const height = 220;
  const left = 60;
  const right = 12;
  const top = 30;
  const bottom = 44;
  const points = runs.flatMap((r) => r.segments.flat());
  const maxT = Math.max(...points.map(([t]) => t), 1);
  const maxV = Math.max(...points.map(([, v]) => v), 1e-9) * 1.08;
  const x = (t: number) => left + (t / maxT) * (width - left - right);
  const y = (v: number) => top + (1 - v / maxV) * (height - top - bottom);
  let grid = '';
  for (let i = 0; i <= 4; i++) {
    const v = (maxV * i) / 4;
    grid += `<line x1="${left}" x2="${width - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e6ea"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="axis">${fmt(v)}</text>`;
  }
  grid += `<text x="${left}" y="${height - bottom + 16}" class="axis">0 s</text><text x="${width - right}" y="${height - bottom + 16}" text-anchor="end" class="axis">${fmt(maxT)} s</text>`;
  const paths = runs
    .flatMap((r) =>
      r.segments.map((seg) =>
        seg.length === 1
          ? `<circle cx="${x(seg[0]![0]).toFixed(1)}" cy="${y(seg[0]![1]).toFixed(1)}" r="2.5" fill="${colorOf(r.server)}"/>`
          : `<polyline fill="none" stroke="${colorOf(r.server)}" stroke-width="1.6" stroke-opacity="0.85" points="${seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"><title>${esc(r.server)}</title></polyline>`,
      ),
    )
    .join('');
  const legend = legendOf([...new Set(runs.map((r) => r.server))], left, height, colorOf);
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">
<text x="0" y="16" class="ttl">${esc(title)} (${esc(unit)})</text>
${grid}${paths}${legend}</svg><figcaption>One line per run, sampled each second of the measured window${runs.length < lines.length ? `; ${lines.length - runs.length} run(s) without these samples` : ''}.</figcaption></figure>`;
}

/** Runs during which other processes used more than this share of a core are left out. */
const MAX_OTHER_CPU_PCT = 25;

export function renderReport(lines: RunLine[], meta: { title: string; generated: string; machine: string }): string {
  const all = lines.filter((l) => typeof l.scenario === 'string' && typeof l.server === 'string' && !('kind' in l));
  const runs = all.filter((l) => (num(l.other_cpu_pct) ?? 0) <= MAX_OTHER_CPU_PCT);
  const disturbed = all.length - runs.length;
  const servers = [...new Set(runs.map((l) => l.server))];
  const colorOf = (s: string) => COLORS[servers.indexOf(s) % COLORS.length]!;
  // One section per scenario and load: runs of the same scenario at another audience or rate are
  // other measurements, and a median across them would describe neither.
  const loadOf = (l: RunLine): string => `${l.scenario}|${num(l.connections) ?? ''}|${num(l.rate) ?? ''}`;
  const sections = [...new Set(runs.map(loadOf))].map((load) => {
    const these = runs.filter((l) => loadOf(l) === load);
    const scenario = these[0]!.scenario;
    const byServer = servers.map((server) => ({ server, lines: these.filter((l) => l.server === server) })).filter((r) => r.lines.length > 0);
    const first = these[0]!;
    const charts = [latencyChart(byServer, colorOf), latencyChart(byServer, colorOf, 'wire')];
    for (const m of METRICS) {
      const rows = byServer.map((r) => ({ server: r.server, runs: r.lines.map((l) => num(l[m.key])).filter((v): v is number => v !== undefined) })).filter((r) => r.runs.length > 0);
      if (rows.length === 0) continue;
      charts.push(barChart(m.label, m.unit, rows, colorOf, `${m.lowerIsBetter ? 'Lower' : 'Higher'} is better. Bar: median; dots: each run.`));
    }
    for (const m of SERIES_METRICS) charts.push(timeSeriesChart(m.label, m.unit, m.key, these, colorOf));
    const losses = byServer.map((r) => `${esc(r.server)}: lost ${r.lines.reduce((n, l) => n + (num(l.lost) ?? 0), 0)}, duplicated ${r.lines.reduce((n, l) => n + (num(l.duplicated) ?? 0), 0)}, out of order ${r.lines.reduce((n, l) => n + (num(l.out_of_order) ?? 0), 0)}; limited by ${esc(String(r.lines.map((l) => l.limited_by).join('/')))}`);
    return `<section><h2>${esc(scenario)}</h2><p class="meta">${num(first.connections) ?? '?'} connections${num(first.rate) ? `, ${first.rate} publishes/s` : ''}${num(first.duration_s) ? `, ${first.duration_s} s` : ''}; ${these.length} runs${disturbed ? ` (all scenarios: ${disturbed} runs disturbed by other processes above ${MAX_OTHER_CPU_PCT} % of a core left out)` : ''}.</p>
${charts.filter(Boolean).join('\n')}<ul class="meta">${losses.map((l) => `<li>${l}</li>`).join('')}</ul></section>`;
  });
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(meta.title)}</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:720px;color:#1c1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 4px;border-bottom:1px solid #e3e6ea;padding-bottom:4px}
.meta{color:#596070} figure{margin:14px 0} figcaption{color:#596070;font-size:12px}
svg .ttl{font-weight:600;font-size:13px} svg .lbl{font-size:12px} svg .val{font-size:12px;fill:#333} svg .axis{font-size:11px;fill:#778}
</style></head><body><h1>${esc(meta.title)}</h1><p class="meta">${esc(meta.machine)} · generated ${esc(meta.generated)}</p>
${sections.join('\n')}</body></html>`;
}
