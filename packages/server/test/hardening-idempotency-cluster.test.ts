/**
 * Issue 11, R1: one msgId is stored once per idempotency window across a cluster. Two Herald nodes
 * in one process share Redis (then NATS); publishers retry the same msgId through both nodes at
 * once and one after the other, and every subscriber must see each msgId exactly once, with every
 * answer for a msgId naming the same position.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { dropNatsStreams, dropRedisKeys, NATS_URL, REDIS_URL, requireNats, requireRedis, uniquePrefix } from './engine/services.js';
import { api, messagesBesideMarkers, publishMarker, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();


/** Each msgId's frames, by msgId. */
function byMsgId(frames: Array<Record<string, any>>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const f of frames) counts.set(f.message.msgId, (counts.get(f.message.msgId) ?? 0) + 1);
  return counts;
}

function clusterCases(name: string, up: boolean, engineOf: (prefix: string) => Record<string, unknown>, drop: (prefix: string) => Promise<void>): void {
  describe.skipIf(!up)(`idempotency across two nodes on ${name}`, () => {
    const prefix = uniquePrefix(name === 'nats' ? 'herald_idem_' : 'herald-idem-');
    let a: HeraldServer;
    let b: HeraldServer;
    const sockets: TestSocket[] = [];
    const track = (s: TestSocket) => (sockets.push(s), s);

    /**
     * A marker through each node in turn, awaited at `socket`: a duplicate either node published
     * earlier on that path would have reached the socket before that node's marker.
     */
    async function markersThroughBoth(socket: TestSocket, target: { channel: string } | { user: string } | { broadcast: true }): Promise<void> {
      for (const node of [a, b]) await publishMarker(node, socket, target);
    }

    beforeAll(async () => {
      const engine = engineOf(prefix);
      [a, b] = (await Promise.all(['node-a', 'node-b'].map((nodeName) => startTestServer({ server: { nodeName }, engine })))) as [HeraldServer, HeraldServer];
    });

    afterAll(async () => {
      for (const s of sockets) s.close();
      await Promise.all([a, b].map((n) => n?.close()));
      await drop(prefix);
    });

    it('concurrent retries of one msgId through both nodes store it once; every answer names the same position', async () => {
      const readers = [track(await TestSocket.connect(a, { sub: 'r1-a' })), track(await TestSocket.connect(b, { sub: 'r1-b' }))];
      for (const r of readers) await r.subscribe('idem:concurrent');
      const ids = Array.from({ length: 20 }, (_, i) => `${prefix}-c-${i}`);
      // Three attempts per node per msgId, all in flight at once.
      const attempts = ids.flatMap((msgId) => [a, a, a, b, b, b].map((node) => ({ node, msgId })));
      const answers = await Promise.all(attempts.map(({ node, msgId }) => api(node, 'POST', '/api/v1/publish', { channel: 'idem:concurrent', eventType: 'x', payload: msgId, msgId })));
      for (const res of answers) expect(res.status).toBe(200);
      for (const msgId of ids) {
        const mine = answers.filter((r) => r.body.msgId === msgId);
        expect(mine).toHaveLength(6);
        expect(mine.filter((r) => r.body.duplicate !== true), msgId).toHaveLength(1);
        expect(new Set(mine.map((r) => JSON.stringify(r.body.position))).size, msgId).toBe(1);
        expect(new Set(mine.map((r) => r.body.timestamp)).size, msgId).toBe(1);
      }
      for (const r of readers) {
        await r.waitMessages(ids.length, 10_000);
        await markersThroughBoth(r, { channel: 'idem:concurrent' });
        const counts = byMsgId(messagesBesideMarkers(r));
        expect([...counts.keys()].sort()).toEqual([...ids].sort());
        expect([...counts.values()].every((n) => n === 1), JSON.stringify([...counts])).toBe(true);
      }
      // History holds each msgId once too.
      const history = await b.node.broker.history('idem:concurrent', { limit: 1000 });
      expect(history.entries.filter((e) => e.envelope.eventType !== 'marker').map((e) => e.envelope.msgId).sort()).toEqual([...ids].sort());
    });

    it('a retry sent to the other node after a 2xx is a duplicate with the original position and timestamp', async () => {
      const reader = track(await TestSocket.connect(b, { sub: 'r1-seq' }));
      await reader.subscribe('idem:sequential');
      const ids = Array.from({ length: 20 }, (_, i) => `${prefix}-s-${i}`);
      for (const msgId of ids) {
        const body = { channel: 'idem:sequential', eventType: 'x', payload: msgId, msgId };
        const first = await api(a, 'POST', '/api/v1/publish', body);
        expect(first.status).toBe(200);
        expect(first.body.duplicate).toBeUndefined();
        for (const node of [b, a]) {
          const retry = await api(node, 'POST', '/api/v1/publish', body);
          expect(retry.body).toEqual({ ...first.body, duplicate: true });
        }
      }
      await reader.waitMessages(ids.length);
      await markersThroughBoth(reader, { channel: 'idem:sequential' });
      expect(messagesBesideMarkers(reader).map((m) => m.message.msgId)).toEqual(ids);
    });

    it('user and broadcast targets: concurrent retries through both nodes are delivered once', async () => {
      const user = track(await TestSocket.connect(b, { sub: `${prefix}-user` }));
      const all = track(await TestSocket.connect(a, { sub: 'r1-bcast' }));
      const ids = Array.from({ length: 10 }, (_, i) => `${prefix}-u-${i}`);
      const bodies = ids.flatMap((msgId) => [
        { user: `${prefix}-user`, eventType: 'x', payload: 'u', msgId: `${msgId}-user` },
        { broadcast: true, eventType: 'x', payload: 'b', msgId: `${msgId}-all` },
      ]);
      const answers = await Promise.all(bodies.flatMap((body) => [a, b, a, b].map((node) => api(node, 'POST', '/api/v1/publish', body))));
      for (const res of answers) expect(res.status).toBe(200);
      expect(answers.filter((r) => r.body.duplicate !== true)).toHaveLength(bodies.length);
      await user.waitMessages(2 * ids.length, 10_000);
      await all.waitMessages(ids.length, 10_000);
      await markersThroughBoth(user, { user: `${prefix}-user` });
      await markersThroughBoth(user, { broadcast: true }); // the user's socket gets broadcasts too
      await markersThroughBoth(all, { broadcast: true });
      const toUser = byMsgId(messagesBesideMarkers(user));
      expect(toUser.size).toBe(2 * ids.length);
      expect([...toUser.values()].every((n) => n === 1), JSON.stringify([...toUser])).toBe(true);
      const toAll = byMsgId(messagesBesideMarkers(all));
      expect(toAll.size).toBe(ids.length);
      expect([...toAll.values()].every((n) => n === 1), JSON.stringify([...toAll])).toBe(true);
    });

    it('at-least-once to a user: a retry after the user acknowledged is a duplicate and is not put back in the inbox', async () => {
      const name = `${prefix}-acker`;
      const user = track(await TestSocket.connect(a, { sub: name }));
      const ids = Array.from({ length: 5 }, (_, i) => `${prefix}-r-${i}`);
      const body = (msgId: string) => ({ user: name, eventType: 'x', payload: msgId, msgId, delivery: 'at-least-once' });
      // Concurrent first attempts through both nodes.
      const firsts = await Promise.all(ids.flatMap((msgId) => [a, b].map((node) => api(node, 'POST', '/api/v1/publish', body(msgId)))));
      expect(firsts.filter((r) => r.body.duplicate !== true)).toHaveLength(ids.length);
      const got = await user.waitMessages(ids.length, 10_000);
      user.send({ type: 'ack', msgIds: got.map((m) => m.message.msgId) });
      await waitFor(async () => (await a.node.inbox.size(name)) === 0, 5000, 'the ACK to empty the inbox');
      for (const msgId of ids) {
        for (const node of [b, a]) {
          const retry = await api(node, 'POST', '/api/v1/publish', body(msgId));
          expect(retry.body.duplicate).toBe(true);
        }
      }
      expect(await a.node.inbox.size(name)).toBe(0);
      await markersThroughBoth(user, { user: name });
      expect(byMsgId(messagesBesideMarkers(user)).size).toBe(ids.length);
      expect(messagesBesideMarkers(user)).toHaveLength(ids.length);
    });
  });
}

clusterCases('redis', redisUp, (prefix) => ({ type: 'redis', redis: { url: REDIS_URL, prefix } }), dropRedisKeys);
clusterCases('nats', natsUp, (prefix) => ({ type: 'nats', nats: { servers: [NATS_URL], prefix } }), dropNatsStreams);
