/**
 * The bystander: a well-behaved client (the `ws` library, a token, one subscription) on a channel
 * that receives a steady stream of publishes through the HTTP API for the whole run. Nothing any
 * attacker does may cost it a message, its connection, or more than a bounded delay: it checks
 * that offsets advance by exactly one, that every publish the API accepted arrives, and measures
 * the publish-to-delivery latency and its own ping round trips.
 */
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { BYSTANDER_CHANNEL, BYSTANDER_USER, FUZZ_API_KEY, mintToken } from './world.js';
import { Tally } from './recorder.js';

export interface LatencyStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface BystanderReport {
  published: number;
  delivered: number;
  lost: number;
  duplicates: number;
  gaps: number;
  publishFailures: Record<string, number>;
  /** Close code when its connection was closed during the run, else null. */
  closed: number | null;
  latencyMs: LatencyStats;
  pingMs: LatencyStats;
}

export function stats(samples: number[]): LatencyStats {
  if (samples.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  return { count: sorted.length, p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]!) };
}

export class Bystander {
  private ws: WebSocket | undefined;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });
  private seq = 0;
  private readonly sentAt = new Map<number, number>();
  private readonly acked = new Set<number>();
  private readonly seen = new Set<number>();
  private lastOffset = 0;
  private publishTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingSentAt: number | undefined;
  private inFlight = 0;
  private stopping = false;
  readonly latencies: number[] = [];
  readonly pings: number[] = [];
  readonly publishFailures = new Tally();
  duplicates = 0;
  gaps = 0;
  closed: number | null = null;
  /** Called on every problem as it happens (a gap, a stall, a close). */
  onProblem: (kind: 'bystander-closed' | 'bystander-lost' | 'bystander-stall' | 'bystander-publish-failed', message: string) => void = () => undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly stallMs: number,
  ) {}

  async start(): Promise<void> {
    const token = await mintToken({ sub: BYSTANDER_USER, channels: [BYSTANDER_CHANNEL], publish: [] });
    const ws = new WebSocket(`${this.baseUrl.replace('http', 'ws')}/ws`);
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const subscribed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bystander: no subscribed within 10 s')), 10_000);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as Record<string, any>;
        if (f.type === 'subscribed' && f.id === 2) {
          this.lastOffset = Number(f.position.offset);
          clearTimeout(timer);
          resolve();
        } else if (f.type === 'error' && (f.id === 1 || f.id === 2)) {
          clearTimeout(timer);
          reject(new Error(`bystander: ${JSON.stringify(f)}`));
        }
        this.onFrame(f);
      });
    });
    ws.on('close', (code) => {
      if (this.stopping) return;
      this.closed = code;
      this.onProblem('bystander-closed', `the bystander's connection was closed with ${code}`);
    });
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'connect', id: 1, token, client: 'herald-fuzz-bystander' }));
    ws.send(JSON.stringify({ type: 'subscribe', id: 2, channel: BYSTANDER_CHANNEL }));
    await subscribed;
  }

  private onFrame(f: Record<string, any>): void {
    const ws = this.ws!;
    if (f.type === 'ping') ws.send('{"type":"pong"}');
    else if (f.type === 'pong' && this.pingSentAt !== undefined) {
      this.pings.push(performance.now() - this.pingSentAt);
      this.pingSentAt = undefined;
    } else if (f.type === 'message') {
      // Broadcasts from the fuzzer reach the bystander too: acknowledge what asks for it, count only its channel.
      if (f.ack && typeof f.message?.msgId === 'string') ws.send(JSON.stringify({ type: 'ack', msgIds: [f.message.msgId] }));
      if (f.channel === BYSTANDER_CHANNEL) this.onDelivery(f);
    }
  }

  private onDelivery(f: Record<string, any>): void {
    const offset = Number(f.offset);
    const seq = Number(f.message?.payload?.seq);
    if (offset !== this.lastOffset + 1) {
      if (offset <= this.lastOffset) this.duplicates++;
      else {
        this.gaps++;
        this.onProblem('bystander-lost', `offset jumped from ${this.lastOffset} to ${offset}`);
      }
    }
    this.lastOffset = Math.max(this.lastOffset, offset);
    if (this.seen.has(seq)) return;
    this.seen.add(seq);
    const sent = this.sentAt.get(seq);
    if (sent === undefined) return;
    this.sentAt.delete(seq);
    const latency = performance.now() - sent;
    this.latencies.push(latency);
    if (latency > this.stallMs) this.onProblem('bystander-stall', `message ${seq} took ${Math.round(latency)} ms from publish to delivery`);
  }

  /** Publishes `rate` messages a second to its channel, and pings twice a second. */
  startTraffic(rate: number): void {
    this.publishTimer = setInterval(() => this.publishOne(), Math.max(1, Math.round(1000 / rate)));
    this.pingTimer = setInterval(() => {
      if (this.pingSentAt !== undefined || this.ws?.readyState !== WebSocket.OPEN) return;
      this.pingSentAt = performance.now();
      this.ws.send('{"type":"ping"}');
    }, 500);
  }

  private publishOne(): void {
    const seq = ++this.seq;
    const body = JSON.stringify({ channel: BYSTANDER_CHANNEL, eventType: 'bystander.tick', payload: { seq } });
    this.sentAt.set(seq, performance.now());
    this.inFlight++;
    const req = request(`${this.baseUrl}/api/v1/publish`, {
      method: 'POST',
      agent: this.agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${FUZZ_API_KEY}` },
      timeout: 10_000,
    });
    const fail = (why: string): void => {
      this.publishFailures.inc(why);
      this.onProblem('bystander-publish-failed', `publish ${seq} failed: ${why}`);
    };
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        this.inFlight--;
        if (res.statusCode === 200) this.acked.add(seq);
        else fail(`HTTP ${res.statusCode}`);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      this.inFlight--;
      fail((err as NodeJS.ErrnoException).code ?? err.message);
    });
    req.end(body);
  }

  /** Stops publishing and waits (up to `ms`) for every accepted publish to be delivered. */
  async drain(ms: number): Promise<void> {
    clearInterval(this.publishTimer);
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && (this.inFlight > 0 || [...this.acked].some((s) => !this.seen.has(s)))) await new Promise((r) => setTimeout(r, 20));
  }

  report(): BystanderReport {
    const lost = [...this.acked].filter((s) => !this.seen.has(s)).length;
    return {
      published: this.acked.size,
      delivered: this.seen.size,
      lost,
      duplicates: this.duplicates,
      gaps: this.gaps,
      publishFailures: this.publishFailures.sorted(),
      closed: this.closed,
      latencyMs: stats(this.latencies),
      pingMs: stats(this.pings),
    };
  }

  close(): void {
    this.stopping = true;
    clearInterval(this.publishTimer);
    clearInterval(this.pingTimer);
    this.ws?.close();
    this.agent.destroy();
  }
}
