/** preact + htm: components written as tagged templates, no JSX build step. */
import { html } from 'htm/preact';

export { html };

export function fmtNumber(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtTime(ms: number | undefined): string {
  return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
}

export function fmtBytes(v: unknown): string {
  if (typeof v !== 'number') return '—';
  return `${(v / (1 << 20)).toFixed(1)} MiB`;
}

export function fmtDuration(seconds: unknown): string {
  if (typeof seconds !== 'number') return '—';
  const d = Math.floor(seconds / 86400), hh = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return d > 0 ? `${d}d ${hh}h` : hh > 0 ? `${hh}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
}

/** An error line under a form, from whatever was thrown. */
export function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as { code?: string; message?: string };
  return html`<p class="error" role="alert" data-testid="error">${e.code ? html`<code>${e.code}</code> ` : ''}${e.message ?? String(error)}</p>`;
}
