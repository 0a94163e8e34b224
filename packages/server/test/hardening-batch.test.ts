/**
 * `POST /api/v1/publish/batch` with filters must not block the event loop (issue 11, low): the
 * batch runs in slices, while its frames still reach each connection in order and in one write.
 */
import pino from 'pino';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { publishBatch } from '../src/http/batch-publish.js';
import { HeraldNode } from '../src/node.js';
import type { HeraldServer } from '../src/server.js';
import { decodeServerFrame, FakeTransport } from './helpers/fake-transport.js';
import { API_KEY, startTestServer, TestSocket } from './helpers/server.js';
import { pause } from './helpers/wait.js';

let server: HeraldServer | undefined;
const sockets: TestSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await server?.close();
  server = undefined;
});

function fakeNode() {
  const node = new HeraldNode(resolveConfig({ log: { level: 'silent' } }), pino({ level: 'silent' }));
  const attach = (user: string, tags: Record<string, string> = {}) => {
    const t = new FakeTransport();
    const s = node.attach(t);
    s.authenticate({ ...node.anonymousIdentity(), user, tags });
    void node.activate(s);
    return { s, t };
  };
  return { node, attach };
}

describe('held fan-out (hub)', () => {
  it('keeps fan-out frames of a hold for the release across event-loop turns, while other frames leave', async () => {
    const { node, attach } = fakeNode();
    await node.start();
    const reached = attach('reached', { plan: 'pro' });
    const bystander = attach('bystander', { plan: 'free' });
    const filter = { tag: 'plan', op: 'eq' as const, value: 'pro' };
    node.hub.writes.hold();
    await node.publish({ broadcast: true, filter, eventType: 'e', payload: 1 });
    await nextTurn();
    await node.publish({ broadcast: true, filter, eventType: 'e', payload: 2 });
    await nextTurn();
    // A reply to a connection the batch has not reached is not held back.
    bystander.s.enqueue(Buffer.from('pong'));
    await nextTurn();
    expect(bystander.t.writes).toHaveLength(1);
    expect(reached.t.writes).toHaveLength(0);
    node.hub.writes.release();
    expect(reached.t.writes).toHaveLength(1);
    expect(reached.t.texts().map((x) => JSON.parse(x).message.payload)).toEqual([1, 2]);
    await node.close();
  });

  // With and without msgIds: with them, fan-out runs after an await, outside the slice's own loop.
  it.each([false, true])('publishes a batch that spans several slices in order, in one write per connection (msgIds: %s)', async (withIds) => {
    const { node, attach } = fakeNode();
    await node.start();
    const a = attach('a');
    const b = attach('b');
    for (const { s } of [a, b]) node.hub.subscribe(s, 'room', false);
    const messages = Array.from({ length: 1000 }, (_, i) => ({ channel: 'room', eventType: 'e', payload: i, ...(withIds ? { msgId: `m-${i}` } : {}) }));
    let turns = 0;
    let counting = true;
    const counter = async () => {
      while (counting) {
        turns++;
        await nextTurn();
      }
    };
    void counter();
    const results = await publishBatch(node.publishing, node.hub.writes, messages);
    counting = false;
    expect(turns).toBeGreaterThan(1); // the event loop ran during the batch
    expect(results.map((r) => ('position' in r ? r.position!.offset : -1))).toEqual(messages.map((_, i) => i + 1));
    for (const { t } of [a, b]) {
      expect(t.writes).toHaveLength(1);
      expect(t.writes[0]!.map((f) => JSON.parse(decodeServerFrame(f)).message.payload)).toEqual(messages.map((m) => m.payload));
    }
    await node.close();
  });
});

describe('a heavy filtered batch over a real server', () => {
  it("answers a bystander's pings and another request while a batch of filtered broadcasts runs", async () => {
    server = await startTestServer({ limits: { maxMessageBytes: 1 << 20 } });
    const srv = server;
    const tagged = await Promise.all(Array.from({ length: 150 }, (_, i) => TestSocket.connect(srv, { sub: `t${i}`, tags: { app: '1.0.0' } })));
    sockets.push(...tagged);
    const bystander = await TestSocket.connect(srv, { sub: 'bystander' });
    sockets.push(bystander);
    // No index can narrow these filters, so every message tests every connection against 60 terms.
    const filter = { or: Array.from({ length: 60 }, (_, i) => ({ tag: 'app', op: 'vgte', value: `${i + 2}.0.0` })) };
    const messages = Array.from({ length: 1000 }, (_, i) => ({ broadcast: true, filter, eventType: 'e', payload: i }));

    const started = Date.now();
    let batchDoneAt = 0;
    const batch = fetch(`${srv.url}/api/v1/publish/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ messages }),
    }).then(async (r) => {
      batchDoneAt = Date.now();
      return { status: r.status, body: (await r.json()) as { results: unknown[] } };
    });

    // Ping all along the batch; note each round trip. A /healthz is asked for along the way too.
    const latencies: number[] = [];
    let healthAt = 0;
    let health: Promise<number> | undefined;
    while (batchDoneAt === 0) {
      const sent = Date.now();
      bystander.send({ type: 'ping' });
      const pong = await bystander.next((f) => f.type === 'pong', 30_000);
      latencies.push(pong.type === 'pong' ? Date.now() - sent : Infinity);
      // Asked part-way through the batch, while its fan-out is still running.
      health ??= latencies.length === 3 ? fetch(`${srv.url}/healthz`).then((r) => ((healthAt = Date.now()), r.status)) : undefined;
      await pause(20); // a probe every so often, not a flood of our own
    }
    const { status, body } = await batch;
    expect(status).toBe(200);
    expect(body.results).toHaveLength(1000);
    expect(await health).toBe(200);
    const took = batchDoneAt - started;
    // The workload must be heavy enough that a blocked event loop would show (else the test proves nothing).
    expect(took).toBeGreaterThan(1000);
    expect(healthAt).toBeLessThan(batchDoneAt);
    expect(latencies.length).toBeGreaterThan(3);
    // Safety bound, far from the slice length: a blocked loop would hold a pong for the whole batch.
    expect(Math.max(...latencies)).toBeLessThan(Math.min(500, took / 2));
  });
});
