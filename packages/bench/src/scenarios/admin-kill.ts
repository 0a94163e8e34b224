/**
 * admin-kill: what the admin calls do while a node is dead but not yet expired. A cluster target
 * (≥ 2 nodes) with `--connections` clients per node and a request target on the last node; once
 * every call has answered in full, the last node is SIGKILLed, and from then on every admin call
 * runs in its own loop on node 1 (one in flight, 50 ms apart) until node 1 no longer lists the
 * dead node, and a further 2 s. The disconnects target a user whose only connection was on the
 * dead node; the requests go to its dead responder with `timeoutMs` 1000.
 *
 * Reported per call, while the dead node was listed and after: calls, partial answers, median and
 * largest latency; and when the node expired (kill → first node list without it). The bound to
 * hold: a call on a listed dead node answers within `cluster.controlTimeoutMs` (requests:
 * `timeoutMs` + `cluster.controlTimeoutMs`), partially; the dead node is gone within
 * `cluster.nodeTtlMs` of its last heartbeat.
 */
import { ADMIN_CALLS, AdminClient, judge, type AdminCall, type Answer } from '../admin/calls.js';
import { connectResponder } from '../admin/responder.js';
import { median, round } from '../lib/stats.js';
import { CLUSTER_DEFAULTS, channelNames, expectedNodes, waitForCluster } from './admin.js';
import { NO_DELIVERY_FIGURES, openConnections, type RunResult, type Scenario, sleep, startLoadGen } from './scenario.js';

const REQUEST_TIMEOUT_MS = 1000;
const GAP_MS = 50;
const AFTER_EXPIRY_MS = 2000;

interface Sample {
  /** ms after the kill the call was sent. */
  at: number;
  ms: number;
  partial: boolean;
  status: number;
}

function summarizeSamples(samples: Sample[]): Record<string, number | null> {
  const ms = samples.map((s) => s.ms);
  return {
    calls: samples.length,
    partial: samples.filter((s) => s.partial).length,
    p50_ms: ms.length > 0 ? round(median(ms), 1) : null,
    max_ms: ms.length > 0 ? round(Math.max(...ms), 1) : null,
  };
}

export const adminKill: Scenario = {
  name: 'admin-kill',
  summary: 'admin calls while one node of a cluster is SIGKILLed and until it expires: latency bounded by cluster.controlTimeoutMs',
  heraldOnly: 'the peers have no admin API',
  defaults: { connections: 100, rate: 0, durationS: 0, channelCount: 20 },
  columns: [
    { title: 'server', key: 'server' },
    { title: 'nodes', key: 'nodes' },
    { title: 'expired ms', key: 'expired_after_ms' },
    ...ADMIN_CALLS.flatMap((c) => [
      { title: `${c} dead max`, key: `${c}_dead_max_ms` },
      { title: `${c} dead partial`, key: `${c}_dead_partial` },
      { title: `${c} after max`, key: `${c}_after_max_ms` },
    ]),
    { title: 'over bound', key: 'over_bound' },
  ],
  async run(ctx) {
    const { server, options } = ctx;
    const nodes = expectedNodes(ctx);
    if (server.wsUrls.length < 2) throw new Error('admin-kill needs a cluster target with 2 or more nodes (herald-redis-<n>, herald-nats-<n>)');
    const perNode = options.connections;
    const channels = channelNames(options.channelCount ?? 20);
    const client = new AdminClient(new URL(server.publishUrl).origin, server.apiKey);
    const loadgen = await startLoadGen(ctx, perNode * server.wsUrls.length);
    const victimPid = server.pids[server.pids.length - 1]!;
    try {
      await waitForCluster(client, nodes);
      const opened = await openConnections(ctx, loadgen, { subscriptions: { channels, perConnection: 'one' } });
      const responder = await connectResponder(server.wsUrls[server.wsUrls.length - 1]!, server.secret, 'bench-responder');
      const dead = responder.node;
      // Connection g is on node ⌊g / channels⌋ mod n (loadgen/worker.ts): the first one on the last node.
      const victimUser = `user-${channels.length * (server.wsUrls.length - 1)}`;
      const calls: Record<AdminCall, () => Promise<Answer>> = {
        nodes: () => client.call('GET', '/api/v1/nodes'),
        stats: () => client.call('GET', '/api/v1/stats'),
        channels: () => client.call('GET', '/api/v1/channels'),
        request: () => client.call('POST', `/api/v1/connections/${encodeURIComponent(responder.connectionId)}/request`, { method: 'bench', data: 1, timeoutMs: REQUEST_TIMEOUT_MS }),
        disconnect: () => client.call('POST', `/api/v1/users/${encodeURIComponent(victimUser)}/disconnect`, { reconnect: true }),
      };
      for (const call of ADMIN_CALLS) {
        if (call === 'disconnect') continue; // would close the victim before the kill
        const j = judge(call, await calls[call](), nodes, 1);
        if (!j.ok) throw new Error(`healthy ${call} call answered wrong: ${j.note}`);
      }

      ctx.progress(`SIGKILL ${dead} (pid ${victimPid}); admin calls on node 1 until it expires`);
      const killedAt = performance.now();
      process.kill(victimPid, 'SIGKILL');
      let expiredAt: number | undefined;
      const deadline = killedAt + CLUSTER_DEFAULTS.nodeTtlMs + 20_000;
      const during = new Map<AdminCall, Sample[]>(ADMIN_CALLS.map((c) => [c, []]));
      const after = new Map<AdminCall, Sample[]>(ADMIN_CALLS.map((c) => [c, []]));
      const loop = async (call: AdminCall): Promise<void> => {
        for (;;) {
          const now = performance.now();
          if (now > deadline || (expiredAt !== undefined && now > expiredAt + AFTER_EXPIRY_MS)) return;
          const at = now - killedAt;
          const a = await calls[call]();
          const listed = Array.isArray(a.body.nodes) && (a.body.nodes as Array<{ node?: string }>).some((n) => n.node === dead);
          if (call === 'nodes' && !listed && expiredAt === undefined) expiredAt = performance.now();
          // A node list is never partial: it is what node 1 has heard, the dead node's expiry included.
          const partial = call === 'nodes' ? false : judge(call, a, nodes, 1).partial;
          const sample = { at, ms: a.ms, partial, status: a.status };
          (expiredAt === undefined || at < expiredAt - killedAt ? during : after).get(call)!.push(sample);
          await sleep(GAP_MS);
        }
      };
      await Promise.all(ADMIN_CALLS.map((c) => loop(c)));

      const result: Record<string, unknown> = {};
      let overBound = 0;
      for (const call of ADMIN_CALLS) {
        const bound = CLUSTER_DEFAULTS.controlTimeoutMs + (call === 'request' ? REQUEST_TIMEOUT_MS : 0);
        const d = during.get(call)!;
        const a = after.get(call)!;
        // Slack for the HTTP round trip and a busy machine: the bound is the server's wait.
        overBound += [...d, ...a].filter((s) => s.ms > bound + 250).length;
        for (const [k, v] of Object.entries(summarizeSamples(d))) result[`${call}_dead_${k}`] = v;
        for (const [k, v] of Object.entries(summarizeSamples(a))) result[`${call}_after_${k}`] = v;
        result[`${call}_statuses`] = [...new Set([...d, ...a].map((s) => s.status))].join(',');
        ctx.progress(`${call}: while listed ${JSON.stringify(summarizeSamples(d))}; after ${JSON.stringify(summarizeSamples(a))}`);
      }
      const report = await loadgen.report();
      report.destroy();
      responder.close();
      return {
        scenario: 'admin-kill',
        server: server.name,
        connections: opened.connected,
        rate: null,
        duration_s: round((performance.now() - killedAt) / 1000, 1),
        ...NO_DELIVERY_FIGURES,
        cpu_pct: 0,
        loadgen_cpu_pct: 0,
        rss_mb: 0,
        rss_per_conn_kb: null,
        limited_by: 'server',
        nodes,
        killed: dead,
        expired_after_ms: expiredAt === undefined ? null : round(expiredAt - killedAt, 0),
        control_timeout_ms: CLUSTER_DEFAULTS.controlTimeoutMs,
        heartbeat_ms: CLUSTER_DEFAULTS.heartbeatIntervalMs,
        node_ttl_ms: CLUSTER_DEFAULTS.nodeTtlMs,
        request_timeout_ms: REQUEST_TIMEOUT_MS,
        over_bound: overBound,
        ...result,
      } satisfies RunResult;
    } finally {
      client.close();
      await loadgen.close();
    }
  },
};
