/**
 * webhooks: webhook deliveries per second from the durable outbox. One endpoint, subscribed to
 * `subscription.added` and `subscription.removed`, points at a receiver in the harness on loopback
 * that answers 204 at once and counts each event id once. `--connections` clients (a connector
 * process) subscribe to and unsubscribe from a channel of their own, one frame at a time; every
 * reply is one committed event. Two phases:
 *
 * 1. burst: flat out for `--duration` seconds (at most 20 000 events), then until the receiver has
 *    every event (at most 120 s): delivered events/s (first event → last received), generated
 *    events/s, the outbox depth sampled from /metrics (peak and series), lag createdAt → received
 *    (dominated by the queue the burst builds), server and broker CPU per delivered event;
 * 2. paced: `--rate` events/s for at most 5 s, then drained: the lag when nothing queues.
 *
 * Engines: `herald` runs on SQLite (a fresh data directory), `herald-redis-1` / `herald-nats-1` on a
 * unique prefix each: `compare --scenario webhooks --servers herald,herald-redis-1,herald-nats-1`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectorProcess } from '../integration/connector-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../integration/webhook-receiver.js';
import { machineCpuMicros } from '../lib/proc.js';
import { schedCpuMicrosOf } from '../lib/sched-cpu.js';
import { round, summarize } from '../lib/stats.js';
import { mb, NO_DELIVERY_FIGURES, type RunResult, type Scenario, type ScenarioContext, serverRss, sleep } from './scenario.js';

const MAX_BURST_EVENTS = 20_000;
const PACED_MAX_S = 5;
const DRAIN_TIMEOUT_MS = 120_000;
/** Give up draining when nothing arrived for this long (a stuck outbox, not a slow one). */
const STALL_MS = Number(process.env.BENCH_WEBHOOK_STALL_MS ?? 15_000);
const FRAME_TIMEOUT_MS = 30_000;
const DEPTH_SAMPLE_MS = 250;

/** Reads `herald_webhook_outbox_depth` from Herald's /metrics every DEPTH_SAMPLE_MS. */
class DepthSampler {
  readonly samples: Array<[number, number]> = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly t0 = performance.now();

  constructor(private readonly metricsUrl: string) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), DEPTH_SAMPLE_MS);
    void this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get peak(): number {
    return this.samples.reduce((m, [, d]) => Math.max(m, d), 0);
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const text = await (await fetch(this.metricsUrl)).text();
      const m = /^herald_webhook_outbox_depth(?:\{[^}]*\})? (\S+)$/m.exec(text);
      const depth = m ? Number(m[1]) : NaN;
      if (Number.isFinite(depth)) this.samples.push([round((performance.now() - this.t0) / 1000, 2), depth]);
    } catch {
      // a missed sample
    } finally {
      this.busy = false;
    }
  }
}

/** Waits until the receiver has `expected` events, or nothing new came for STALL_MS, or DRAIN_TIMEOUT_MS. */
async function drain(receiver: WebhookReceiver, expected: number): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  let last = receiver.unique;
  let lastChange = performance.now();
  while (receiver.unique < expected && performance.now() < deadline) {
    await sleep(50);
    if (receiver.unique !== last) {
      last = receiver.unique;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > STALL_MS) return;
  }
}

/** CPU of `pids` to the nanosecond (schedstat): a connect costs less than a clock tick. */
function cpuOf(pids: readonly number[]): number {
  return schedCpuMicrosOf(pids);
}

interface PhaseFigures {
  generated: number;
  received: number;
  generateMs: number;
  /** Phase start → last event received. */
  deliverMs: number;
  lag: ReturnType<typeof summarize>;
  serverUs: number;
  brokerUs: number | undefined;
  receiverUs: number;
  /** Other processes' CPU over the phase, % of one core. */
  otherPct: number;
  failed: number;
  /** Received on a later attempt than the first (redelivered after a lease ran out, or retried). */
  lateAttempts: number;
  errors: string[];
}

async function phase(ctx: ScenarioContext, connector: ConnectorProcess, receiver: WebhookReceiver, maxOps: number, durationMs: number, rate: number): Promise<PhaseFigures> {
  const { server } = ctx;
  const broker = server.brokerPid !== undefined ? [server.brokerPid] : [];
  receiver.phase();
  const m0 = machineCpuMicros().busy;
  const s0 = cpuOf(server.pids);
  const b0 = cpuOf(broker);
  const r0 = cpuOf([process.pid]);
  const c0 = cpuOf([connector.pid]);
  const t0 = performance.now();
  const ops = await connector.ops({ maxOps, durationMs, rate }, durationMs + FRAME_TIMEOUT_MS * 2);
  const generateMs = performance.now() - t0;
  await drain(receiver, ops.ops);
  const end = Math.max(receiver.lastAt, t0);
  const serverUs = cpuOf(server.pids) - s0;
  const brokerUs = cpuOf(broker) - b0;
  const receiverUs = cpuOf([process.pid]) - r0;
  const connectorUs = cpuOf([connector.pid]) - c0;
  const otherUs = Math.max(0, machineCpuMicros().busy - m0 - serverUs - brokerUs - receiverUs - connectorUs);
  const lag = summarize(receiver.lag);
  return {
    generated: ops.ops,
    received: receiver.unique,
    generateMs,
    deliverMs: end - t0,
    lag,
    serverUs,
    brokerUs: broker.length > 0 ? brokerUs : undefined,
    receiverUs,
    otherPct: (otherUs / ((performance.now() - t0) * 1000)) * 100,
    failed: ops.failed,
    lateAttempts: receiver.lateAttempts,
    errors: ops.errors,
  };
}

export const webhooks: Scenario = {
  name: 'webhooks',
  summary: 'webhook deliveries/s from the outbox (subscribe/unsubscribe events) to a loopback receiver; depth and lag',
  heraldOnly: 'the peers have no webhooks',
  defaults: { connections: 50, rate: 200, durationS: 5 },
  columns: [
    { title: 'server', key: 'server' },
    { title: 'conns', key: 'connections' },
    { title: 'generated', key: 'generated' },
    { title: 'gen/s', key: 'generated_per_s' },
    { title: 'delivered/s', key: 'delivered_per_s' },
    { title: 'missing', key: 'missing' },
    { title: 'dups', key: 'duplicates' },
    { title: 'peak depth', key: 'peak_depth' },
    { title: 'burst lag p50', key: 'burst_lag_p50_ms' },
    { title: 'burst lag p99', key: 'burst_lag_p99_ms' },
    { title: 'paced lag p50', key: 'paced_lag_p50_ms' },
    { title: 'paced lag p99', key: 'paced_lag_p99_ms' },
    { title: 'srv µs/event', key: 'server_us_per_event' },
    { title: 'broker µs/event', key: 'broker_us_per_event' },
    { title: 'other %', key: 'other_cpu_pct' },
  ],
  ratioKeys: {
    delivered_per_s: 'higher',
    generated_per_s: 'higher',
    peak_depth: 'lower',
    burst_lag_p50_ms: 'lower',
    burst_lag_p99_ms: 'lower',
    paced_lag_p50_ms: 'lower',
    paced_lag_p99_ms: 'lower',
    server_us_per_event: 'lower',
  },
  async prepare({ server }) {
    const receiver = await startWebhookReceiver();
    // The memory engine refuses webhook endpoints: the single-node target runs on SQLite.
    const dir = server === 'herald' ? mkdtempSync(join(tmpdir(), 'herald-bench-webhooks-')) : undefined;
    return {
      heraldConfig: {
        ...(dir ? { engine: { type: 'sqlite', sqlite: { dataDir: dir } } } : {}),
        webhooks: {
          endpoints: [
            {
              id: 'bench',
              url: receiver.url,
              events: ['subscription.added', 'subscription.removed'],
              secrets: [{ kid: 'bench', secret: 'bench-webhook-secret-0123456789' }],
            },
          ],
        },
      },
      state: receiver,
      close: async () => {
        await receiver.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async run(ctx) {
    const { server, options, pin } = ctx;
    const receiver = ctx.prepared?.state as WebhookReceiver | undefined;
    if (!receiver) throw new Error('webhooks: the receiver was not started');
    const connector = await ConnectorProcess.start(
      { url: server.wsUrl, count: Math.max(1, options.connections), concurrency: options.concurrency, token: true, cookie: false, secret: server.secret, timeoutMs: FRAME_TIMEOUT_MS },
      pin.loadgen,
      ctx.progress,
    );
    const sampler = new DepthSampler(`${new URL(server.publishUrl).origin}/metrics`);
    try {
      const opened = await connector.open(FRAME_TIMEOUT_MS + options.connections * 100);
      ctx.progress(`${opened.connected} connected, ${opened.failed} failed`);
      if (opened.connected === 0) throw new Error(`no connection succeeded: ${opened.errors.join('; ')}`);

      sampler.start();
      const burst = await phase(ctx, connector, receiver, MAX_BURST_EVENTS, options.durationS * 1000, 0);
      sampler.stop();
      const deliveredPerS = burst.deliverMs > 0 ? round(burst.received / (burst.deliverMs / 1000), 0) : null;
      ctx.progress(`burst: ${burst.generated} events in ${burst.generateMs.toFixed(0)} ms, ${burst.received} received by ${burst.deliverMs.toFixed(0)} ms (${deliveredPerS}/s; ${burst.lateAttempts} on a later attempt), peak depth ${sampler.peak}, lag p50 ${burst.lag.p50_ms} ms p99 ${burst.lag.p99_ms} ms`);
      for (const e of burst.errors) ctx.progress(`  ${e}`);
      const burstDups = receiver.duplicates;

      const pacedMs = Math.min(PACED_MAX_S, options.durationS) * 1000;
      const paced = await phase(ctx, connector, receiver, Math.max(1, Math.ceil((options.rate * pacedMs) / 1000)), pacedMs, Math.max(1, options.rate));
      ctx.progress(`paced: ${paced.generated} events at ${options.rate}/s, ${paced.received} received (${paced.lateAttempts} on a later attempt), lag p50 ${paced.lag.p50_ms} ms p99 ${paced.lag.p99_ms} ms`);
      for (const e of paced.errors) ctx.progress(`  ${e}`);

      const perEvent = (us: number | undefined): number | null => (us !== undefined && burst.received > 0 ? round(us / burst.received, 1) : null);
      const serverPct = round((burst.serverUs / (burst.deliverMs * 1000)) * 100, 1);
      return {
        scenario: 'webhooks',
        server: server.name,
        connections: opened.connected,
        rate: options.rate,
        duration_s: round(burst.deliverMs / 1000, 2),
        ...NO_DELIVERY_FIGURES,
        cpu_pct: serverPct,
        loadgen_cpu_pct: 0,
        rss_mb: mb(serverRss(ctx)),
        rss_per_conn_kb: null,
        limited_by: 'server',
        generated: burst.generated,
        generated_per_s: burst.generateMs > 0 ? round(burst.generated / (burst.generateMs / 1000), 0) : null,
        delivered: burst.received,
        delivered_per_s: deliveredPerS,
        missing: burst.generated - burst.received + (paced.generated - paced.received),
        duplicates: burstDups + receiver.duplicates,
        failed_frames: burst.failed + paced.failed,
        late_attempts: burst.lateAttempts + paced.lateAttempts,
        peak_depth: sampler.peak,
        depth_series: sampler.samples,
        burst_lag_p50_ms: burst.received > 0 ? burst.lag.p50_ms : null,
        burst_lag_p99_ms: burst.received > 0 ? burst.lag.p99_ms : null,
        paced_rate: options.rate,
        paced_generated: paced.generated,
        paced_lag_p50_ms: paced.received > 0 ? paced.lag.p50_ms : null,
        paced_lag_p99_ms: paced.received > 0 ? paced.lag.p99_ms : null,
        paced_lag_max_ms: paced.received > 0 ? paced.lag.max_ms : null,
        server_us_per_event: perEvent(burst.serverUs),
        broker_us_per_event: perEvent(burst.brokerUs),
        receiver_us_per_event: perEvent(burst.receiverUs),
        other_cpu_pct: round(burst.otherPct, 1),
      } satisfies RunResult;
    } finally {
      sampler.stop();
      await connector.close();
    }
  },
};
