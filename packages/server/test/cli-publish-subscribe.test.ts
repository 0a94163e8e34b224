/**
 * `herald publish` sets every field of a publish request (msgId, delivery, receipts, user, filter,
 * a JSON Lines batch); `herald subscribe` acknowledges, reconnects and recovers through
 * @herald/client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { CliProcess, runCli, tempFile } from './helpers/cli.js';
import { api, API_KEY, makeToken, startTestServer, TestSocket } from './helpers/server.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function server(overrides: Record<string, unknown> = {}): Promise<HeraldServer> {
  const s = await startTestServer(overrides);
  cleanup.push(() => s.close());
  return s;
}

function subscribeCli(args: string[]): CliProcess {
  const p = new CliProcess(['subscribe', ...args]);
  cleanup.push(async () => {
    p.stop();
    await p.exited;
  });
  return p;
}

async function socket(s: HeraldServer, claims: Parameters<typeof makeToken>[0], channels: string[] = []): Promise<TestSocket> {
  const ws = await TestSocket.open(s.wsUrl);
  cleanup.push(() => ws.close());
  ws.send({ type: 'connect', id: 1, token: await makeToken(claims) });
  await ws.next((f) => f.type === 'connected');
  let id = 2;
  for (const channel of channels) {
    ws.send({ type: 'subscribe', id, channel });
    await ws.next((f) => f.type === 'subscribed' && f.id === id);
    id++;
  }
  return ws;
}

const publishArgs = (s: HeraldServer) => ['publish', '--url', s.url, '--key', API_KEY];

describe('herald publish', () => {
  it('--msg-id, --delivery and --receipts reach the server; a repeated msgId is a duplicate', async () => {
    const s = await server();
    const ws = await socket(s, { sub: 'u1' }, ['orders']);
    const args = [...publishArgs(s), '--channel', 'orders', '-e', 'order.created', '-d', '{"id":7}', '--msg-id', 'order-7', '--delivery', 'at-least-once', '--receipts'];
    const first = await runCli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ msgId: 'order-7', position: { offset: 1 } });
    const got = await ws.next((f) => f.type === 'message');
    expect(got).toMatchObject({ ack: true, message: { msgId: 'order-7', eventType: 'order.created', payload: { id: 7 } } });
    expect((await api(s, 'GET', '/api/v1/messages/order-7')).status).toBe(200);
    expect(JSON.parse((await runCli(args)).stdout)).toMatchObject({ msgId: 'order-7', duplicate: true });
  });

  it('--user sends to one user; --broadcast --filter narrows by tags', async () => {
    const s = await server();
    const pro = await socket(s, { sub: 'alice', tags: { plan: 'pro' } });
    const free = await socket(s, { sub: 'bob', tags: { plan: 'free' } });
    expect((await runCli([...publishArgs(s), '--user', 'bob', '-e', 'dm', '-d', '"hi bob"'])).code).toBe(0);
    expect((await free.next((f) => f.type === 'message')).message.payload).toBe('hi bob');
    const filtered = await runCli([...publishArgs(s), '--broadcast', '--filter', '{"tag":"plan","op":"eq","value":"pro"}', '-e', 'promo', '-d', '1']);
    expect(filtered.code, filtered.stderr).toBe(0);
    expect((await pro.next((f) => f.type === 'message')).message.eventType).toBe('promo');
    // bob's next message is a later direct one: the filtered broadcast skipped him.
    await runCli([...publishArgs(s), '--user', 'bob', '-e', 'after', '-d', '2']);
    expect((await free.next((f) => f.type === 'message')).message.eventType).toBe('after');
  });

  it('--batch sends a JSON Lines file in order, flags filling what lines leave out', async () => {
    const s = await server();
    const ws = await socket(s, { sub: 'u1' }, ['feed']);
    const file = tempFile('batch.jsonl', [
      JSON.stringify({ channel: 'feed', eventType: 'e', payload: 1 }),
      '',
      JSON.stringify({ channel: 'feed', eventType: 'e', payload: 2, msgId: 'b-2' }),
      JSON.stringify({ channel: 'feed', eventType: 'e', payload: 3, delivery: 'at-most-once' }),
    ].join('\n'));
    const r = await runCli([...publishArgs(s), '--batch', file, '--delivery', 'at-least-once']);
    expect(r.code, r.stderr).toBe(0);
    const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(results.map((x) => x.line)).toEqual([1, 3, 4]);
    expect(results[1].msgId).toBe('b-2');
    const got = [await ws.next((f) => f.type === 'message'), await ws.next((f) => f.type === 'message'), await ws.next((f) => f.type === 'message')];
    expect(got.map((m) => m.message.payload)).toEqual([1, 2, 3]);
    expect(got.map((m) => m.ack === true)).toEqual([true, true, false]);
  });

  it('--batch: refused lines are reported, the rest published, exit 1', async () => {
    const s = await server();
    const file = tempFile('batch.jsonl', `${JSON.stringify({ channel: 'ok', eventType: 'e', payload: 1 })}\n${JSON.stringify({ channel: 'not ok', eventType: 'e', payload: 2 })}\n`);
    const r = await runCli([...publishArgs(s), '--batch', file]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
    expect(r.stderr).toBe('herald publish: 1 of 2 messages refused (first: line 2: invalid_channel: invalid channel name "not ok")\n');
  });
});

describe('herald subscribe', () => {
  const reliable = { delivery: { ackTimeoutMs: 200, retry: { initialDelayMs: 50, multiplier: 1, maxDelayMs: 50, jitter: 0 } } };

  it('--ack: an at-least-once message is acknowledged and printed once', async () => {
    const s = await server(reliable);
    const sub = subscribeCli(['--url', s.wsUrl, '--token', await makeToken({ sub: 'acker' }), '--channel', 'jobs']);
    await sub.until((p) => p.stderr.includes('subscribed to jobs'));
    const { msgId } = await s.publish({ channel: 'jobs', eventType: 'job', payload: 1, delivery: 'at-least-once', receipts: true });
    await sub.until((p) => p.lines.length === 1);
    await expect.poll(async () => (await api(s, 'GET', `/api/v1/messages/${msgId}`)).body.state, { timeout: 10_000 }).toBe('acknowledged');
    // Acknowledged: the server sends nothing more; a later message is the next line.
    await s.publish({ channel: 'jobs', eventType: 'job', payload: 2, delivery: 'at-least-once' });
    await sub.until((p) => p.lines.length === 2);
    expect(sub.lines.map((l) => l.payload)).toEqual([1, 2]);
    expect(sub.lines[0]).toMatchObject({ channel: 'jobs', target: 'channel', msgId, position: expect.stringMatching(/^1@/) });
  });

  it('--no-ack: the server retransmits; the copy is not printed twice', async () => {
    const s = await server(reliable);
    const sub = subscribeCli(['--url', s.wsUrl, '--token', await makeToken({ sub: 'lazy' }), '--channel', 'jobs', '--no-ack']);
    await sub.until((p) => p.stderr.includes('subscribed to jobs'));
    const { msgId } = await s.publish({ channel: 'jobs', eventType: 'job', payload: 1, delivery: 'at-least-once', receipts: true });
    await expect.poll(async () => (await api(s, 'GET', `/api/v1/messages/${msgId}`)).body.counts.retransmissions, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await s.publish({ channel: 'jobs', eventType: 'job', payload: 2 });
    await sub.until((p) => p.lines.length >= 2);
    expect(sub.lines.map((l) => l.payload)).toEqual([1, 2]);
  });

  it('--reconnect: comes back after the server restarts and keeps printing', async () => {
    const first = await startTestServer({ auth: { anonymous: true }, channels: { public: ['news'] } });
    const port = first.port;
    const sub = subscribeCli(['--url', first.wsUrl, '--channel', 'news']);
    await sub.until((p) => p.stderr.includes('subscribed to news'));
    await first.close();
    await sub.until((p) => p.stderr.includes('reconnecting in'));
    const second = await server({ server: { port }, auth: { anonymous: true }, channels: { public: ['news'] } });
    await sub.until((p) => (p.stderr.match(/subscribed to news/g) ?? []).length === 2);
    await second.publish({ channel: 'news', eventType: 'n', payload: 'after restart' });
    await sub.until((p) => p.lines.some((l) => l.payload === 'after restart'));
    expect(sub.proc.exitCode).toBeNull();
  });

  it('--recover offset@epoch replays what came after that position', async () => {
    const s = await server();
    const results = [];
    for (const n of [1, 2, 3]) results.push(await s.publish({ channel: 'log', eventType: 'l', payload: n }));
    const from = `${results[0]!.position!.offset}@${results[0]!.position!.epoch}`;
    const sub = subscribeCli(['--url', s.wsUrl, '--token', await makeToken({ sub: 'late' }), '--channel', 'log', '--recover', from]);
    await sub.until((p) => p.lines.length === 2);
    await s.publish({ channel: 'log', eventType: 'l', payload: 4 });
    await sub.until((p) => p.lines.length === 3);
    expect(sub.lines.map((l) => l.payload)).toEqual([2, 3, 4]);
  });

  it('a refused token: one line and exit 1, without reconnecting', async () => {
    const s = await server();
    const sub = subscribeCli(['--url', s.wsUrl, '--token', await makeToken({ secret: 'not-the-server-secret-0123456789abcdef' }), '--channel', 'x']);
    expect(await sub.exited).toBe(1);
    expect(sub.stdout).toBe('');
    expect(sub.stderr.trim().split('\n')).toHaveLength(1);
    expect(sub.stderr).toMatch(/^herald subscribe: .*unauthorized/);
  });
});
