/** A uPlot time-series chart that follows the samples it is given (created once, data replaced on each update). */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './ui.js';

export interface Series {
  label: string;
  color: string;
  values: Array<number | null>;
}

export function Chart({ title, times, series, unit }: { title: string; times: number[]; series: Series[]; unit: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = [times.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData;
  useEffect(() => {
    if (!box.current) return undefined;
    const width = Math.max(280, box.current.clientWidth);
    plot.current = new uPlot({
      width, height: 160,
      legend: { show: true, live: false },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(max, min + 1) * 1.1] } },
      axes: [{ stroke: '#8b949e', grid: { stroke: '#30363d' } }, {
        stroke: '#8b949e', grid: { stroke: '#30363d' }, values: (_u, ticks) => ticks.map((v) => `${v}${unit}`),
        // Wide enough for the longest label with its unit ("0.5 ms"); uPlot's fixed default cuts it.
        size: (_u, labels) => Math.max(50, 18 + 7 * Math.max(0, ...(labels ?? []).map((l) => String(l).length))),
      }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: false }))],
    }, data, box.current);
    return () => plot.current?.destroy();
    // The chart is built once per series layout; data flows in through setData below.
  }, [series.map((s) => s.label).join()]);
  useEffect(() => {
    plot.current?.setData(data);
  });
  return html`<figure class="chart"><figcaption>${title}</figcaption><div ref=${box}></div></figure>`;
}
