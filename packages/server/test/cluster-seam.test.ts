/**
 * The recovery seam end to end (docs/reliability.md, src/engine/recovery-seam.ts): two Herald
 * nodes on one Redis, then on one NATS. Raw protocol clients — not the SDK, which de-duplicates by
 * msgId and would hide a repeat — stay subscribed on node A and are told to reconnect with
 * `POST /api/v1/users/{user}/disconnect {"reconnect": true}` over and over, while node B publishes
 * to their channel continuously (up to RATE a second, one publish at a time so that the order of
 * its results is the channel's order). Each reconnection resubscribes with `recover` from the last
 * position it saw. On every connection the `subscribed` reply's publications and then the live
 * messages must be the channel's messages strictly in order from that position on: none twice,
 * none missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { api, startTestServer, TestSocket, type Frame } from './helpers/server.js';
import { pause, waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();

const USERS = 4;
const RUN_MS = 10_000;
/** Node B's publish rate, per second. */
const RATE = 400;
/** How often each user is told to reconnect. */
const KICK_EVERY_MS = 150;
const TARGET_RECOVERIES = 200;
const MIN_RECOVERIES = 100;

interface Position {
  offset: number;
  epoch: string;
}

/** One connection's view: where it resumed from, and the channel offsets it got, in order. */
interface Run {
  user: string;
  since: Position;
  recovered: boolean | undefined;
  seen: Position[];
}

/** A user's reconnect loop on node A, until `stopped` settles. */
async function subscriber(node: HeraldServer, user: string, channel: string, runs: Run[], stopped: Promise<void>): Promise<void> {
  let stop = false;
  void stopped.then(() => (stop = true));
  let last: Position | undefined;
  while (!stop) {
    let socket: TestSocket;
    try {
      socket = await TestSocket.connect(node, { sub: user });
    } catch {
      // A client's pause before reconnecting, so a refusing node is not hammered.
      await pause(20);
      continue;
    }
    let reply: Frame;
    try {
      reply = await socket.subscribe(channel, last);
    } catch {
      // Told to reconnect before the reply came: nothing was delivered on this connection.
      socket.close();
      await socket.closed;
      continue;
    }
    const run: Run = { user, since: last ?? (reply.position as Position), recovered: reply.recovered as boolean | undefined, seen: [] };
    runs.push(run);
    await Promise.race([socket.closed, stopped]);
    socket.close();
    await socket.closed;
    // The connection's channel messages in wire order: the reply's publications where the reply
    // came, the live messages where they came.
    for (const f of socket.frames) {
      const batch = f === reply ? ((reply.publications ?? []) as Frame[]) : f.type === 'message' && f.channel === channel ? [f] : [];
      for (const m of batch) run.seen.push({ offset: m.offset as number, epoch: m.epoch as string });
    }
    last = run.seen.length > 0 ? run.seen[run.seen.length - 1] : run.since;
  }
}

async function seamRun(a: HeraldServer, b: HeraldServer, tag: string): Promise<void> {
  const channel = `seam:${tag}`;
  const users = Array.from({ length: USERS }, (_, i) => `seam-${tag}-${i}`);
  const runs: Run[] = [];
  let stop = false;
  let stopAll!: () => void;
  const stopped = new Promise<void>((resolve) => (stopAll = resolve));
  const clients = users.map((u) => subscriber(a, u, channel, runs, stopped));

  // Node B publishes one at a time at RATE per second, so the order of its replies is the channel's order.
  const order: Position[] = [];
  const publishing = (async () => {
    const started = Date.now();
    for (let i = 0; !stop; i++) {
      // Node B's publish, as its HTTP route calls it (the HTTP round trip would only slow the test).
      const res = await b.publish({ channel, eventType: 'seam.tick', payload: { i } });
      order.push(res.position!);
      const due = started + ((i + 1) * 1000) / RATE;
      // Pacing the publisher to RATE.
      if (due > Date.now()) await pause(due - Date.now());
    }
  })();

  const kicking = (async () => {
    // Every user subscribed once before the first kick.
    await waitFor(() => new Set(runs.map((r) => r.user)).size >= USERS || stop, RUN_MS, 'every user subscribed once');
    while (!stop) {
      for (const u of users) {
        const res = await api(a, 'POST', `/api/v1/users/${encodeURIComponent(u)}/disconnect`, { reconnect: true });
        expect(res.status).toBe(200);
      }
      // Pacing the kicks.
      await pause(KICK_EVERY_MS);
    }
  })();

  // Until enough recoveries happened, within the time budget.
  // Running out of the budget is no failure by itself: the MIN_RECOVERIES check below decides.
  await waitFor(() => runs.filter((r) => r.recovered !== undefined).length >= TARGET_RECOVERIES, RUN_MS, `${TARGET_RECOVERIES} recoveries`, 50).catch(() => undefined);
  stop = true;
  stopAll();
  await Promise.all([publishing, kicking, ...clients]);

  const recoveries = runs.filter((r) => r.recovered !== undefined);
  expect(recoveries.length, 'recoveries').toBeGreaterThanOrEqual(MIN_RECOVERIES);
  // Publishing went on throughout (the rate reached depends on the machine's load).
  expect(order.length, 'publications').toBeGreaterThan(recoveries.length);
  for (const r of recoveries) expect(r.recovered, `${r.user} from ${JSON.stringify(r.since)}`).toBe(true);
  // Each connection: a run of the channel's order starting right after where it resumed.
  const index = new Map(order.map((p, i) => [`${p.epoch}/${p.offset}`, i]));
  let repeats = 0;
  for (const r of runs) {
    const first = index.get(`${r.since.epoch}/${r.since.offset}`) ?? -1;
    const got = r.seen.map((p) => index.get(`${p.epoch}/${p.offset}`));
    const keys = r.seen.map((p) => `${p.epoch}/${p.offset}`);
    repeats += keys.length - new Set(keys).size;
    expect(got, `${r.user} from ${JSON.stringify(r.since)}: ${JSON.stringify(r.seen.map((p) => p.offset))}`).toEqual(got.map((_, i) => first + 1 + i));
  }
  expect(repeats).toBe(0);
}

describe.skipIf(!redisUp)('recovery seam end to end: two nodes on Redis', () => {
  const prefix = uniquePrefix('herald-seam-');
  let a: HeraldServer;
  let b: HeraldServer;

  beforeAll(async () => {
    const engine = { type: 'redis', redis: { url: REDIS_URL, prefix } };
    [a, b] = (await Promise.all(['node-a', 'node-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, rateLimits: { enabled: false } })))) as [HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
    await dropRedisKeys(prefix);
  });

  it('subscribers on node A, told to reconnect again and again while node B publishes, see every offset once, in order', () => seamRun(a, b, 'redis'), RUN_MS + 20_000);
});

describe.skipIf(!natsUp)('recovery seam end to end: two nodes on NATS', () => {
  const prefix = uniquePrefix('herald_seam_');
  let a: HeraldServer;
  let b: HeraldServer;

  beforeAll(async () => {
    const engine = { type: 'nats', nats: { servers: [NATS_URL], prefix } };
    [a, b] = (await Promise.all(['node-a', 'node-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine, rateLimits: { enabled: false } })))) as [HeraldServer, HeraldServer];
  });

  afterAll(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
    await dropNatsStreams(prefix);
  });

  it('subscribers on node A, told to reconnect again and again while node B publishes, see every offset once, in order', () => seamRun(a, b, 'nats'), RUN_MS + 20_000);
});
