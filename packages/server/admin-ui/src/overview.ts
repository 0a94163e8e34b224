/** Overview: the cluster's headline numbers now and, charted, over the sampler's window. */
import { useEffect, useState } from 'preact/hooks';
import { get } from './api.js';
import { Chart } from './chart.js';
import { ErrorLine, fmtNumber, html } from './ui.js';

interface Sample {
  t: number;
  connections: number;
  publishesPerSecond: number;
  deliveriesPerSecond: number;
  deliveryP50Ms: number | null;
  deliveryP99Ms: number | null;
  slowConsumerCloses: number;
  eventLoopLagMs: number;
  nodes: number;
}
interface Overview {
  node: string;
  samples: Sample[];
  totals: Record<string, number>;
  nodes?: { replied: string[]; missing: string[] };
}

/** Polls an endpoint every `ms` while the page is shown. */
export function usePoll<T>(path: string, ms: number): { data: T | undefined; error: unknown } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let live = true;
    const load = () => get<T>(path).then((d) => { if (live) { setData(d); setError(undefined); } }, (e) => { if (live) setError(e); });
    load();
    const timer = setInterval(load, ms);
    return () => { live = false; clearInterval(timer); };
  }, [path, ms]);
  return { data, error };
}

function Stat({ id, label, value, unit = '' }: { id: string; label: string; value: string; unit?: string }) {
  return html`<div class="stat"><div class="stat-label">${label}</div><div class="stat-value" data-testid=${`stat-${id}`}>${value}</div><div class="stat-unit">${unit}</div></div>`;
}

export function OverviewPage() {
  const { data, error } = usePoll<Overview>('/overview', 1000);
  const samples = data?.samples ?? [];
  const last = samples.at(-1);
  const times = samples.map((s) => s.t);
  const col = (f: (s: Sample) => number | null) => samples.map(f);
  return html`<section>
    <h2>Overview</h2>
    <${ErrorLine} error=${error} />
    <p class="muted">Per-second samples over the last ${fmtNumber(samples.length)} s, summed over ${fmtNumber(last?.nodes ?? 0)} node(s)${data?.nodes?.missing.length ? html`; <strong>not answering: ${data.nodes.missing.join(', ')}</strong>` : ''}. p99 and lag are the worst node's.</p>
    <div class="stats">
      <${Stat} id="connections" label="Connections" value=${fmtNumber(data?.totals.connections)} />
      <${Stat} id="users" label="Users" value=${fmtNumber(data?.totals.users)} />
      <${Stat} id="channels" label="Channels (sum of nodes)" value=${fmtNumber(data?.totals.channels)} />
      <${Stat} id="publishes" label="Publishes" value=${fmtNumber(last?.publishesPerSecond)} unit="/s" />
      <${Stat} id="deliveries" label="Deliveries" value=${fmtNumber(last?.deliveriesPerSecond)} unit="/s" />
      <${Stat} id="p50" label="Delivery p50" value=${fmtNumber(last?.deliveryP50Ms, 2)} unit="ms" />
      <${Stat} id="p99" label="Delivery p99" value=${fmtNumber(last?.deliveryP99Ms, 2)} unit="ms" />
      <${Stat} id="slow" label="Slow-consumer closes" value=${fmtNumber(last?.slowConsumerCloses)} unit="/s" />
      <${Stat} id="lag" label="Event-loop lag p99" value=${fmtNumber(last?.eventLoopLagMs, 1)} unit="ms" />
    </div>
    <div class="charts">
      <${Chart} title="Connections" unit="" times=${times} series=${[{ label: 'connections', color: '#58a6ff', values: col((s) => s.connections) }]} />
      <${Chart} title="Messages per second" unit="" times=${times} series=${[
        { label: 'deliveries/s', color: '#3fb950', values: col((s) => s.deliveriesPerSecond) },
        { label: 'publishes/s', color: '#d29922', values: col((s) => s.publishesPerSecond) },
      ]} />
      <${Chart} title="Delivery latency" unit=" ms" times=${times} series=${[
        { label: 'p50', color: '#58a6ff', values: col((s) => s.deliveryP50Ms) },
        { label: 'p99', color: '#f85149', values: col((s) => s.deliveryP99Ms) },
      ]} />
      <${Chart} title="Event-loop lag and slow consumers" unit="" times=${times} series=${[
        { label: 'lag p99 (ms)', color: '#bc8cff', values: col((s) => s.eventLoopLagMs) },
        { label: 'slow closes/s', color: '#f85149', values: col((s) => s.slowConsumerCloses) },
      ]} />
    </div>
  </section>`;
}
