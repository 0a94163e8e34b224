/**
 * Signed hook requests (`proxy.signing.secrets`): a real Herald calls real backends, which check
 * `Herald-Signature` with the SDK over the exact bytes received. A backend built with
 * `proxyHandler({ secrets })` answers Herald and refuses anyone else (401) — the attack the
 * signature is for: a forged rpc/publish request naming another user, posted straight to the hook.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { proxyAnswer, proxyHandler, verifyProxyRequest } from '@herald/server';
import type { HeraldServer } from '../src/server.js';
import { ConfigError, resolveConfig } from '../src/config.js';
import { maskSecrets } from '../src/cli/mask.js';
import { ProxyCaller } from '../src/proxy/caller.js';
import { PROXY_DOMAIN, signatureHeader } from '../src/signature.js';
import { startTestServer, TestSocket } from './helpers/server.js';

const NEW = { kid: 'hooks-new', secret: 'proxy-secret-new-0123456789' };
const OLD = { kid: 'hooks-old', secret: 'proxy-secret-old-0123456789' };

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

/** A backend that keeps every request's raw bytes and headers, and lets anyone connect as alice. */
function recordingBackend(received: Received[]): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      received.push({ path, headers: req.headers, raw: Buffer.concat(chunks) });
      const answer = path === '/connect' ? proxyAnswer.connect({ user: 'alice' }) : proxyAnswer.rpc({ ok: true });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
}

describe('Herald signs every hook request', () => {
  const received: Received[] = [];
  let backend: Server;
  let herald: HeraldServer | undefined;

  beforeAll(async () => {
    backend = recordingBackend(received);
    const url = await listen(backend);
    herald = await startTestServer({
      proxy: { connect: { url: `${url}/connect`, timeoutMs: 2000 }, rpc: { url: `${url}/rpc`, timeoutMs: 2000 }, signing: { secrets: [NEW, OLD] } },
    });
  });

  afterAll(async () => {
    await herald?.close();
    await stop(backend);
  });

  it('connect and rpc carry a signature over the bytes sent, one pair per secret (rotation)', async () => {
    const s = await TestSocket.open(herald!.wsUrl);
    expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'connected', user: 'alice' });
    s.send({ type: 'request', correlationId: 'r1', method: 'ping', data: { n: 1 } });
    expect((await s.next((f) => f.correlationId === 'r1')).data).toEqual({ ok: true });
    s.close();

    expect(received.map((r) => r.path)).toEqual(['/connect', '/rpc']);
    for (const r of received) {
      const header = String(r.headers['herald-signature']);
      expect(header).toMatch(/^t=\d+,kid=hooks-new,v1=[0-9a-f]{64},kid=hooks-old,v1=[0-9a-f]{64}$/);
      // A backend that knows only one of the two keys (before or after the rotation) accepts it.
      for (const secrets of [[NEW], [OLD], { [OLD.kid]: OLD.secret }]) {
        const v = verifyProxyRequest(r.headers, r.raw, secrets);
        expect(v, `${r.path} with ${JSON.stringify(secrets)}`).toMatchObject({ ok: true, request: { hook: r.path.slice(1) } });
      }
      expect(verifyProxyRequest(r.headers, r.raw, [{ kid: NEW.kid, secret: 'some-other-secret-0123456789' }])).toEqual({ ok: false, reason: 'signature_mismatch' });
      expect(verifyProxyRequest(r.headers, Buffer.concat([r.raw, Buffer.from(' ')]), [NEW])).toEqual({ ok: false, reason: 'signature_mismatch' });
      // Verified against the receiver's own clock: replayed an hour later, it is refused.
      expect(verifyProxyRequest(r.headers, r.raw, [NEW], { now: Date.now() + 3600_000 })).toEqual({ ok: false, reason: 'timestamp_out_of_tolerance' });
    }
    const rpc = verifyProxyRequest(received[1]!.headers, received[1]!.raw, [NEW]);
    expect(rpc.ok && rpc.request).toMatchObject({ hook: 'rpc', user: 'alice', method: 'ping', data: { n: 1 } });
  });
});

describe('a retried attempt', () => {
  it('is signed afresh, with its own timestamp', async () => {
    const sent: Array<{ headers: Record<string, string>; body: string }> = [];
    let clock = 1_800_000_000_000;
    const now = vi.spyOn(Date, 'now').mockImplementation(() => (clock += 7000));
    // The first attempt never reaches the backend (connection refused): connect is tried again.
    const fetchMock = vi.spyOn(globalThis, 'fetch').mockImplementation(async (_url, init) => {
      sent.push({ headers: init!.headers as Record<string, string>, body: String(init!.body) });
      if (sent.length === 1) throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
      return new Response(JSON.stringify({ result: { user: 'alice' } }), { status: 200 });
    });
    try {
      const caller = new ProxyCaller({ maxInFlight: 4, maxInFlightPerConnection: 4, maxResponseBytes: 4096, maxJsonDepth: 32 }, undefined, [NEW]);
      const answer = await caller.call('connect', { url: 'http://backend.invalid/connect', timeoutMs: 1000 }, { hook: 'connect', node: 'n', connectionId: 'c', remoteAddress: 'r' });
      expect(answer).toEqual({ kind: 'result', result: { user: 'alice' } });
    } finally {
      fetchMock.mockRestore();
      now.mockRestore();
    }
    expect(sent).toHaveLength(2);
    const [first, second] = sent.map((r) => r.headers['herald-signature']!);
    expect(first!.split(',')[0]).not.toBe(second!.split(',')[0]);
    for (const [i, r] of sent.entries()) {
      const t = Number(/^t=(\d+)/.exec(r.headers['herald-signature']!)![1]);
      expect(verifyProxyRequest(r.headers, r.body, [NEW], { now: t * 1000 }), `attempt ${i + 1}`).toMatchObject({ ok: true });
    }
  });
});

describe('a backend built with proxyHandler({ secrets })', () => {
  const calls: string[] = [];
  let backend: Server;
  let url: string;
  let herald: HeraldServer | undefined;
  let wrongKey: HeraldServer | undefined;

  beforeAll(async () => {
    backend = createServer(
      proxyHandler(
        {
          connect: () => proxyAnswer.connect({ user: 'alice' }),
          rpc: (req) => {
            calls.push(`${req.user} ${req.method}`);
            return proxyAnswer.rpc({ user: req.user });
          },
        },
        { secrets: [OLD] },
      ),
    );
    url = await listen(backend);
    const hooks = { connect: { url, timeoutMs: 2000 }, rpc: { url, timeoutMs: 2000 } };
    herald = await startTestServer({ proxy: { ...hooks, signing: { secrets: [NEW, OLD] } } });
    wrongKey = await startTestServer({ proxy: { ...hooks, signing: { secrets: [{ kid: OLD.kid, secret: 'not-the-backend-secret-0123' }] } } });
  });

  afterAll(async () => {
    await herald?.close();
    await wrongKey?.close();
    await stop(backend);
  });

  it("answers Herald's signed requests", async () => {
    const s = await TestSocket.open(herald!.wsUrl);
    expect(await s.request({ type: 'connect' })).toMatchObject({ type: 'connected', user: 'alice' });
    s.send({ type: 'request', correlationId: 'w', method: 'whoami' });
    expect((await s.next((f) => f.correlationId === 'w')).data).toEqual({ user: 'alice' });
    s.close();
    expect(calls).toEqual(['alice whoami']);
  });

  it('refuses a forged request posted straight to the hook URL (401), without calling the handler', async () => {
    const forged = JSON.stringify({ hook: 'rpc', node: 'n1', connectionId: 'c1', remoteAddress: '10.0.0.1', user: 'admin', method: 'transfer', data: { amount: 1e6 } });
    const post = async (headers: Record<string, string>, body = forged) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };
    const t = Math.floor(Date.now() / 1000);
    const unsigned = await post({});
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error).toMatchObject({ code: 'invalid_signature', message: expect.stringContaining('missing_signature') });
    expect((await post({ 'herald-signature': `t=${t},kid=${OLD.kid},v1=${'0'.repeat(64)}` })).status).toBe(401);
    expect((await post({ 'herald-signature': signatureHeader([{ kid: OLD.kid, secret: 'guessed-secret-0123456789' }], t, forged, PROXY_DOMAIN) })).status).toBe(401);
    // A captured webhook signed with the same secret does not pass for a hook request: different domain.
    expect((await post({ 'herald-signature': signatureHeader([OLD], t, forged) })).status).toBe(401);
    // A genuine signature on other bytes does not cover these.
    const genuine = signatureHeader([OLD], t, forged, PROXY_DOMAIN);
    expect((await post({ 'herald-signature': genuine }, forged.replace('admin', 'root'))).status).toBe(401);
    expect((await post({ 'herald-signature': signatureHeader([OLD], t - 3600, forged, PROXY_DOMAIN) })).status).toBe(401);
    expect(calls.filter((c) => c.startsWith('admin') || c.startsWith('root'))).toEqual([]);
    // The same bytes signed with the backend's key are answered: the 401s were the signature's doing.
    expect(await post({ 'herald-signature': genuine })).toMatchObject({ status: 200, body: { result: { data: { user: 'admin' } } } });
  });

  it('a Herald signing with another secret gets backend_error: the backend refused', async () => {
    const s = await TestSocket.open(wrongKey!.wsUrl);
    expect((await s.request({ type: 'connect' })).error).toMatchObject({ code: 'backend_error' });
    s.close();
  });

  it('fails closed when only a parsed body is available', async () => {
    const failures: unknown[] = [];
    const handle = proxyHandler({ rpc: () => proxyAnswer.rpc() }, { secrets: [OLD], onError: (err) => void failures.push(err) });
    const parsed = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      // What express.json() leaves: the stream consumed, only the parsed body.
      req.on('end', () => handle(Object.assign(req, { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }), res));
    });
    const parsedUrl = await listen(parsed);
    try {
      const body = JSON.stringify({ hook: 'rpc', node: 'n', connectionId: 'c', remoteAddress: 'r', user: 'u', method: 'm' });
      const res = await fetch(parsedUrl, { method: 'POST', body, headers: { 'herald-signature': signatureHeader([OLD], Math.floor(Date.now() / 1000), body, PROXY_DOMAIN) } });
      expect(res.status).toBe(500);
      expect(await res.json()).toMatchObject({ error: { code: 'raw_body_required' } });
      expect(String(failures[0])).toContain('raw request body is needed');
    } finally {
      await stop(parsed);
    }
    expect(() => proxyHandler({}, { secrets: [] })).toThrow(TypeError);
  });
});

describe('proxy.signing.secrets in the configuration', () => {
  it('is empty by default (requests unsigned), refuses a kid used twice, and is masked when printed', () => {
    expect(resolveConfig().proxy.signing.secrets).toEqual([]);
    expect(() => resolveConfig({ proxy: { signing: { secrets: [NEW, { ...OLD, kid: NEW.kid }] } } })).toThrow(ConfigError);
    expect(() => resolveConfig({ proxy: { signing: { secrets: [NEW, { ...OLD, kid: NEW.kid }] } } })).toThrow(/proxy\.signing\.secrets: each kid must be different/);
    expect(() => resolveConfig({ proxy: { signing: { secrets: [{ kid: 'k', secret: 'short' }] } } })).toThrow(ConfigError);
    const masked = maskSecrets(resolveConfig({ proxy: { signing: { secrets: [NEW] } } })) as { proxy: { signing: { secrets: unknown[] } } };
    expect(masked.proxy.signing.secrets).toEqual([{ kid: NEW.kid, secret: `<masked: ${NEW.secret.length} characters>` }]);
  });
});
