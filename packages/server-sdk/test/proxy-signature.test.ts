/**
 * Verifying signed hook requests in the SDK without a Herald: `answerProxyRequest` with secrets,
 * and `proxyHandler` behind a raw body parser (express.raw leaves the bytes in `req.body`).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerProxyRequest, proxyAnswer, proxyHandler, verifyProxyRequest } from '@herald/server';
import { PROXY_DOMAIN, signatureHeader } from 'herald/internal/signature.js';

const KEY = { kid: 'k1', secret: 'sdk-proxy-secret-0123456789' };
const body = JSON.stringify({ hook: 'rpc', node: 'n', connectionId: 'c', remoteAddress: 'r', user: 'u', method: 'whoami' });
const handlers = { rpc: (req: { user: string }) => proxyAnswer.rpc({ user: req.user }) };
const signed = (t = Math.floor(Date.now() / 1000), b = body) => ({ 'herald-signature': signatureHeader([KEY], t, b, PROXY_DOMAIN) });

describe('answerProxyRequest with secrets', () => {
  it('answers a signed raw body, 401 for a bad signature, 500 for a parsed body', async () => {
    expect(await answerProxyRequest(handlers, body, { headers: signed(), secrets: [KEY] })).toEqual({ status: 200, body: { result: { data: { user: 'u' } } } });
    expect(await answerProxyRequest(handlers, Buffer.from(body), { headers: new Headers(signed()), secrets: { k1: KEY.secret } })).toMatchObject({ status: 200 });
    expect(await answerProxyRequest(handlers, body, { headers: {}, secrets: [KEY] })).toMatchObject({ status: 401, body: { error: { code: 'invalid_signature' } } });
    expect(await answerProxyRequest(handlers, body, { headers: signed(Math.floor(Date.now() / 1000) - 301), secrets: [KEY] })).toMatchObject({ status: 401 });
    expect(await answerProxyRequest(handlers, JSON.parse(body), { headers: signed(), secrets: [KEY] })).toMatchObject({ status: 500, body: { error: { code: 'raw_body_required' } } });
  });

  it('verifyProxyRequest: a signed body that is not a hook request is malformed_request', () => {
    const other = '{"hello":1}';
    expect(verifyProxyRequest(signed(undefined, other), other, [KEY])).toEqual({ ok: false, reason: 'malformed_request' });
    expect(() => verifyProxyRequest({}, other, {})).toThrow(TypeError);
  });
});

describe('proxyHandler behind a raw body parser', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    const handle = proxyHandler(handlers, { secrets: [KEY] });
    server = createServer((req: IncomingMessage & { body?: unknown }, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        req.body = Buffer.concat(chunks);
        handle(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('verifies the bytes the parser left', async () => {
    expect((await fetch(url, { method: 'POST', body, headers: signed() })).status).toBe(200);
    expect((await fetch(url, { method: 'POST', body })).status).toBe(401);
  });
});
