/**
 * Webhooks end to end on the SQLite engine: a real Herald, a real local HTTP receiver. Events are
 * signed (checked with the SDK's verifyWebhook), retried with backoff, dead-lettered after the
 * cap and requeued over the API; a receiver that hangs, redirects, refuses or answers a huge body
 * costs one attempt and blocks nobody else; pending events survive a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyWebhook } from '@herald/server';
import type { DeepPartial, HeraldConfig } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { api, API_KEY, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor, waitForValue } from './helpers/wait.js';
import { WebhookReceiver, type ReceivedWebhook } from './helpers/webhook-receiver.js';
import { serverFile } from './helpers/paths.js';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';

const validateEvent = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(serverFile('api/webhook-event.schema.json'), 'utf8')));

const SECRET = { kid: 'k1', secret: 'webhook-secret-0123456789' };
const ADMIN = API_KEY;
const READ_KEY = 'read-only-key-0123456789';

const dirs: string[] = [];
const servers: HeraldServer[] = [];
const receivers: WebhookReceiver[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close().catch(() => undefined);
  for (const r of receivers.splice(0)) await r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function receiver(): Promise<WebhookReceiver> {
  const r = await WebhookReceiver.start();
  receivers.push(r);
  return r;
}

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'herald-webhooks-'));
  dirs.push(d);
  return d;
}

type Endpoint = HeraldConfig['webhooks']['endpoints'][number];

async function server(endpoints: Endpoint[], extra: DeepPartial<HeraldConfig> = {}, dir = dataDir()): Promise<HeraldServer> {
  const s = await startTestServer({
    engine: { type: 'sqlite', sqlite: { dataDir: dir, synchronous: 'normal' } },
    api: { keys: [ADMIN, { key: READ_KEY, scope: 'read' }] },
    ...extra,
    webhooks: { pollIntervalMs: 20, retry: { initialMs: 20, maxMs: 200, maxAttempts: 4 }, timeoutMs: 2000, ...extra.webhooks, endpoints },
  } as DeepPartial<HeraldConfig>);
  servers.push(s);
  return s;
}

const endpoint = (r: WebhookReceiver, over: Partial<Endpoint> = {}): Endpoint => ({ id: 'app', url: r.url, events: ['*'], secrets: [SECRET], ...over });

function delivered(r: WebhookReceiver, type: string, pred: (w: ReceivedWebhook) => boolean = () => true): Promise<ReceivedWebhook> {
  return waitForValue(() => r.ofType(type).find(pred), 10_000, `a ${type} webhook`);
}

async function metric(s: HeraldServer, line: RegExp): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').pop()) : NaN;
}

describe('webhooks', () => {
  it('sends signed connection, subscription and acknowledgement events that verifyWebhook accepts', async () => {
    const r = await receiver();
    const s = await server([endpoint(r)]);
    const sock = await TestSocket.connect(s, { sub: 'alice', channels: ['room:*'] });
    const connId = sock.info.connectionId as string;
    await sock.subscribe('room:1');
    expect((await sock.request({ type: 'unsubscribe', channel: 'room:1' })).type).toBe('unsubscribed');
    const { msgId } = await s.publish({ user: 'alice', eventType: 'note', payload: 1, delivery: 'at-least-once' });
    await sock.next((f) => f.type === 'message' && f.message?.msgId === msgId);
    sock.send({ type: 'ack', msgIds: [msgId] });
    const acked = await delivered(r, 'message.acknowledged');
    expect(acked.event.data).toMatchObject({ msgId, user: 'alice', connectionId: connId });
    sock.close();

    const opened = await delivered(r, 'connection.opened');
    expect(opened.event.data).toMatchObject({ connectionId: connId, user: 'alice', node: s.node.name });
    expect((await delivered(r, 'subscription.added')).event.data).toMatchObject({ connectionId: connId, channel: 'room:1' });
    expect((await delivered(r, 'subscription.removed')).event.data).toMatchObject({ connectionId: connId, channel: 'room:1' });
    const closed = await delivered(r, 'connection.closed');
    expect(closed.event.data).toMatchObject({ connectionId: connId, user: 'alice', code: 1005 });

    for (const w of r.received) {
      expect(validateEvent(w.event), JSON.stringify(validateEvent.errors)).toBe(true);
      const v = verifyWebhook(w.headers, w.body, { k1: SECRET.secret }, { toleranceSec: 60 });
      expect(v).toMatchObject({ ok: true, eventId: w.event.id, kid: 'k1' });
      expect(w.headers['herald-event-type']).toBe(w.event.type);
      expect(w.headers['content-type']).toBe('application/json');
    }
    // Events of one connection arrive in the order they happened (SQLite keeps per-key order).
    const order = r.received.filter((w) => w.event.data.connectionId === connId && w.event.type !== 'message.acknowledged').map((w) => w.event.type);
    expect(order).toEqual(['connection.opened', 'subscription.added', 'subscription.removed', 'connection.closed']);
    await waitFor(async () => (await metric(s, /^herald_webhook_sent_total\{endpoint="app"\}/)) >= 5, 5000, 'herald_webhook_sent_total');
    expect(await metric(s, /^herald_webhook_outbox_depth /)).toBe(0);
  });

  it('sends message.retries_exhausted and inbox.expired', async () => {
    const r = await receiver();
    const s = await server([endpoint(r, { events: ['message.retries_exhausted', 'inbox.expired'] })], {
      delivery: { ackTimeoutMs: 50, retry: { initialDelayMs: 50, multiplier: 1, maxDelayMs: 50, jitter: 0 }, maxAttempts: 2 },
      inbox: { maxMessages: 1 },
    });
    const sock = await TestSocket.connect(s, { sub: 'gina' });
    const { msgId } = await s.publish({ user: 'gina', eventType: 'x', payload: 1, delivery: 'at-least-once' });
    const exhausted = await delivered(r, 'message.retries_exhausted');
    expect(exhausted.event.data).toMatchObject({ msgId, user: 'gina', connectionId: sock.info.connectionId, attempts: 2 });
    sock.close();
    await sock.closed;
    // Offline with a one-message inbox: the second message pushes one out.
    await s.publish({ user: 'gina', eventType: 'x', payload: 2, delivery: 'at-least-once' });
    await s.publish({ user: 'gina', eventType: 'x', payload: 3, delivery: 'at-least-once' });
    const expired = await delivered(r, 'inbox.expired');
    expect(expired.event.data).toEqual({ user: 'gina', dropped: expect.any(Number) });
    expect(expired.event.data.dropped).toBeGreaterThanOrEqual(1);
    for (const w of r.received) expect(validateEvent(w.event), JSON.stringify(validateEvent.errors)).toBe(true);
  });

  it("claims this node's new events as soon as they are committed, not at the next poll", async () => {
    const r = await receiver();
    const s = await server([endpoint(r, { events: ['connection.opened'] })], { webhooks: { pollIntervalMs: 60_000 } });
    await TestSocket.connect(s, { sub: 'prompt' });
    // The dispatcher's loop sleeps for a minute between polls; the commit wakes it.
    await delivered(r, 'connection.opened');
  });

  it('sends an event committed on an idle node at once, not at the next poll; 16 requests in flight raise no listener warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    try {
      const r = await receiver();
      // The first 16 answers wait until 16 requests are in flight at once, then all go.
      const held: ServerResponse[] = [];
      r.respond = (_req, res) => {
        if (held.length >= 16) return 204;
        held.push(res);
        if (held.length === 16) for (const h of held) h.writeHead(204).end();
        return 'handled';
      };
      // A poll far beyond the test's wait: only being told of the new events can send them in time.
      const s = await server([endpoint(r, { events: ['connection.opened'] })], { webhooks: { pollIntervalMs: 60_000, concurrency: 16, endpointConcurrency: 16 } });
      await waitFor(async () => (await metric(s, /^herald_webhook_outbox_depth /)) === 0, 5000, 'the dispatcher idle');
      // One connection each: events of one connection are sent one at a time (its ordering key).
      const socks = await Promise.all(Array.from({ length: 17 }, (_, i) => TestSocket.connect(s, { sub: `u${i}` })));
      await waitFor(() => new Set(r.ofType('connection.opened').map((w) => w.event.id)).size === 17, 10_000, '17 connection.opened webhooks');
      expect(held).toHaveLength(16);
      for (const sock of socks) sock.close();
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('only sends the event types an endpoint asked for, to each endpoint with its own secret', async () => {
    const a = await receiver();
    const b = await receiver();
    const s = await server([endpoint(a, { id: 'a', events: ['connection.closed'] }), endpoint(b, { id: 'b', events: ['connection.opened'], secrets: [{ kid: 'b1', secret: 'secret-of-b-0123456789' }] })]);
    const sock = await TestSocket.connect(s, { sub: 'bob' });
    sock.close();
    const closed = await delivered(a, 'connection.closed');
    const opened = await delivered(b, 'connection.opened');
    expect(a.received.map((w) => w.event.type)).toEqual(['connection.closed']);
    expect(b.received.map((w) => w.event.type)).toEqual(['connection.opened']);
    expect(verifyWebhook(opened.headers, opened.body, { b1: 'secret-of-b-0123456789' }).ok).toBe(true);
    expect(verifyWebhook(closed.headers, closed.body, { b1: 'secret-of-b-0123456789' })).toEqual({ ok: false, reason: 'unknown_kid' });
  });

  it('retries a failing receiver with growing delays, then delivers the same event id', async () => {
    const r = await receiver();
    let calls = 0;
    r.respond = () => (++calls <= 2 ? 503 : 200);
    const s = await server([endpoint(r, { events: ['connection.opened'] })]);
    await TestSocket.connect(s, { sub: 'carol' });
    await waitFor(() => r.received.length >= 3, 10_000, 'two failures and a success');
    const ids = new Set(r.received.map((w) => w.event.id));
    expect(ids.size).toBe(1);
    expect(r.received.map((w) => w.headers['herald-attempt'])).toEqual(['1', '2', '3']);
    // Backoff: the second gap is drawn from [initialMs, 2·initialMs], the first from [initialMs/2, initialMs].
    expect(r.received[1]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(10);
    expect(r.received[2]!.at - r.received[1]!.at).toBeGreaterThanOrEqual(20);
    await waitFor(async () => (await metric(s, /^herald_webhook_failed_total\{endpoint="app",reason="status"\}/)) === 2, 5000, 'two failures counted');
  });

  it('moves an event to the dead letters after the retry cap; the API lists, requeues and deletes it (admin keys only)', async () => {
    const r = await receiver();
    r.respond = () => 500;
    const s = await server([endpoint(r, { events: ['connection.opened'] })]);
    await TestSocket.connect(s, { sub: 'dave' });
    await TestSocket.connect(s, { sub: 'erin' });
    const list = await waitForValue(async () => {
      const res = await api(s, 'GET', '/api/v1/webhooks/dead-letters');
      return res.body.deadLetters?.length === 2 ? res.body.deadLetters : undefined;
    }, 15_000, 'two dead letters');
    expect(r.received).toHaveLength(8);
    const dave = list.find((d: { body: string }) => JSON.parse(d.body).data.user === 'dave');
    expect(dave).toMatchObject({ endpoint: 'app', type: 'connection.opened', attempts: 4, lastError: 'HTTP 500' });
    expect(dave.deadAt).toBeGreaterThanOrEqual(dave.createdAt);
    expect(await metric(s, /^herald_webhook_dead_letters /)).toBe(2);
    expect(await metric(s, /^herald_webhook_dead_lettered_total\{endpoint="app"\}/)).toBe(2);

    // Scope: a read key may not touch dead letters.
    expect((await api(s, 'GET', '/api/v1/webhooks/dead-letters', undefined, READ_KEY)).status).toBe(403);
    expect((await api(s, 'POST', `/api/v1/webhooks/dead-letters/${dave.id}/retry`, undefined, READ_KEY)).status).toBe(403);

    r.respond = () => 204;
    const retried = await api(s, 'POST', `/api/v1/webhooks/dead-letters/${dave.id}/retry`);
    expect(retried).toMatchObject({ status: 200, body: { requeued: true } });
    const again = await waitForValue(() => r.received.slice(8).find((w) => w.event.id === dave.id), 10_000, 'the requeued event');
    expect(again.headers['herald-attempt']).toBe('1');
    expect(again.body).toBe(dave.body);

    const other = list.find((d: { id: string }) => d.id !== dave.id);
    expect(await api(s, 'DELETE', `/api/v1/webhooks/dead-letters/${other.id}`)).toMatchObject({ status: 200, body: { deleted: true } });
    expect((await api(s, 'DELETE', `/api/v1/webhooks/dead-letters/${other.id}`)).body.error.code).toBe('dead_letter_not_found');
    expect((await api(s, 'POST', `/api/v1/webhooks/dead-letters/${other.id}/retry`)).status).toBe(404);
    expect((await api(s, 'GET', '/api/v1/webhooks/dead-letters?limit=0')).status).toBe(400);
    await waitFor(async () => (await api(s, 'GET', '/api/v1/webhooks/dead-letters')).body.deadLetters.length === 0, 5000, 'no dead letters left');
  });

  it('a hanging receiver times out without holding back another endpoint; 3xx and 4xx are failures; a huge answer is not read', async () => {
    const hang = await receiver();
    hang.respond = () => 'handled'; // never answers
    const redirect = await receiver();
    redirect.respond = (_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end();
      return 'handled';
    };
    const refuse = await receiver();
    refuse.respond = () => 410;
    const huge = await receiver();
    huge.respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(1 << 16, 120);
      // Writes until the client goes away: an endless body.
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return 'handled';
    };
    const fine = await receiver();
    const s = await server(
      [
        endpoint(hang, { id: 'hang', timeoutMs: 300 }),
        endpoint(redirect, { id: 'redirect' }),
        endpoint(refuse, { id: 'refuse' }),
        endpoint(huge, { id: 'huge' }),
        endpoint(fine, { id: 'fine' }),
      ].map((e) => ({ ...e, events: ['connection.opened' as const] })),
      { webhooks: { concurrency: 4 } },
    );
    for (let i = 0; i < 3; i++) await TestSocket.connect(s, { sub: `u${i}` });
    // The good endpoint gets all three while the hanging one holds its requests.
    await waitFor(() => fine.received.length >= 3 && huge.received.length >= 3, 10_000, 'the healthy endpoints served').catch((err: Error) => {
      throw new Error(`${err.message}: fine ${fine.received.length}, huge ${huge.received.length}, hang ${hang.received.length}, redirect ${redirect.received.length}, refuse ${refuse.received.length}`);
    });
    await waitFor(async () => (await metric(s, /^herald_webhook_failed_total\{endpoint="hang",reason="timeout"\}/)) >= 3, 10_000, 'hang timeouts');
    await waitFor(async () => (await metric(s, /^herald_webhook_failed_total\{endpoint="redirect",reason="status"\}/)) >= 3, 10_000, '3xx failures');
    await waitFor(async () => (await metric(s, /^herald_webhook_failed_total\{endpoint="refuse",reason="status"\}/)) >= 3, 10_000, '4xx failures');
    expect(await metric(s, /^herald_webhook_sent_total\{endpoint="huge"\}/)).toBe(3);
    // The redirect was not followed.
    expect(redirect.received.every((w) => w.headers['herald-event-type'] === 'connection.opened')).toBe(true);
    // The server still answers promptly (nothing blocked).
    expect((await api(s, 'GET', '/api/v1/stats')).status).toBe(200);
  });

  it('a hanging endpoint holds only its own slots (endpointConcurrency): the others get every event meanwhile', async () => {
    const hang = await receiver();
    hang.respond = () => 'handled';
    const fine = await receiver();
    const s = await server(
      [endpoint(hang, { id: 'hang', timeoutMs: 60_000 }), endpoint(fine, { id: 'fine' })].map((e) => ({ ...e, events: ['connection.opened' as const] })),
      { webhooks: { concurrency: 4, endpointConcurrency: 2 } },
    );
    for (let i = 0; i < 6; i++) await TestSocket.connect(s, { sub: `h${i}` });
    await waitFor(() => fine.received.length >= 6, 10_000, 'all six events at the healthy endpoint');
    // The hanging endpoint was sent two (its slots, held for a minute), no more.
    expect(hang.received).toHaveLength(2);
    expect(await metric(s, /^herald_webhook_in_flight /)).toBe(2);
  });

  it('keeps pending events across a restart and sends them then (SQLite); an attempt cut by shutdown is released, not lost', async () => {
    const r = await receiver();
    r.respond = () => 'handled'; // holds the request: the first node stops while sending
    const dir = dataDir();
    const ep = endpoint(r, { events: ['connection.opened'], timeoutMs: 30_000 });
    const first = await server([ep], {}, dir);
    await TestSocket.connect(first, { sub: 'frank' });
    const cut = await waitForValue(() => r.received[0], 10_000, 'the first attempt');
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    r.respond = () => 200;
    const second = await server([ep], {}, dir);
    const sent = await waitForValue(() => r.received.slice(1).find((w) => w.event.id === cut.event.id), 10_000, 'the event again, from the restarted node');
    expect(sent.headers['herald-attempt']).toBe('2');
    expect(sent.event.data.user).toBe('frank');
    await waitFor(async () => (await metric(second, /^herald_webhook_outbox_depth /)) === 0, 5000, 'an empty outbox');
  });

  it('refuses webhooks on the memory engine at start, saying why', async () => {
    const r = await receiver();
    await expect(startTestServer({ webhooks: { endpoints: [endpoint(r)] } } as DeepPartial<HeraldConfig>)).rejects.toThrow(/webhooks\.endpoints: engine\.type "memory" keeps nothing across a restart/);
  });

  it('refuses duplicate endpoint ids and kids, a backoff cap below its start, bad URLs and short secrets', async () => {
    const r = await receiver();
    await expect(server([endpoint(r), endpoint(r)])).rejects.toThrow(/webhooks\.endpoints\[1\]\.id: "app" is used twice/);
    await expect(server([endpoint(r, { secrets: [SECRET, SECRET] })])).rejects.toThrow(/webhooks\.endpoints\[0\]\.secrets: each kid must be different/);
    await expect(server([endpoint(r)], { webhooks: { retry: { initialMs: 5000, maxMs: 1000 } } })).rejects.toThrow(/webhooks\.retry\.maxMs: must be at least webhooks\.retry\.initialMs/);
    // The schema's own checks name the key too.
    await expect(server([endpoint(r, { url: 'ftp://example.com/' })])).rejects.toThrow(/webhooks\.endpoints/);
    await expect(server([endpoint(r, { secrets: [{ kid: 'k', secret: 'short' }] })])).rejects.toThrow(/webhooks\.endpoints/);
  });

  it('without endpoints the webhooks routes answer 404 webhooks_disabled', async () => {
    const s = await startTestServer();
    servers.push(s);
    const res = await api(s, 'GET', '/api/v1/webhooks/dead-letters');
    expect(res).toMatchObject({ status: 404, body: { error: { code: 'webhooks_disabled' } } });
  });
});
