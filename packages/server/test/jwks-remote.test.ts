/**
 * `auth.jwt.jwksUrl` against a real node:http server serving a JWKS whose keys the test rotates:
 * rotation picked up through the refetch an unknown `kid` triggers (over real WebSocket
 * connections), at most one refetch per cooldown for a burst of unknown `kid`s (counted at the key
 * server), the last good set kept while the URL is down, Cache-Control max-age honoured, a start
 * with the URL down (not ready, tokens refused, then ready once it answers), `iss`/`aud` applied to
 * remote keys, and plain http to a non-loopback host refused at configuration time.
 */
import { jwtVerify } from 'jose';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../src/auth.js';
import { ConfigError, resolveConfig, type HeraldConfig } from '../src/config.js';
import { configWarnings } from '../src/cli/advice.js';
import { MAX_JWKS_BYTES, RemoteJwks } from '../src/remote-jwks.js';
import type { HeraldServer } from '../src/server.js';
import { JwksServer, makeKey, sign, type SigningKey } from './helpers/jwks.js';
import { startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

let keyA: SigningKey;
let keyB: SigningKey;
let keyC: SigningKey;
beforeAll(async () => {
  [keyA, keyB, keyC] = await Promise.all([makeKey('A', 'ES256'), makeKey('B', 'RS256'), makeKey('C', 'ES256')]);
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function jwksServer(keys: SigningKey[]): Promise<JwksServer> {
  const s = await new JwksServer().start();
  s.keys = keys.map((k) => k.jwk);
  cleanups.push(() => s.stop());
  return s;
}

async function herald(jwt: Record<string, unknown>): Promise<HeraldServer> {
  const server = await startTestServer({ auth: { jwt: { hmacSecret: '', algorithms: ['ES256', 'RS256'], ...jwt } } });
  cleanups.push(() => server.close());
  return server;
}

function jwtConfig(jwt: Partial<HeraldConfig['auth']['jwt']>): HeraldConfig['auth']['jwt'] {
  return resolveConfig({ auth: { jwt: { algorithms: ['ES256', 'RS256'], ...jwt } } }).auth.jwt;
}

/** `connected`, or the error code of the refusal. */
async function connectWith(server: HeraldServer, token: string): Promise<string> {
  const s = await TestSocket.open(server.wsUrl);
  const reply = await s.request({ type: 'connect', token });
  s.close();
  return reply.type === 'connected' ? 'connected' : (reply.error?.code as string);
}

describe('remote JWKS over WebSocket connections', () => {
  it('verifies kid A, then kid B after the issuer rotates to it (refetch on the unknown kid)', async () => {
    const keys = await jwksServer([keyA]);
    const server = await herald({ jwksUrl: keys.url, jwksCooldownMs: 0 });
    expect(keys.requests).toBe(1); // fetched once at start
    expect(await connectWith(server, await sign(keyA))).toBe('connected');
    expect(keys.requests).toBe(1);

    keys.keys = [keyB.jwk];
    expect(await connectWith(server, await sign(keyB))).toBe('connected');
    expect(keys.requests).toBe(2);
    // A left the set with the rotation: its tokens are refused from now on.
    expect(await connectWith(server, await sign(keyA))).toBe('unauthorized');
  });

  it('keeps serving with the cached key set while the URL is down', async () => {
    const keys = await jwksServer([keyA]);
    keys.cacheControl = 'no-store'; // stale at once: every token would like a refetch
    const server = await herald({ jwksUrl: keys.url, jwksCooldownMs: 0 });
    await keys.stop();
    for (let i = 0; i < 3; i++) expect(await connectWith(server, await sign(keyA))).toBe('connected');
    expect(await connectWith(server, await sign(keyC))).toBe('unauthorized');
    expect(await connectWith(server, await sign(keyA))).toBe('connected');
  });

  it('applies auth.jwt.issuer and auth.jwt.audience to remote keys', async () => {
    const keys = await jwksServer([keyA]);
    const server = await herald({ jwksUrl: keys.url, issuer: 'https://idp.example', audience: 'herald' });
    expect(await connectWith(server, await sign(keyA, { iss: 'https://idp.example', aud: 'herald' }))).toBe('connected');
    expect(await connectWith(server, await sign(keyA, { iss: 'https://other.example', aud: 'herald' }))).toBe('unauthorized');
    expect(await connectWith(server, await sign(keyA, { iss: 'https://idp.example', aud: 'other' }))).toBe('unauthorized');
    expect(await connectWith(server, await sign(keyA))).toBe('unauthorized');
  });

  it('starts with the URL down: not ready and tokens refused until the key set loads', async () => {
    const keys = await jwksServer([keyA]);
    const port = keys.port;
    await keys.stop();
    const server = await herald({ jwksUrl: keys.url, jwksCooldownMs: 0 });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    expect(await connectWith(server, await sign(keyA))).toBe('unauthorized');

    await keys.start(port);
    await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 10_000, '/readyz to turn ready once the key set loads');
    expect(await connectWith(server, await sign(keyA))).toBe('connected');
  });
});

describe('remote JWKS fetching', () => {
  it('a burst of unknown kids triggers at most one refetch per cooldown', async () => {
    const keys = await jwksServer([keyA]);
    let now = 1_000_000;
    const remote = new RemoteJwks(keys.url, { cooldownMs: 30_000, timeoutMs: 2000, now: () => now });
    expect(await remote.start()).toBe(true);
    expect(keys.requests).toBe(1);
    const forged = await Promise.all(Array.from({ length: 20 }, (_, i) => sign(keyC, {}, `made-up-${i}`)));
    const burst = async () => {
      const outcomes = await Promise.allSettled(forged.map((t) => jwtVerify(t, remote.getKey)));
      expect(outcomes.every((o) => o.status === 'rejected' && (o.reason as { code?: string }).code === 'unauthorized')).toBe(true);
    };

    await burst(); // within the cooldown of the start-up fetch
    expect(keys.requests).toBe(1);
    now += 30_000;
    await burst();
    expect(keys.requests).toBe(2);
    // Still cooling down: neither more unknown kids nor a key rotated in meanwhile cause a fetch.
    keys.keys = [keyA.jwk, keyB.jwk];
    now += 29_000;
    await burst();
    await expect(jwtVerify(await sign(keyB), remote.getKey)).rejects.toMatchObject({ code: 'unauthorized' });
    expect(keys.requests).toBe(2);
    expect((await jwtVerify(await sign(keyA), remote.getKey)).payload.sub).toBe('alice');
    now += 1_000;
    expect((await jwtVerify(await sign(keyB), remote.getKey)).payload.sub).toBe('alice');
    expect(keys.requests).toBe(3);
  });

  it('refuses unknown kids through TokenVerifier with the unauthorized error', async () => {
    const keys = await jwksServer([keyA]);
    const verifier = new TokenVerifier(jwtConfig({ jwksUrl: keys.url, jwksCooldownMs: 60_000 }));
    cleanups.push(() => verifier.stop());
    await verifier.start();
    expect(verifier.keysLoaded).toBe(true);
    await expect(verifier.verify(await sign(keyC))).rejects.toMatchObject({ code: 'unauthorized', message: expect.stringContaining('kid "C"') });
    expect((await verifier.verify(await sign(keyA))).user).toBe('alice');
    expect(keys.requests).toBe(1);
  });

  it('honours Cache-Control max-age, defaulting to ten minutes without it', async () => {
    const keys = await jwksServer([keyA]);
    keys.cacheControl = 'public, max-age=60';
    let now = 1_000_000;
    const remote = new RemoteJwks(keys.url, { cooldownMs: 0, timeoutMs: 2000, now: () => now });
    const verify = async () => jwtVerify(await sign(keyA), remote.getKey);
    await verify();
    expect(keys.requests).toBe(1);
    now += 59_000;
    await verify();
    expect(keys.requests).toBe(1);
    now += 2_000;
    keys.cacheControl = undefined;
    await verify();
    expect(keys.requests).toBe(2);
    now += 9 * 60_000;
    await verify();
    expect(keys.requests).toBe(2);
    now += 61_000;
    keys.cacheControl = 'no-cache';
    await verify();
    expect(keys.requests).toBe(3);
    await verify();
    expect(keys.requests).toBe(4);
  });

  it('gives up on a key server that does not answer within auth.jwt.jwksTimeoutMs, keeping the cached set', async () => {
    let hang = false;
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      if (hang) return; // never answers
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ keys: [keyA.jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
    const errors: string[] = [];
    const remote = new RemoteJwks(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, { cooldownMs: 0, timeoutMs: 200, onError: (e) => errors.push(e.message) });
    expect(await remote.start()).toBe(true);
    hang = true;
    const { payload } = await jwtVerify(await sign(keyA), remote.getKey);
    expect(payload.sub).toBe('alice');
    expect(requests).toBe(2);
    expect(errors.join('\n')).toContain('no answer within 200 ms');
  });
  it.each([
    ['larger than the cap', (res: ServerResponse) => res.end(JSON.stringify({ keys: [keyA.jwk], pad: 'x'.repeat(MAX_JWKS_BYTES) })), /larger than/],
    ['not a JWKS', (res: ServerResponse) => res.end('{"hello":"world"}'), /not a JWKS/],
    ['an HTTP error', (res: ServerResponse) => res.writeHead(500).end('oops'), /HTTP 500/],
  ])('refuses an answer that is %s, keeping the cached set', async (_name, answer, message) => {
    let bad = false;
    const server = createServer((_req, res) => {
      if (bad) return answer(res);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ keys: [keyA.jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
    const errors: string[] = [];
    let recovered = 0;
    const remote = new RemoteJwks(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks?secret=s3cr3t`, {
      cooldownMs: 0,
      timeoutMs: 2000,
      onError: (e) => errors.push(e.message),
      onRecovered: () => recovered++,
    });
    expect(await remote.start()).toBe(true);
    bad = true;
    expect(await remote.refresh()).toBe(false);
    expect(errors.join('\n')).toMatch(message);
    expect(errors.join('\n')).not.toContain('s3cr3t');
    expect((await jwtVerify(await sign(keyA), remote.getKey)).payload.sub).toBe('alice');
    bad = false;
    expect(recovered).toBe(0);
    expect(await remote.refresh()).toBe(true);
    expect(recovered).toBe(1);
  });
});

describe('auth.jwt.jwksUrl configuration', () => {
  it('counts as a JWT key for herald config check', () => {
    const warn = (jwt: Record<string, unknown>) => configWarnings(resolveConfig({ auth: { jwt } })).join('\n');
    expect(warn({})).toContain('no JWT key');
    expect(warn({ jwksUrl: 'https://idp.example.com/jwks' })).not.toContain('no JWT key');
  });


  it.each([
    ['http://idp.example.com/jwks.json', /must use https/],
    ['http://10.0.0.5/jwks.json', /must use https/],
    ['ftp://127.0.0.1/jwks.json', /must use https/],
    ['not a url', /is not a URL/],
  ])('refuses %s', (jwksUrl, message) => {
    expect(() => resolveConfig({ auth: { jwt: { jwksUrl } } })).toThrow(ConfigError);
    expect(() => resolveConfig({ auth: { jwt: { jwksUrl } } })).toThrow(message);
  });

  it.each(['https://idp.example.com/.well-known/jwks.json', 'http://127.0.0.1:8080/jwks', 'http://localhost/jwks', 'http://[::1]:9000/jwks'])('accepts %s', (jwksUrl) => {
    expect(resolveConfig({ auth: { jwt: { jwksUrl } } }).auth.jwt.jwksUrl).toBe(jwksUrl);
  });

  it('refuses jwksUrl together with jwksFile', () => {
    expect(() => resolveConfig({ auth: { jwt: { jwksUrl: 'https://idp.example.com/jwks', jwksFile: '/etc/jwks.json' } } })).toThrow(/either jwksUrl or jwksFile/);
  });
});
