/**
 * Channel presence feeds the webhooks: a member's join and leave in a namespace with presence on
 * become one `presence.join` and one `presence.leave` event each (SQLite engine, a real receiver),
 * valid against the event schema, in that order for the connection.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeepPartial, HeraldConfig } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { makeToken, startTestServer, TestSocket } from './helpers/server.js';
import { serverFile } from './helpers/paths.js';
import { waitFor } from './helpers/wait.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const validateEvent = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(serverFile('api/webhook-event.schema.json'), 'utf8')));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('presence webhooks', () => {
  it('one presence.join and one presence.leave per member, after each other', async () => {
    const receiver = await WebhookReceiver.start();
    cleanups.push(() => receiver.close());
    const dir = mkdtempSync(join(tmpdir(), 'herald-webhooks-presence-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server: HeraldServer = await startTestServer({
      engine: { type: 'sqlite', sqlite: { dataDir: dir, synchronous: 'normal' } },
      channels: { namespaces: { room: { presence: true } } },
      webhooks: { pollIntervalMs: 20, endpoints: [{ id: 'app', url: receiver.url, events: ['presence.join', 'presence.leave'], secrets: [{ kid: 'k1', secret: 'webhook-secret-0123456789' }] }] },
    } as DeepPartial<HeraldConfig>);
    cleanups.push(() => server.close());

    const socket = await TestSocket.open(server.wsUrl);
    cleanups.push(() => socket.close());
    expect((await socket.request({ type: 'connect', token: await makeToken({ sub: 'ann' }) })).type).toBe('connected');
    expect((await socket.request({ type: 'subscribe', channel: 'room:1' })).type).toBe('subscribed');
    // Outside the presence namespace: no event.
    expect((await socket.request({ type: 'subscribe', channel: 'other:1' })).type).toBe('subscribed');
    expect((await socket.request({ type: 'unsubscribe', channel: 'room:1' })).type).toBe('unsubscribed');

    await waitFor(() => receiver.ofType('presence.leave').length >= 1, 10_000, 'the presence.leave webhook');
    const events = receiver.received.map((r) => r.event);
    const unique = [...new Map(events.map((e) => [e.id, e])).values()];
    expect(unique.map((e) => [e.type, e.data.channel, e.data.user])).toEqual([
      ['presence.join', 'room:1', 'ann'],
      ['presence.leave', 'room:1', 'ann'],
    ]);
    expect(unique[0]!.data.connectionId).toBe(unique[1]!.data.connectionId);
    for (const e of unique) expect(validateEvent(e), JSON.stringify(validateEvent.errors)).toBe(true);
  });
});
