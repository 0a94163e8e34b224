/**
 * What a run remembers: the last inputs sent (exactly as sent, so they can be replayed), counts
 * of what the server answered (close codes, error codes, HTTP statuses), and anomalies — each
 * with the inputs that preceded it on the same connection.
 */

export type ConnKind = 'anonymous' | 'token' | 'lazy' | 'preconnect';

/** An HTTP request as sent (body base64), replayable. */
export interface HttpRecord {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  framing: 'length' | 'chunked';
}

export interface InputRecord {
  seq: number;
  /** Milliseconds since the run started. */
  atMs: number;
  label: string;
  /** `ws`: bytes written on a WebSocket after its handshake; `http`: a request; `raw`: bytes on a fresh TCP connection. */
  target: 'ws' | 'http' | 'raw';
  /** The fuzzer's name for the connection (c12) and how it authenticated, for ws inputs. */
  conn?: string;
  connKind?: ConnKind;
  /** The claims' `sub` of a token connection (replay mints the same claims). */
  user?: string;
  /** ws/raw: the exact bytes, base64. */
  bytes?: string;
  http?: HttpRecord;
  /** The first bytes as text, for people reading the report. */
  preview: string;
}

export function preview(bytes: Buffer | string, max = 160): string {
  const text = typeof bytes === 'string' ? bytes : bytes.subarray(0, max * 2).toString('latin1');
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  const shown = text.length > max ? `${text.slice(0, max)}… (${size} bytes)` : text;
  // Control characters would garble a terminal.
  let out = '';
  for (const c of shown) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || (code >= 0x7f && code < 0xa0) ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

export class Ring<T> {
  private items: T[] = [];
  constructor(private readonly size: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.size * 2) this.items = this.items.slice(-this.size);
  }
  last(n = this.size): T[] {
    return this.items.slice(-Math.min(n, this.size));
  }
}

/** A histogram over string keys. */
export class Tally {
  readonly counts: Record<string, number> = {};
  inc(key: string | number, by = 1): void {
    const k = String(key);
    this.counts[k] = (this.counts[k] ?? 0) + by;
  }
  total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
  sorted(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.counts).sort((a, b) => b[1] - a[1]));
  }
}

export type AnomalyKind =
  | 'crash'
  | 'internal-error'
  | 'undocumented-error'
  | 'path-mismatch'
  | 'no-answer'
  | 'expected-close'
  | 'server-bad-frame'
  | 'unresponsive'
  | 'http-hang'
  | 'bystander-closed'
  | 'bystander-lost'
  | 'bystander-stall'
  | 'bystander-publish-failed'
  | 'rss-growth'
  | 'shutdown';

export interface Anomaly {
  kind: AnomalyKind;
  atMs: number;
  message: string;
  conn?: string;
  /** The inputs that preceded it (on the same connection when it has one). */
  inputs: InputRecord[];
}

/** Keeps every anomaly's count and the first few of each kind in full. */
export class AnomalyLog {
  readonly counts = new Tally();
  readonly kept: Anomaly[] = [];
  private readonly perKind = new Map<AnomalyKind, number>();

  constructor(private readonly keepPerKind = 10) {}

  add(anomaly: Anomaly): void {
    this.counts.inc(anomaly.kind);
    const n = this.perKind.get(anomaly.kind) ?? 0;
    if (n >= this.keepPerKind) return;
    this.perKind.set(anomaly.kind, n + 1);
    this.kept.push(anomaly);
  }
}
