/**
 * The receiver in docs/integration.md ("Webhooks") runs as written: the block after its marker is
 * saved as a file and started with node; Herald (SQLite) sends it signed events, which it accepts
 * and logs once; a tampered or unsigned request gets 401.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { DeepPartial, HeraldConfig } from '../src/config.js';
import type { HeraldServer } from '../src/server.js';
import { signatureHeader } from '../src/webhooks/signature.js';
import { docBlock, runSnippet } from './helpers/doc-snippet.js';
import { freePort } from './helpers/processes.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const MARKER = '<!-- webhook-receiver-snippet: a test runs this block as written -->';
const KID = 'doc-kid';
const SECRET = 'doc-snippet-secret-0123456789';

let receiver: ReturnType<typeof runSnippet> | undefined;
let herald: HeraldServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'herald-doc-snippet-'));

afterEach(async () => {
  receiver?.stop();
  await herald?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('the documented receiver verifies Herald webhooks, de-duplicates them and refuses forgeries', async () => {
  const port = await freePort();
  receiver = runSnippet(docBlock('integration.md', MARKER), { PORT: String(port), HERALD_WEBHOOK_KID: KID, HERALD_WEBHOOK_SECRET: SECRET }, ['ignore', 'pipe', 'pipe']);
  const child = receiver.child;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += String(d)));
  child.stderr!.on('data', (d: Buffer) => (out += String(d)));
  const url = `http://127.0.0.1:${port}/herald`;
  await waitFor(async () => (await fetch(url, { method: 'POST', body: '{}' }).catch(() => undefined))?.status === 401, 10_000, 'the receiver to listen (and refuse an unsigned request)');

  herald = await startTestServer({
    engine: { type: 'sqlite', sqlite: { dataDir: join(dir, 'data') } },
    webhooks: { endpoints: [{ id: 'doc', url, events: ['connection.opened'], secrets: [{ kid: 'old', secret: 'an-older-secret-0123456789' }, { kid: KID, secret: SECRET }] }], pollIntervalMs: 20 },
  } as DeepPartial<HeraldConfig>);
  const sock = await TestSocket.connect(herald, { sub: 'doc-user' });
  await waitFor(() => out.includes('"connection.opened"'), 10_000, 'the receiver to log the event');
  const logged = out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { user: string; connectionId: string } });
  expect(logged).toEqual([{ type: 'connection.opened', data: expect.objectContaining({ user: 'doc-user', connectionId: sock.info.connectionId }) }]);

  const body = '{"id":"x","type":"connection.opened","createdAt":1,"node":"n","data":{}}';
  const t = Math.floor(Date.now() / 1000);
  const post = (sig: string, b = body, id = 'x') => fetch(url, { method: 'POST', body: b, headers: { 'herald-signature': sig, 'herald-event-id': id } }).then((r) => r.status);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body))).toBe(204);
  // The same event id again: accepted, not logged twice.
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body))).toBe(204);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body), body.replace('"x"', '"y"'))).toBe(401);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t - 3600, body))).toBe(401);
  expect(await post(signatureHeader([{ kid: 'unknown', secret: SECRET }], t, body))).toBe(401);
  expect(await post(signatureHeader([{ kid: KID, secret: 'wrong-secret-0123456789' }], t, body))).toBe(401);
  expect(out.trim().split('\n')).toHaveLength(2);
});
