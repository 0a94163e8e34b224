/**
 * connect: connects per second through the connect proxy against JWT-only. A connector process
 * opens `--connections` connections, `--concurrency` handshakes in flight, and holds them; each
 * handshake is timed from TCP connect to `connected`. The Herald configurations are variants run
 * in one invocation (`compare --scenario connect`):
 *
 * - `proxy`: no token; `proxy.connect.url` points at a node:http backend in the harness on
 *   loopback that names the user from the forwarded `session` cookie at once;
 * - `jwt`: an HS256 token per connection (signed before the window), no hook;
 * - `jwt-always`: the token and the cookie with `proxy.connect.always`: both the verification and
 *   the hook (the backend names the user from the cookie; the token is forwarded to it).
 *
 * Reported: connects/s, handshake percentiles, failures, server CPU per connect, and the backend's
 * (the harness's) CPU per connect. An unmeasured round of connections first warms the JIT.
 */
import { ConnectorProcess } from '../integration/connector-process.js';
import { startConnectBackend, type ConnectBackend } from '../integration/connect-backend.js';
import { machineCpuMicros } from '../lib/proc.js';
import { schedCpuMicrosOf } from '../lib/sched-cpu.js';
import { decodeHistogram, round, summarize } from '../lib/stats.js';
import { mb, NO_DELIVERY_FIGURES, type RunResult, type Scenario, type ScenarioContext, serverRss } from './scenario.js';

const VARIANTS = ['proxy', 'jwt', 'jwt-always'] as const;
type Variant = (typeof VARIANTS)[number];

const HANDSHAKE_TIMEOUT_MS = 30_000;

function variantOf(name: string | undefined): Variant {
  const v = (name ?? VARIANTS[0]) as Variant;
  if (!VARIANTS.includes(v)) throw new Error(`connect: unknown variant "${name}" (known: ${VARIANTS.join(', ')})`);
  return v;
}

/** CPU of `pids` to the nanosecond (schedstat): a connect costs less than a clock tick. */
function cpuOf(pids: readonly number[]): number {
  return schedCpuMicrosOf(pids);
}

async function openRound(ctx: ScenarioContext, count: number, variant: Variant): Promise<{ connector: ConnectorProcess; opened: Awaited<ReturnType<ConnectorProcess['open']>>; cpu: Record<'server' | 'connector' | 'backend' | 'other', number> }> {
  const { server, options, pin } = ctx;
  const connector = await ConnectorProcess.start(
    { url: server.wsUrl, count, concurrency: options.concurrency, token: variant !== 'proxy', cookie: variant !== 'jwt', secret: server.secret, timeoutMs: HANDSHAKE_TIMEOUT_MS },
    pin.loadgen,
    ctx.progress,
  );
  try {
    const pids = { server: server.pids, connector: [connector.pid], backend: [process.pid] };
    const m0 = machineCpuMicros().busy;
    const s0 = cpuOf(pids.server);
    const c0 = cpuOf(pids.connector);
    const b0 = cpuOf(pids.backend);
    const opened = await connector.open(HANDSHAKE_TIMEOUT_MS + count * 100);
    const serverUs = cpuOf(pids.server) - s0;
    const connectorUs = cpuOf(pids.connector) - c0;
    const backendUs = cpuOf(pids.backend) - b0;
    const other = Math.max(0, machineCpuMicros().busy - m0 - serverUs - connectorUs - backendUs);
    return { connector, opened, cpu: { server: serverUs, connector: connectorUs, backend: backendUs, other } };
  } catch (error) {
    await connector.close();
    throw error;
  }
}

export const connect: Scenario = {
  name: 'connect',
  summary: 'connects/s and handshake time: connect proxy (loopback backend) vs JWT-only vs JWT + proxy always',
  heraldOnly: 'the peers have no connect proxy',
  defaults: { connections: 2000, rate: 0, durationS: 0 },
  variants: VARIANTS,
  columns: [
    { title: 'server', key: 'server' },
    { title: 'conns', key: 'connections' },
    { title: 'failed', key: 'failed' },
    { title: 'conns/s', key: 'conns_per_s' },
    { title: 'hs p50 ms', key: 'handshake_p50_ms' },
    { title: 'hs p99 ms', key: 'handshake_p99_ms' },
    { title: 'srv µs/conn', key: 'server_us_per_conn' },
    { title: 'backend µs/conn', key: 'backend_us_per_conn' },
    { title: 'srv cpu %', key: 'cpu_pct' },
    { title: 'connector cpu %', key: 'loadgen_cpu_pct' },
    { title: 'hooks', key: 'hooks_answered' },
    { title: 'other %', key: 'other_cpu_pct' },
  ],
  ratioKeys: { handshake_p50_ms: 'lower', handshake_p99_ms: 'lower', backend_us_per_conn: 'lower' },
  async prepare({ variant }) {
    const v = variantOf(variant);
    if (v === 'jwt') return { heraldConfig: {}, state: undefined, close: async () => {} };
    const backend = await startConnectBackend();
    return {
      heraldConfig: { proxy: { connect: { url: backend.url, always: v === 'jwt-always' }, cookies: ['session'] } },
      state: backend,
      close: () => backend.close(),
    };
  },
  async run(ctx) {
    const { server, options } = ctx;
    const variant = variantOf(ctx.variant);
    const backend = ctx.prepared?.state as ConnectBackend | undefined;
    const count = Math.max(1, options.connections);

    const warm = await openRound(ctx, Math.min(200, Math.max(1, Math.round(count / 10))), variant);
    await warm.connector.close();
    ctx.progress(`warm-up: ${warm.opened.connected} connected, ${warm.opened.failed} failed`);
    const answeredBefore = backend?.answered ?? 0;

    const { connector, opened, cpu } = await openRound(ctx, count, variant);
    try {
      const wallUs = opened.elapsedMs * 1000;
      const h = decodeHistogram(opened.handshakes);
      const hs = summarize(h);
      h.destroy();
      const per = (us: number): number | null => (opened.connected > 0 ? round(us / opened.connected, 1) : null);
      ctx.progress(`${opened.connected} connected, ${opened.failed} failed in ${opened.elapsedMs.toFixed(0)} ms; handshake p50 ${hs.p50_ms} ms p99 ${hs.p99_ms} ms`);
      for (const e of opened.errors) ctx.progress(`  ${e}`);
      const serverPct = round((cpu.server / wallUs) * 100, 1);
      const connectorPct = round((cpu.connector / wallUs) * 100, 1);
      return {
        scenario: 'connect',
        server: server.name,
        variant,
        connections: opened.connected,
        rate: null,
        duration_s: round(opened.elapsedMs / 1000, 2),
        ...NO_DELIVERY_FIGURES,
        cpu_pct: serverPct,
        loadgen_cpu_pct: connectorPct,
        rss_mb: mb(serverRss(ctx)),
        rss_per_conn_kb: null,
        limited_by: serverPct >= connectorPct ? 'server' : 'loadgen',
        attempted: count,
        failed: opened.failed,
        concurrency: options.concurrency,
        conns_per_s: opened.elapsedMs > 0 ? round(opened.connected / (opened.elapsedMs / 1000), 0) : null,
        handshake_p50_ms: opened.connected > 0 ? hs.p50_ms : null,
        handshake_p90_ms: opened.connected > 0 ? hs.p90_ms : null,
        handshake_p99_ms: opened.connected > 0 ? hs.p99_ms : null,
        handshake_max_ms: opened.connected > 0 ? hs.max_ms : null,
        server_us_per_conn: per(cpu.server),
        backend_us_per_conn: backend ? per(cpu.backend) : null,
        hooks_answered: backend ? backend.answered - answeredBefore : null,
        hooks_malformed: backend ? backend.malformed : null,
        other_cpu_pct: round((cpu.other / wallUs) * 100, 1),
        errors: opened.errors,
      } satisfies RunResult;
    } finally {
      await connector.close();
    }
  },
};
