/**
 * `auth.jwt.keySets`: several key sets, each with its own keys, issuer, audience and algorithms —
 * here the backend's HMAC secret (issuer "backend") beside an identity provider's JWKS served by a
 * real node:http server (issuer "https://idp.example", audience "herald"). Tokens are tried by
 * the sets that could have signed them; a token naming one issuer is never accepted by another
 * set's keys. Also the configuration checks and the key set URL metrics.
 */
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../src/auth.js';
import { ConfigError, resolveConfig, type HeraldConfig } from '../src/config.js';
import { WELL_KNOWN_SECRETS } from '../src/exposure.js';
import type { HeraldServer } from '../src/server.js';
import { JwksServer, makeKey, sign, type SigningKey } from './helpers/jwks.js';
import { SECRET, startTestServer, TestSocket } from './helpers/server.js';

const IDP = 'https://idp.example';
let idpKey: SigningKey;
let strayKey: SigningKey;
beforeAll(async () => {
  [idpKey, strayKey] = await Promise.all([makeKey('idp-1', 'ES256'), makeKey('stray', 'ES256')]);
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function idpServer(): Promise<JwksServer> {
  const s = await new JwksServer().start();
  s.keys = [idpKey.jwk];
  cleanups.push(() => s.stop());
  return s;
}

function hmacToken(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return new SignJWT({ channels: ['*'], ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
}

function twoSets(jwksUrl: string): Partial<HeraldConfig['auth']['jwt']> {
  return {
    hmacSecret: SECRET,
    issuer: 'backend',
    algorithms: ['HS256'],
    keySets: [{ name: 'idp', jwksUrl, issuer: IDP, audience: 'herald', algorithms: ['ES256'] }],
  };
}

async function connectWith(server: HeraldServer, token: string): Promise<string> {
  const s = await TestSocket.open(server.wsUrl);
  const reply = await s.request({ type: 'connect', token });
  s.close();
  return reply.type === 'connected' ? `connected as ${reply.user as string}` : (reply.error?.code as string);
}

describe('several key sets over WebSocket connections', () => {
  it('accepts each issuer only with its own keys, audience and algorithms', async () => {
    const idp = await idpServer();
    const server = await startTestServer({ auth: { jwt: twoSets(idp.url) } });
    cleanups.push(() => server.close());

    expect(await connectWith(server, await sign(idpKey, { iss: IDP, aud: 'herald' }))).toBe('connected as alice');
    expect(await connectWith(server, await hmacToken({ iss: 'backend' }))).toBe('connected as bob');

    // The identity provider's audience applies to its tokens only.
    expect(await connectWith(server, await sign(idpKey, { iss: IDP, aud: 'elsewhere' }))).toBe('unauthorized');
    expect(await connectWith(server, await sign(idpKey, { iss: IDP }))).toBe('unauthorized');
    // An HMAC token claiming the identity provider's issuer: that set takes no HMAC tokens, and
    // the backend's set wants its own issuer.
    expect(await connectWith(server, await hmacToken({ iss: IDP, aud: 'herald' }))).toBe('unauthorized');
    // An asymmetric token claiming the backend's issuer: the backend's set has no public keys.
    expect(await connectWith(server, await sign(idpKey, { iss: 'backend', aud: 'herald' }))).toBe('unauthorized');
    // A key the identity provider never published, and a token with no issuer at all.
    expect(await connectWith(server, await sign(strayKey, { iss: IDP, aud: 'herald' }))).toBe('unauthorized');
    expect(await connectWith(server, await hmacToken({}))).toBe('unauthorized');
    // A forged HMAC signature under the right issuer.
    expect(await connectWith(server, await hmacToken({ iss: 'backend' }, 'another-secret-0123456789abcdef-0123'))).toBe('unauthorized');
  });

  it('reports an expired token of any set as token_expired', async () => {
    const idp = await idpServer();
    const server = await startTestServer({ auth: { jwt: twoSets(idp.url) } });
    cleanups.push(() => server.close());
    const past = Math.floor(Date.now() / 1000) - 3600;
    const expired = (claims: Record<string, unknown>) => new SignJWT({ channels: ['*'], ...claims }).setSubject('carol').setIssuedAt(past - 60).setExpirationTime(past);
    const idpToken = await expired({ iss: IDP, aud: 'herald' }).setProtectedHeader({ alg: 'ES256', kid: idpKey.kid }).sign(idpKey.privateKey);
    const backendToken = await expired({ iss: 'backend' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    expect(await connectWith(server, idpToken)).toBe('token_expired');
    expect(await connectWith(server, backendToken)).toBe('token_expired');
  });

  it('a set without an issuer takes tokens the issuer-bound sets do not', async () => {
    const idp = await idpServer();
    const verifier = new TokenVerifier(
      resolveConfig({ auth: { jwt: { hmacSecret: SECRET, algorithms: ['HS256'], keySets: [{ name: 'idp', jwksUrl: idp.url, issuer: IDP, algorithms: ['ES256'] }] } } }).auth.jwt,
    );
    cleanups.push(() => verifier.stop());
    await verifier.start();
    expect((await verifier.verify(await hmacToken({ iss: 'anyone' }))).user).toBe('bob');
    expect((await verifier.verify(await hmacToken({}))).user).toBe('bob');
    expect((await verifier.verify(await sign(idpKey, { iss: IDP }))).user).toBe('alice');
    await expect(verifier.verify(await sign(idpKey, { iss: 'anyone' }))).rejects.toMatchObject({ code: 'unauthorized', message: expect.stringContaining('no key set accepts algorithm ES256') });
  });
});

describe('key set URL metrics', () => {
  it('counts fetches by key set and result, and the keys in use', async () => {
    const idp = await idpServer();
    const server = await startTestServer({ auth: { jwt: { ...twoSets(idp.url), jwksCooldownMs: 0 } } });
    cleanups.push(() => server.close());
    const metric = async (name: string) => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return text.split('\n').find((l) => l.startsWith(name))?.split(' ').pop();
    };
    expect(await metric('herald_jwks_fetches_total{key_set="idp",result="ok"}')).toBe('1');
    expect(await metric('herald_jwks_keys{key_set="idp"}')).toBe('1');
    const last = Number(await metric('herald_jwks_last_success_timestamp_seconds{key_set="idp"}'));
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(120);

    // An unknown kid makes the set refetch; with the URL down that fetch fails and is counted.
    await idp.stop();
    expect(await connectWith(server, await sign(strayKey, { iss: IDP, aud: 'herald' }))).toBe('unauthorized');
    expect(await metric('herald_jwks_fetches_total{key_set="idp",result="error"}')).toBe('1');
    expect(await metric('herald_jwks_keys{key_set="idp"}')).toBe('1'); // the cached set stays in use
    expect(await connectWith(server, await sign(idpKey, { iss: IDP, aud: 'herald' }))).toBe('connected as alice');
  });
});

describe('key set configuration', () => {
  const resolve = (keySets: unknown[], extra: Record<string, unknown> = {}) => () => resolveConfig({ auth: { jwt: { keySets, ...extra } } } as never);

  it.each([
    ['two sets with one name', [{ name: 'a', hmacSecret: SECRET }, { name: 'a', jwksUrl: 'https://idp.example/jwks' }], /auth\.jwt\.keySets\.1\.name: "a" is already the name/],
    ['a set without a key', [{ name: 'a', issuer: 'x' }], /auth\.jwt\.keySets\.0: key set "a" has no key/],
    ['a short secret', [{ name: 'a', hmacSecret: 'short' }], /auth\.jwt\.keySets\.0\.hmacSecret: must be at least 32 characters/],
    ['plain http off loopback', [{ name: 'a', jwksUrl: 'http://idp.example/jwks' }], /auth\.jwt\.keySets\.0\.jwksUrl: "http:\/\/idp\.example\/jwks" must use https/],
    ['jwksUrl and jwksFile', [{ name: 'a', jwksUrl: 'https://idp.example/jwks', jwksFile: '/tmp/x.json' }], /set either jwksUrl or jwksFile/],
    ['the reserved name', [{ name: 'default', hmacSecret: SECRET }], /auth\.jwt\.keySets/],
    ['an unknown field', [{ name: 'a', hmacSecret: SECRET, secret: 'x' }], /auth\.jwt\.keySets/],
  ])('refuses %s', (_what, keySets, message) => {
    expect(resolve(keySets)).toThrow(ConfigError);
    expect(resolve(keySets)).toThrow(message);
  });

  it('refuses a published example secret in a key set when listening beyond loopback', () => {
    const published = 'dev-secret-change-me-0123456789abcdef';
    expect(WELL_KNOWN_SECRETS.has(published)).toBe(true);
    const config = { server: { host: '0.0.0.0' }, api: { keys: ['an-api-key-of-our-own-0123456789'] }, auth: { jwt: { keySets: [{ name: 'a', hmacSecret: published }] } } };
    expect(() => resolveConfig(config as never)).toThrow(/auth\.jwt\.keySets\.0\.hmacSecret holds an example secret/);
    expect(() => resolveConfig({ ...config, server: { host: '127.0.0.1' } } as never)).not.toThrow();
  });
});
