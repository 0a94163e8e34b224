/**
 * Herald nodes over a real Redis Cluster and through a real Redis Sentinel setup, configured with
 * the `engine` examples of docs/cluster.md (only the addresses and the key prefix are replaced by
 * this run's), so the documented configuration is the one that is tested.
 *
 * Cluster: channels whose slots belong to each of the three shards, user messages and broadcasts
 * cross between two Herald nodes. Sentinel: the master is SIGKILLed under a stream of HTTP
 * publishes; publishes answer 503 broker_unavailable until Sentinel has promoted the replica, then
 * are accepted again, and an SDK client subscribed on the other node gets every accepted message
 * exactly once, in order — what it missed live it recovers from the history on the new master.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '@herald/client';
import type { HeraldServer } from '../src/server.js';
import { uniquePrefix } from './engine/services.js';
import { requireRedisServerBinary, startRedisCluster, startRedisSentinel, type RedisClusterProcesses, type RedisSentinelProcesses } from './helpers/redis-processes.js';
import { api, API_KEY, isMarker, makeToken, startTestServer, TestSocket, untilUserReachable } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const haveRedis = requireRedisServerBinary();

interface DocumentedRedis {
  type: 'redis';
  redis: {
    mode: string;
    prefix: string;
    sentinel?: { sentinels: string[]; masterName: string; password: string; sentinelPassword: string; db: number };
    cluster?: { nodes: string[]; password: string };
  };
}

/** The `engine` of the docs/cluster.md JSON example whose `engine.redis.mode` is `mode`. */
function documentedEngine(mode: 'sentinel' | 'cluster'): DocumentedRedis {
  const doc = readFileSync('docs/cluster.md', 'utf8');
  for (const [, block] of doc.matchAll(/```json\n([\s\S]*?)```/g)) {
    if (!block!.includes(`"mode": "${mode}"`)) continue;
    return (JSON.parse(block!) as { engine: DocumentedRedis }).engine;
  }
  throw new Error(`docs/cluster.md has no JSON example with "mode": "${mode}"`);
}

describe.skipIf(!haveRedis)('two Herald nodes on a Redis Cluster', () => {
  const documented = documentedEngine('cluster');
  const prefix = uniquePrefix('herald-hac-');
  let cluster: RedisClusterProcesses;
  let a: HeraldServer;
  let b: HeraldServer;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3, documented.redis.cluster!.password);
    const engine = { ...documented, redis: { ...documented.redis, prefix, presenceTtlMs: 3000, cluster: { ...documented.redis.cluster!, nodes: cluster.nodes.slice(0, 2) } } };
    [a, b] = (await Promise.all(['hac-a', 'hac-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine })))) as [HeraldServer, HeraldServer];
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all([a, b].map((n) => n?.close()));
    await cluster?.stop();
  });

  it('channels on every shard: a publish on A reaches the subscriber on B with the position history agrees with', async () => {
    const byOwner = new Map<number, string>();
    for (let i = 0; byOwner.size < 3 && i < 200; i++) {
      const ch = `shard:${i}`;
      const owner = await cluster.ownerOf(`{${ch}}`);
      if (!byOwner.has(owner)) byOwner.set(owner, ch);
    }
    expect(byOwner.size).toBe(3);
    const reader = await TestSocket.connect(b, { sub: 'shard-reader' });
    sockets.push(reader);
    for (const ch of byOwner.values()) await reader.subscribe(ch);
    const published: Array<{ channel: string; offset: number; epoch: string }> = [];
    for (const ch of byOwner.values()) {
      for (let i = 1; i <= 2; i++) {
        const res = await api(a, 'POST', '/api/v1/publish', { channel: ch, eventType: 'n', payload: { ch, i } });
        expect(res.status).toBe(200);
        published.push({ channel: ch, ...res.body.position });
      }
    }
    const got = await reader.waitMessages(published.length);
    expect(got.map((m) => ({ channel: m.channel, offset: m.offset, epoch: m.epoch }))).toEqual(published);
    // Recovery on the other node reads the same shard's history.
    const late = await TestSocket.connect(a, { sub: 'shard-late' });
    sockets.push(late);
    for (const p of published.filter((x) => x.offset === 1)) {
      const reply = await late.subscribe(p.channel, { offset: 1, epoch: p.epoch });
      expect(reply.recovered).toBe(true);
      expect(reply.publications.map((x: { offset: number }) => x.offset)).toEqual([2]);
    }
    // Nothing was lost, so no node reported a gap and closed its subscribers with 4005.
    expect(reader.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('a user message published on A reaches the user on B; presence lists the connection from A', async () => {
    const dev = await TestSocket.connect(b, { sub: 'shard-user' });
    sockets.push(dev);
    await waitFor(async () => ((await api(a, 'GET', '/api/v1/users/shard-user/connections')).body.connections ?? []).length === 1, 15_000, 'presence');
    await untilUserReachable(a, dev, 'shard-user');
    const res = await api(a, 'POST', '/api/v1/publish', { user: 'shard-user', eventType: 'notify', payload: 'hi' });
    expect(res.status).toBe(200);
    expect(await dev.next((f) => f.type === 'message' && !isMarker(f))).toMatchObject({ target: 'user', message: { payload: 'hi' } });
    const bc = await api(b, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'all', payload: 'everyone' });
    expect(bc.status).toBe(200);
    const onA = await TestSocket.connect(a, { sub: 'bc-a' });
    sockets.push(onA);
    await api(b, 'POST', '/api/v1/publish', { broadcast: true, eventType: 'all', payload: 'again' });
    expect(await onA.next((f) => f.type === 'message' && f.target === 'broadcast')).toMatchObject({ message: { payload: 'again' } });
  });
});

interface Attempt {
  status: number;
  code?: string;
  temporary?: boolean;
}

/** POSTs a publish with a fixed msgId until it is accepted; every answer is recorded. */
async function publishUntilAccepted(base: string, body: object, attempts: Attempt[]): Promise<void> {
  let refused: string | undefined;
  const before = attempts.length;
  await waitFor(
    async () => {
      const res = await fetch(`${base}/api/v1/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const json = (await res.json()) as { error?: { code: string; temporary: boolean } };
      attempts.push({ status: res.status, ...(json.error ? { code: json.error.code, temporary: json.error.temporary } : {}) });
      if (res.status < 500 && !res.ok) refused = `refused: ${res.status} ${JSON.stringify(json)}`;
      return res.ok || refused !== undefined;
    },
    60_000,
    `the publish ${JSON.stringify(body)} to be accepted`,
    50,
  ).catch((err: Error) => {
    // Say what the server kept answering (or that it did not answer at all).
    const answers = attempts.slice(before);
    throw new Error(`${err.message}; ${answers.length} answers, the last: ${JSON.stringify(answers.slice(-3))}`);
  });
  if (refused) throw new Error(refused);
}

describe.skipIf(!haveRedis)('two Herald nodes through Redis Sentinel, across a failover', () => {
  const documented = documentedEngine('sentinel');
  const prefix = uniquePrefix('herald-has-');
  let setup: RedisSentinelProcesses;
  let a: HeraldServer;
  let b: HeraldServer;
  let client: HeraldClient | undefined;

  beforeAll(async () => {
    const s = documented.redis.sentinel!;
    setup = await startRedisSentinel({ sentinels: 2, masterName: s.masterName, password: s.password, sentinelPassword: s.sentinelPassword });
    const engine = { ...documented, redis: { ...documented.redis, prefix, presenceTtlMs: 3000, sentinel: { ...s, sentinels: setup.sentinels } } };
    const history = { channels: { history: { size: 1000, ttlMs: 600_000 }, maxRecover: 1000 } };
    [a, b] = (await Promise.all(['has-a', 'has-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, ...history })))) as [HeraldServer, HeraldServer];
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await Promise.all([a, b].map((n) => n?.close()));
    await setup?.stop();
  });

  it('publishes answer 503 broker_unavailable until the replica is promoted; the subscriber gets every accepted message once, in order', async () => {
    const channel = 'failover:stream';
    client = new HeraldClient({ url: b.wsUrl, WebSocket: WebSocket as never, token: await makeToken({ sub: 'watcher', channels: ['failover:*'] }), reconnect: { strategy: 'fixed', delay: 100, maxAttempts: 1000 } });
    const seen: number[] = [];
    const closes: number[] = [];
    let subscribed = 0;
    let recoveryFailed = 0;
    const sub = client.subscribe<{ i: number }>(channel);
    sub.on('subscribed', () => void subscribed++);
    const markers: string[] = [];
    sub.on('message', (m) => void (m.eventType === 'marker' ? markers.push(m.msgId) : seen.push(m.payload.i)));
    sub.on('recoveryFailed', () => void recoveryFailed++);
    client.on('disconnected', (d) => void closes.push(d.code));
    await client.connect();
    await waitFor(() => subscribed > 0, 15_000, 'subscribed');

    const N = 30;
    const attempts: Attempt[] = [];
    for (let i = 1; i <= N; i++) {
      if (i === 11) {
        await waitFor(() => seen.length === 10, 15_000, 'messages before the failover');
        // Replication is asynchronous: only what the replica has acknowledged survives the kill.
        await setup.awaitReplicaCaughtUp();
        const old = await setup.currentMasterPort();
        // Kill without waiting for the promotion: the publishes below run into the gap.
        const promoted = setup.killMasterAndAwaitPromotion();
        // Together: a promotion that never comes fails with the sentinels' logs, not as a publish timeout.
        const [, now] = await Promise.all([publishUntilAccepted(a.url, { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-${i}` }, attempts), promoted]);
        expect(now).not.toBe(old);
        continue;
      }
      await publishUntilAccepted(a.url, { channel, eventType: 'n', payload: { i }, msgId: `${prefix}-${i}` }, attempts);
    }
    await waitFor(() => seen.length >= N, 30_000, `${N} messages (have ${seen.length})`);
    // A marker published after the last message comes after any duplicate of it on this channel.
    const { msgId: markerId } = await a.publish({ channel, eventType: 'marker', payload: null });
    await waitFor(() => markers.includes(markerId), 15_000, 'the marker after the last message');

    const failures = attempts.filter((x) => x.status !== 200);
    expect(failures.length).toBeGreaterThan(0); // the failover really refused publishes
    for (const f of failures) expect(f).toEqual({ status: 503, code: 'broker_unavailable', temporary: true });
    expect(seen).toEqual(Array.from({ length: N }, (_, k) => k + 1));
    expect(recoveryFailed).toBe(0);
    // B's subscriber connection was cut too: it asked the client to reconnect and recover.
    expect(closes).toContain(4005);
  }, 120_000);
});
