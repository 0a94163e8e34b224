/**
 * admin: the cost of the server API's cluster-wide admin calls. `--connections` clients per node
 * (spread over `--channels` channels, one each) stay connected; then each admin call is made
 * back to back, one in flight, on node 1, for `--duration` seconds (at most 1000 calls; the
 * disconnects at most one per connected user):
 *
 * - `GET /api/v1/nodes`, `GET /api/v1/stats`, `GET /api/v1/channels`;
 * - `POST /api/v1/connections/{id}/request` to a client on the last node (on a single node: on
 *   it), which answers at once;
 * - `POST /api/v1/users/{user}/disconnect` with `reconnect: true`, a different connected user
 *   each call (last, since it closes connections).
 *
 * Per call: latency percentiles, the CPU all node processes spent (to the nanosecond, from
 * schedstat, less their idle rate measured before), the broker's likewise (a shared broker: other
 * clients' work shows in it), the control-plane messages published (counted on the bus), and how
 * many answers were partial or wrong. Compare a cluster with a single node in one invocation:
 * `compare --scenario admin --servers herald-redis-3,herald-redis-1`.
 */
import { resolveConfig } from 'herald/internal/config.js';
import { ADMIN_CALLS, AdminClient, judge, type AdminCall, type Answer } from '../admin/calls.js';
import { countsBetween, tapBus, type BusCounts, type BusTap } from '../admin/bus-tap.js';
import { connectResponder, type Responder } from '../admin/responder.js';
import { schedCpuMicrosOf } from '../lib/sched-cpu.js';
import { newLatencyHistogram, round, summarize } from '../lib/stats.js';
import { machineCpuMicros } from '../lib/proc.js';
import { mb, NO_DELIVERY_FIGURES, openConnections, type RunResult, type Scenario, type ScenarioContext, serverRss, sleep, startLoadGen } from './scenario.js';

/** Herald's defaults for the cluster timings; the benchmark's configuration leaves them alone. */
export const CLUSTER_DEFAULTS = resolveConfig({}).cluster;

const MAX_CALLS = 1000;
/** Unmeasured calls of each kind first, fewer in a short (smoke) run. */
const warmupCalls = (durationS: number): number => Math.max(3, Math.min(30, Math.round(durationS * 10)));
/** The idle window the nodes' and broker's background CPU is measured over, ms. */
const idleWindowMs = (durationS: number): number => Math.max(300, Math.min(2000, durationS * 1000));
/** Per-call result keys (`<call>_<key>`) and whether lower is better, for the comparison's ratios. */
const PER_CALL_KEYS = ['p50_ms', 'p99_ms', 'us_per_call', 'broker_us_per_call', 'bus_msgs'] as const;

/** The nodes a target runs: its URLs, or for `herald-workers-<n>` its worker processes. */
export function expectedNodes(ctx: ScenarioContext): number {
  const { server } = ctx;
  return server.name.startsWith('herald-workers-') ? server.pids.length - 1 : server.wsUrls.length;
}

export function channelNames(count: number): string[] {
  return Array.from({ length: Math.max(1, count) }, (_, i) => `admin:${i}`);
}

/** Waits (≤ 10 s) until node 1 lists every node, so no call runs before the cluster has formed. */
export async function waitForCluster(client: AdminClient, nodes: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const a = await client.call('GET', '/api/v1/nodes');
    if (Array.isArray(a.body.nodes) && a.body.nodes.length >= nodes) return;
    if (performance.now() > deadline) throw new Error(`node 1 lists ${JSON.stringify(a.body.nodes)}, expected ${nodes} nodes`);
    await sleep(100);
  }
}

interface CallPlan {
  call: AdminCall;
  make(i: number): Promise<{ answer: Answer; sent?: unknown }>;
  /** Calls available (disconnects: one per user). */
  limit: number;
}

interface CallFigures {
  calls: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  us_per_call: number;
  broker_us_per_call: number | null;
  bus_msgs: number | null;
  partial: number;
  wrong: number;
  over_bound: number;
  first_wrong?: string;
}

function plans(client: AdminClient, responder: Responder, disconnectUsers: string[]): CallPlan[] {
  const byCall: Record<AdminCall, CallPlan> = {
    nodes: { call: 'nodes', limit: MAX_CALLS, make: async () => ({ answer: await client.call('GET', '/api/v1/nodes') }) },
    stats: { call: 'stats', limit: MAX_CALLS, make: async () => ({ answer: await client.call('GET', '/api/v1/stats') }) },
    channels: { call: 'channels', limit: MAX_CALLS, make: async () => ({ answer: await client.call('GET', '/api/v1/channels') }) },
    request: {
      call: 'request',
      limit: MAX_CALLS,
      make: async (i) => {
        const sent = { i };
        return { answer: await client.call('POST', `/api/v1/connections/${encodeURIComponent(responder.connectionId)}/request`, { method: 'bench', data: sent, timeoutMs: 5000 }), sent };
      },
    },
    disconnect: {
      call: 'disconnect',
      limit: disconnectUsers.length,
      make: async (i) => ({ answer: await client.call('POST', `/api/v1/users/${encodeURIComponent(disconnectUsers[i]!)}/disconnect`, { reconnect: true }) }),
    },
  };
  return ADMIN_CALLS.map((c) => byCall[c]);
}

/** CPU µs per ms of wall time the nodes and the broker spend with nothing asked of them. */
async function idleRates(ctx: ScenarioContext, ms: number): Promise<{ nodes: number; broker: number }> {
  const broker = ctx.server.brokerPid !== undefined ? [ctx.server.brokerPid] : [];
  const n0 = schedCpuMicrosOf(ctx.server.pids);
  const b0 = schedCpuMicrosOf(broker);
  const t0 = performance.now();
  await sleep(ms);
  const wall = performance.now() - t0;
  return { nodes: (schedCpuMicrosOf(ctx.server.pids) - n0) / wall, broker: (schedCpuMicrosOf(broker) - b0) / wall };
}

async function measureCall(ctx: ScenarioContext, plan: CallPlan, nodes: number, idle: { nodes: number; broker: number }, tap: BusTap | undefined): Promise<CallFigures> {
  const { server, options } = ctx;
  const broker = server.brokerPid !== undefined ? [server.brokerPid] : [];
  const bound = CLUSTER_DEFAULTS.controlTimeoutMs;
  const h = newLatencyHistogram();
  let partial = 0;
  let wrong = 0;
  let overBound = 0;
  let firstWrong: string | undefined;
  const limit = Math.min(plan.limit, MAX_CALLS);
  const busBefore: BusCounts = tap?.counts() ?? {};
  const n0 = schedCpuMicrosOf(server.pids);
  const b0 = schedCpuMicrosOf(broker);
  const t0 = performance.now();
  const until = t0 + options.durationS * 1000;
  let calls = 0;
  while (calls < limit && (calls === 0 || performance.now() < until)) {
    const { answer, sent } = await plan.make(calls);
    calls++;
    h.recordValue(Math.max(1, Math.round(answer.ms * 1000)));
    if (answer.ms >= bound) overBound++;
    const j = judge(plan.call, answer, nodes, sent);
    if (j.partial) partial++;
    if (!j.ok) {
      wrong++;
      firstWrong ??= j.note;
    }
  }
  const wall = performance.now() - t0;
  const nodeUs = schedCpuMicrosOf(server.pids) - n0 - idle.nodes * wall;
  const brokerUs = schedCpuMicrosOf(broker) - b0 - idle.broker * wall;
  // Replies reach the asking node before it answers; the tap, one more subscriber, may hear them
  // a moment later.
  await sleep(100);
  const bus = tap ? countsBetween(busBefore, tap.counts()) : undefined;
  const lat = summarize(h);
  return {
    calls,
    p50_ms: lat.p50_ms,
    p99_ms: lat.p99_ms,
    max_ms: lat.max_ms,
    us_per_call: round(Math.max(0, nodeUs) / calls, 1),
    broker_us_per_call: broker.length > 0 ? round(Math.max(0, brokerUs) / calls, 1) : null,
    bus_msgs: bus ? round(((bus.cmd ?? 0) + (bus.reply ?? 0)) / calls, 2) : null,
    partial,
    wrong,
    over_bound: overBound,
    ...(firstWrong !== undefined ? { first_wrong: firstWrong } : {}),
  };
}

/** Users whose one connection is open, for the disconnects: every loadgen connection g is `user-<g>`. */
function connectedUsers(connected: number): string[] {
  return Array.from({ length: connected }, (_, g) => `user-${g}`);
}

export const admin: Scenario = {
  name: 'admin',
  summary: 'cluster-wide admin calls (nodes, stats, channels, request, disconnect): latency, node CPU and bus messages per call',
  heraldOnly: 'the peers have no admin API',
  defaults: { connections: 300, rate: 0, durationS: 3, channelCount: 100 },
  columns: [
    { title: 'server', key: 'server' },
    { title: 'nodes', key: 'nodes' },
    { title: 'conns', key: 'connections' },
    ...ADMIN_CALLS.flatMap((c) => [
      { title: `${c} p50`, key: `${c}_p50_ms` },
      { title: `${c} p99`, key: `${c}_p99_ms` },
      { title: `${c} µs`, key: `${c}_us_per_call` },
      { title: `${c} msgs`, key: `${c}_bus_msgs` },
    ]),
    { title: 'partial', key: 'partial' },
    { title: 'wrong', key: 'wrong' },
    { title: 'other %', key: 'other_cpu_pct' },
  ],
  ratioKeys: Object.fromEntries(ADMIN_CALLS.flatMap((c) => PER_CALL_KEYS.map((k) => [`${c}_${k}`, 'lower' as const]))),
  async run(ctx) {
    const { server, options } = ctx;
    const nodes = expectedNodes(ctx);
    const perNode = options.connections;
    const channels = channelNames(options.channelCount ?? 100);
    const client = new AdminClient(new URL(server.publishUrl).origin, server.apiKey);
    const loadgen = await startLoadGen(ctx, perNode * server.wsUrls.length);
    let responder: Responder | undefined;
    let tap: BusTap | undefined;
    try {
      await waitForCluster(client, nodes);
      const opened = await openConnections(ctx, loadgen, { subscriptions: { channels, perConnection: 'one' } });
      responder = await connectResponder(server.wsUrls[server.wsUrls.length - 1]!, server.secret, 'bench-responder');
      ctx.progress(`request target ${responder.connectionId} on ${responder.node}`);
      tap = server.bus ? await tapBus(server.bus) : undefined;
      const disconnectUsers = connectedUsers(opened.connected);
      const all = plans(client, responder, disconnectUsers);

      // Warm-up, unmeasured: every call's path compiled by the JIT. Disconnects warm up on users
      // with no connection (the same broadcast, nothing to close).
      for (const plan of all) {
        for (let i = 0; i < warmupCalls(options.durationS); i++) {
          if (plan.call === 'disconnect') await client.call('POST', `/api/v1/users/warmup-${i}/disconnect`, { reconnect: true });
          else await plan.make(i);
        }
      }
      await sleep(500);
      const idle = await idleRates(ctx, idleWindowMs(options.durationS));
      // µs of CPU per ms of wall time: a tenth of that is % of one core.
      ctx.progress(`idle: nodes ${round(idle.nodes / 10, 2)}% of a core, broker ${round(idle.broker / 10, 2)}%`);

      const machine0 = machineCpuMicros();
      const own0 = schedCpuMicrosOf([...server.pids, ...loadgen.pids, process.pid, ...(server.brokerPid !== undefined ? [server.brokerPid] : [])]);
      const t0 = performance.now();
      const result: Record<string, unknown> = {};
      let partial = 0;
      let wrong = 0;
      for (const plan of all) {
        const f = await measureCall(ctx, plan, nodes, idle, tap);
        ctx.progress(`${plan.call}: ${f.calls} calls, p50 ${f.p50_ms} ms, p99 ${f.p99_ms} ms, max ${f.max_ms} ms, ${f.us_per_call} µs node CPU/call, ${f.bus_msgs ?? '-'} bus msgs/call, ${f.partial} partial, ${f.wrong} wrong${f.first_wrong ? ` (first: ${f.first_wrong})` : ''}`);
        for (const [k, v] of Object.entries(f)) result[`${plan.call}_${k}`] = v;
        partial += f.partial;
        wrong += f.wrong;
      }
      const wallUs = (performance.now() - t0) * 1000;
      const machine = machineCpuMicros();
      const own = schedCpuMicrosOf([...server.pids, ...loadgen.pids, process.pid, ...(server.brokerPid !== undefined ? [server.brokerPid] : [])]) - own0;
      const otherPct = round(Math.max(0, ((machine.busy - machine0.busy - own) / wallUs) * 100), 1);
      const report = await loadgen.report();
      report.destroy();
      return {
        scenario: 'admin',
        server: server.name,
        connections: opened.connected,
        rate: null,
        duration_s: options.durationS,
        ...NO_DELIVERY_FIGURES,
        cpu_pct: 0,
        loadgen_cpu_pct: 0,
        rss_mb: mb(serverRss(ctx)),
        rss_per_conn_kb: null,
        limited_by: 'server',
        nodes,
        channels: channels.length,
        control_timeout_ms: CLUSTER_DEFAULTS.controlTimeoutMs,
        request_node: responder.node,
        idle_node_cpu_pct: round(idle.nodes / 10, 2),
        partial,
        wrong,
        other_cpu_pct: otherPct,
        closed: report.closedByCode,
        ...result,
      } satisfies RunResult;
    } finally {
      responder?.close();
      await tap?.close();
      client.close();
      await loadgen.close();
    }
  },
};
