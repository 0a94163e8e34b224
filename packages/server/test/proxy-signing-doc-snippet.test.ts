/**
 * The hand-written backend in docs/integration.md ("Signed hook requests") runs as written: the
 * block after its marker is saved as a file and started with node; a Herald signing with two
 * secrets (one the backend knows) is answered, and a request that is unsigned, forged, stale, or
 * signed as a webhook gets 401.
 */
import { afterEach, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { PROXY_DOMAIN, signatureHeader } from '../src/signature.js';
import { docBlock, runSnippet } from './helpers/doc-snippet.js';
import { freePort } from './helpers/processes.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const MARKER = '<!-- proxy-verify-snippet: a test runs this block as written -->';
const KID = 'doc-hooks';
const SECRET = 'doc-proxy-secret-0123456789';

let backend: ReturnType<typeof runSnippet> | undefined;
let herald: HeraldServer | undefined;

afterEach(async () => {
  backend?.stop();
  await herald?.close();
});

it('the documented backend answers signed hook requests and refuses the rest', async () => {
  const port = await freePort();
  backend = runSnippet(docBlock('integration.md', MARKER), { PORT: String(port), HERALD_PROXY_KID: KID, HERALD_PROXY_SECRET: SECRET }, ['ignore', 'inherit', 'inherit']);
  const url = `http://127.0.0.1:${port}/hooks`;
  await waitFor(async () => (await fetch(url, { method: 'POST', body: '{}' }).catch(() => undefined))?.status === 401, 10_000, 'the backend to listen (and refuse an unsigned request)');

  herald = await startTestServer({ proxy: { connect: { url, timeoutMs: 2000 }, signing: { secrets: [{ kid: 'other', secret: 'a-secret-it-does-not-know-01' }, { kid: KID, secret: SECRET }] } } });
  const s = await TestSocket.open(herald.wsUrl);
  expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'connected', user: 'guest' });
  s.close();

  const body = JSON.stringify({ hook: 'connect', node: 'n', connectionId: 'c', remoteAddress: '10.0.0.1' });
  const t = Math.floor(Date.now() / 1000);
  const post = (sig: string, b = body) => fetch(url, { method: 'POST', body: b, headers: { 'herald-signature': sig } }).then((r) => r.status);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body, PROXY_DOMAIN))).toBe(200);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body, PROXY_DOMAIN), body.replace('"c"', '"d"'))).toBe(401);
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t - 3600, body, PROXY_DOMAIN))).toBe(401);
  expect(await post(signatureHeader([{ kid: KID, secret: 'wrong-secret-0123456789' }], t, body, PROXY_DOMAIN))).toBe(401);
  // Signed as a webhook with the very same secret: another domain, refused.
  expect(await post(signatureHeader([{ kid: KID, secret: SECRET }], t, body))).toBe(401);
});
