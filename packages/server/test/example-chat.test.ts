/**
 * examples/chat-backend run as documented: the example's own herald.json (addresses and secrets
 * swapped for the test's), a real Herald on SQLite, the backend answering the proxy hooks and
 * receiving the webhooks, and @herald/client connections logged in by the backend's cookie.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient, type Envelope } from '@herald/client';
// @ts-expect-error -- the example is plain JavaScript, run by Node as written
import { startChatBackend } from '../../../examples/chat-backend/backend.mjs';
import { configWarnings } from '../src/cli/advice.js';
import { resolveConfig } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { startTestServer } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = new URL('../../../examples/chat-backend/', import.meta.url);
const WEBHOOK_SECRET = 'example-test-webhook-secret-0123456789';
const HOOK_SECRET = 'example-test-hook-secret-0123456789';
const PUBLISH_KEY = 'example-test-publish-key-0123456789';
const SESSION_TTL_SEC = 3;

interface Backend {
  url: string;
  hooksUrl: string;
  eventsUrl: string;
  useHerald(url: string, apiKey: string): void;
  onlineUsers(): string[];
  refreshesOf(user: string): number;
  close(): Promise<void>;
}

let backend: Backend;
let herald: HeraldServer;
let dataDir: string;
const clients: HeraldClient[] = [];

/** The example's herald.json with the backend's real address, a temporary data dir and test secrets. */
function exampleConfig(): Record<string, unknown> {
  const text = readFileSync(new URL('herald.json', EXAMPLE), 'utf8')
    .replaceAll('http://127.0.0.1:3000', backend.url)
    .replace('replace-with-a-long-random-secret', WEBHOOK_SECRET)
    .replace('replace-with-another-long-random-secret', HOOK_SECRET)
    .replace('replace-with-a-long-random-key', PUBLISH_KEY);
  const config = JSON.parse(text) as Record<string, any>;
  delete config.$schema;
  config.server = { host: '127.0.0.1', port: 0 };
  config.origins = { allowed: [] };
  config.engine.sqlite.dataDir = dataDir;
  config.webhooks.pollIntervalMs = 50;
  // Connections last SESSION_TTL_SEC; the refresh hook is asked this long before that.
  config.proxy.refresh.aheadMs = (SESSION_TTL_SEC - 1) * 1000;
  return config;
}

async function login(name: string): Promise<string> {
  const res = await fetch(`${backend.url}/login`, { method: 'POST', body: JSON.stringify({ name }) });
  expect(res.status).toBe(204);
  return /sid=[^;]+/.exec(res.headers.get('set-cookie') ?? '')![0];
}

/** A client whose WebSocket upgrade carries the backend's session cookie, as a browser's would. */
function clientWith(cookie: string | undefined, options: { reconnect?: false } = {}): HeraldClient {
  class CookieWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, cookie ? { headers: { cookie } } : {});
    }
  }
  const client = new HeraldClient({ url: herald.wsUrl, WebSocket: CookieWebSocket as never, ...(options.reconnect === false ? { reconnect: false } : {}) });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'herald-example-chat-'));
  backend = (await startChatBackend({ port: 0, webhookSecrets: { 'chat-1': WEBHOOK_SECRET }, hookSecrets: { 'hooks-1': HOOK_SECRET }, staff: ['carol'], sessionTtlSec: SESSION_TTL_SEC })) as Backend;
  herald = await startTestServer(exampleConfig());
  backend.useHerald(herald.url, PUBLISH_KEY);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await herald?.close();
  await backend?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the chat backend example', () => {
  it('logs users in through the connect hook, announces them through a webhook, filters their lines through the publish hook', async () => {
    const bob = clientWith(await login('bob'));
    await bob.connect();
    const lobby = bob.subscribe<{ text: string; from: string }>('chat:lobby');
    await lobby.ready();
    const seen: Envelope<{ text: string; from: string }>[] = [];
    lobby.events.on('message', (m) => void seen.push(m));
    const ended: unknown[] = [];
    bob.on('unsubscribed', (info) => void ended.push(info));

    const alice = clientWith(await login('alice'));
    await alice.connect();
    // connection.opened → the backend's webhook receiver → a notice published with the SDK.
    await waitFor(() => seen.some((m) => m.eventType === 'notice' && m.payload.text === 'alice joined'), 10_000, 'the "alice joined" notice').catch((err: Error) => {
      throw new Error(`${err.message}; bob saw ${JSON.stringify(seen.map((m) => m.payload))}; online: ${backend.onlineUsers().join()}`);
    });

    await alice.subscribe('chat:lobby').ready();
    await alice.publish('chat:lobby', 'line', { text: '  cheap spam here ' });
    await waitFor(() => seen.some((m) => m.eventType === 'line'), 5000, 'alice\'s line at bob');
    const line = seen.find((m) => m.eventType === 'line')!;
    expect(line.payload).toMatchObject({ text: 'cheap **** here', from: 'alice' });

    await expect(alice.publish('chat:lobby', 'line', { text: '   ' })).rejects.toMatchObject({ code: 'empty_message' });
    // The refresh hook restates bob's rights each time it extends them: after one, bob is still
    // in the lobby.
    await waitFor(() => backend.refreshesOf('bob') >= 1, 10_000, 'a refresh of bob');
    await alice.publish('chat:lobby', 'line', { text: 'after the refresh' });
    await waitFor(() => seen.some((m) => m.payload.text === 'after the refresh'), 5000, 'a line after bob\'s refresh');
    expect(ended).toEqual([]);
  });

  it('answers RPCs from the backend, with online users kept from webhooks', async () => {
    const dave = clientWith(await login('dave'));
    await dave.connect();
    expect(await dave.request('rooms.list')).toEqual(['lobby', 'random']);
    await waitFor(async () => ((await dave.request<string[]>('users.online')) ?? []).includes('dave'), 10_000, 'dave online through connection.opened');
    await expect(dave.request('nope')).rejects.toMatchObject({ code: 'unknown_method' });
  });

  it('lets only staff into the staff room', async () => {
    const carol = clientWith(await login('carol'));
    await carol.connect();
    await carol.subscribe('chat:staff').ready();

    const erin = clientWith(await login('erin'));
    await erin.connect();
    await expect(erin.subscribe('chat:staff').ready()).rejects.toMatchObject({ code: 'not_member' });
    await expect(erin.subscribe('chat:nowhere').ready()).rejects.toMatchObject({ code: 'no_such_room' });
  });

  it('keeps a logged-in connection past its expiry through the refresh hook, and ends it after logout', async () => {
    const cookie = await login('frank');
    const frank = clientWith(cookie, { reconnect: false });
    const closed = new Promise<{ code: number }>((resolve) => frank.on('disconnected', resolve));
    await frank.connect();
    const connectedAt = Date.now();
    // Past the first expiry (a second of clock rounding included), still connected, extended by the hook.
    await waitFor(() => Date.now() - connectedAt > (SESSION_TTL_SEC + 1) * 1000 && backend.refreshesOf('frank') >= 2, 15_000, 'frank past his first expiry');
    expect(frank.state.status).toBe('connected');

    await fetch(`${backend.url}/logout`, { method: 'POST', headers: { cookie } });
    expect((await closed).code).toBe(4006);
  });

  it('refuses a connection without a login', async () => {
    const stranger = clientWith(undefined, { reconnect: false });
    await expect(stranger.connect()).rejects.toMatchObject({ code: 'login_required' });
  });

  it('its config passes `herald config check` without a warning that no client can connect', () => {
    const warnings = configWarnings(resolveConfig(exampleConfig() as never));
    expect(warnings.filter((w) => /no client can connect|no JWT key/.test(w))).toEqual([]);
  });

  it('the backend refuses hook requests that Herald did not sign: a forged rpc as carol gets 401', async () => {
    const forged = { hook: 'rpc', node: 'n', connectionId: 'c', remoteAddress: '10.0.0.9', user: 'carol', method: 'users.online' };
    const res = await fetch(backend.hooksUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(forged) });
    expect(res.status).toBe(401);
  });

  it('the backend refuses webhooks that Herald did not sign', async () => {
    const res = await fetch(backend.eventsUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'herald-signature': 't=1,kid=chat-1,v1=00' }, body: '{}' });
    expect(res.status).toBe(401);
  });
});
