/**
 * The admin UI's numbers are the cluster's: two Herald nodes on Redis, clients on both, traffic on
 * both; the UI served by one node shows both nodes, the connections and channel counts summed,
 * publish and delivery rates that include the other node's, and disconnects a connection held by
 * the other node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '@herald/protocol';
import type { HeraldServer } from '../src/server.js';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { API_KEY, startTestServer, TestSocket } from './helpers/server.js';
import { waitForValue } from './helpers/wait.js';

const redisUp = await requireRedis();

describe.skipIf(!redisUp)('admin UI over a two-node Redis cluster', () => {
  const prefix = uniquePrefix('herald-adminui-');
  const engine = { type: 'redis', redis: { url: REDIS_URL, prefix } };
  const cluster = { controlTimeoutMs: 800, heartbeatIntervalMs: 200, nodeTtlMs: 1500 };
  let a: HeraldServer;
  let b: HeraldServer;
  const sockets: TestSocket[] = [];
  let cookie = '';
  let csrf = '';
  let load: NodeJS.Timeout | undefined;

  const get = async (path: string) => (await fetch(`${a.url}/admin/api${path}`, { headers: { cookie } })).json() as Promise<any>;

  beforeAll(async () => {
    [a, b] = await Promise.all(['ui-a', 'ui-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, cluster, admin: { ui: { enabled: true } } }))) as [HeraldServer, HeraldServer];
    for (const [server, n] of [[a, 1], [b, 3]] as const) {
      for (let i = 0; i < n; i++) {
        const s = await TestSocket.connect(server, { sub: `user-${server.node.name}-${i}` });
        await s.subscribe('cluster:room');
        sockets.push(s);
      }
    }
    const login = await fetch(`${a.url}/admin/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-herald-csrf': 'login' }, body: JSON.stringify({ credential: API_KEY }) });
    expect(login.status).toBe(200);
    cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    csrf = ((await login.json()) as { csrf: string }).csrf;
    // Publishes through node b only: node a's UI sees them through b's figures.
    load = setInterval(() => void b.publish({ channel: 'cluster:room', eventType: 'tick', payload: null }).catch(() => undefined), 50);
  });

  afterAll(async () => {
    clearInterval(load);
    for (const s of sockets) s.close();
    await Promise.all([a, b].map((s) => s?.close()));
    await dropRedisKeys(prefix);
  });

  it('lists both nodes with their own connection counts', async () => {
    const nodes = await waitForValue(async () => {
      const body = await get('/nodes');
      const counts = Object.fromEntries((body.byNode as Array<{ node: string; connections: number }>).map((n) => [n.node, n.connections]));
      return body.beats.length === 2 && counts['ui-a'] === 1 && counts['ui-b'] === 3 ? body : undefined;
    }, 10_000, 'both nodes in /admin/api/nodes');
    expect(nodes.node).toBe('ui-a');
  });

  it('sums connections, channel counts and rates over the cluster', async () => {
    const sample = await waitForValue(async () => {
      const s = ((await get('/overview')).samples as any[]).at(-1);
      // Every publish on b reaches four subscribers: one on a, three on b.
      return s && s.nodes === 2 && s.connections === 4 && s.publishesPerSecond > 0 && s.deliveriesPerSecond > s.publishesPerSecond ? s : undefined;
    }, 15_000, 'a cluster-wide sample with traffic');
    expect(sample.deliveryP99Ms).toBeGreaterThanOrEqual(sample.deliveryP50Ms);
    const channels = await get('/channels?prefix=cluster:');
    expect(channels.channels).toEqual([{ channel: 'cluster:room', subscribers: 4 }]);
    expect(channels.nodes.replied.sort()).toEqual(['ui-a', 'ui-b']);
  });

  it("disconnects a connection held by the other node, and finds a user's connections there", async () => {
    const target = sockets[1]!; // on b
    const user = `user-${b.node.name}-0`;
    const found = await get(`/users/${user}/connections`);
    expect(found.connections.map((c: { connectionId: string }) => c.connectionId)).toEqual([target.info.connectionId]);
    const r = await fetch(`${a.url}/admin/api/connections/${target.info.connectionId as string}/disconnect`, {
      method: 'POST', headers: { cookie, 'content-type': 'application/json', 'x-herald-csrf': csrf }, body: JSON.stringify({ reconnect: false }),
    });
    expect(r.status).toBe(200);
    expect((await target.closed).code).toBe(CloseCode.FORCE_DISCONNECT);
  });
});
