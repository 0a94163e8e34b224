/**
 * Token rules over real connections, on both verification paths — HS256 through the synchronous
 * node:crypto verifier, ES256 through jose — which must answer alike: `exp` required unless
 * `auth.jwt.requireExp` is off, `auth.jwt.clockToleranceSec` of skew for `exp`, `nbf` and `iat`,
 * `iss` and `aud` present and matching when configured.
 */
import { exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { SECRET, startTestServer, TestSocket } from './helpers/server.js';

const ISSUER = 'https://issuer.example';
const AUDIENCE = 'herald-tests';

type Signer = (claims: JWTPayload) => Promise<string>;
const signers: Record<string, Signer> = {};
let publicKeyFile = '';

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const dir = mkdtempSync(join(tmpdir(), 'herald-jwt-'));
  publicKeyFile = join(dir, 'pub.pem');
  writeFileSync(publicKeyFile, await exportSPKI(publicKey));
  const sign = (alg: string, key: CryptoKey | Uint8Array) => (claims: JWTPayload) =>
    new SignJWT({ sub: 'alice', channels: ['*'], ...claims }).setProtectedHeader({ alg }).sign(key);
  signers.HS256 = sign('HS256', new TextEncoder().encode(SECRET));
  signers.ES256 = sign('ES256', privateKey);
});

/** A server accepting both HS256 (auth.jwt.hmacSecret) and ES256 (auth.jwt.publicKeyFile) tokens. */
function bothPaths(jwt: Record<string, unknown> = {}): Promise<HeraldServer> {
  return startTestServer({ auth: { jwt: { hmacSecret: SECRET, publicKeyFile, algorithms: ['HS256', 'ES256'], ...jwt } } });
}

/** `connected`, or the error code of the refusal (after checking the close code that goes with it). */
async function connectWith(server: HeraldServer, token: string): Promise<string> {
  const s = await TestSocket.open(server.wsUrl);
  const reply = await s.request({ type: 'connect', token });
  if (reply.type === 'connected') {
    s.close();
    return 'connected';
  }
  const code = reply.error?.code as string;
  expect((await s.closed).code).toBe(code === 'token_expired' ? 4006 : 4501);
  return code;
}

const nowSec = () => Math.floor(Date.now() / 1000);
type Case = [name: string, claims: (now: number) => JWTPayload, outcome: 'connected' | 'unauthorized' | 'token_expired'];

function table(getServer: () => HeraldServer, cases: Case[]): void {
  for (const alg of ['HS256', 'ES256']) {
    for (const [name, claims, outcome] of cases) {
      it(`${alg}: ${name} → ${outcome}`, async () => {
        const token = await signers[alg]!(claims(nowSec()));
        expect(await connectWith(getServer(), token)).toBe(outcome);
      });
    }
  }
}

describe('default token rules (requireExp, 5 s clock tolerance)', () => {
  let server: HeraldServer;
  beforeAll(async () => (server = await bothPaths()));
  afterAll(() => server?.close());

  table(() => server, [
    ['exp in an hour', (now) => ({ exp: now + 3600 }), 'connected'],
    ['no exp', () => ({}), 'unauthorized'],
    ['exp not a number', () => ({ exp: 'never' }), 'unauthorized'],
    ['expired 2 s ago (within the tolerance)', (now) => ({ exp: now - 2 }), 'connected'],
    ['expired 60 s ago', (now) => ({ exp: now - 60 }), 'token_expired'],
    ['nbf 2 s ahead (within the tolerance)', (now) => ({ exp: now + 3600, nbf: now + 2 }), 'connected'],
    ['nbf 60 s ahead', (now) => ({ exp: now + 3600, nbf: now + 60 }), 'unauthorized'],
    ['iat 2 s ahead (within the tolerance)', (now) => ({ exp: now + 3600, iat: now + 2 }), 'connected'],
    ['iat 60 s ahead', (now) => ({ exp: now + 3600, iat: now + 60 }), 'unauthorized'],
  ]);
});

describe('auth.jwt.requireExp: false', () => {
  let server: HeraldServer;
  beforeAll(async () => (server = await bothPaths({ requireExp: false })));
  afterAll(() => server?.close());

  table(() => server, [
    ['no exp', () => ({}), 'connected'],
    ['expired 60 s ago', (now) => ({ exp: now - 60 }), 'token_expired'],
  ]);
});

describe('auth.jwt.clockToleranceSec: 0', () => {
  let server: HeraldServer;
  beforeAll(async () => (server = await bothPaths({ clockToleranceSec: 0 })));
  afterAll(() => server?.close());

  table(() => server, [
    ['expired 2 s ago', (now) => ({ exp: now - 2 }), 'token_expired'],
    ['nbf 2 s ahead', (now) => ({ exp: now + 3600, nbf: now + 2 }), 'unauthorized'],
    ['iat 2 s ahead', (now) => ({ exp: now + 3600, iat: now + 2 }), 'unauthorized'],
  ]);
});

describe('auth.jwt.issuer and auth.jwt.audience', () => {
  let server: HeraldServer;
  beforeAll(async () => (server = await bothPaths({ issuer: ISSUER, audience: AUDIENCE })));
  afterAll(() => server?.close());

  table(() => server, [
    ['matching iss and aud', (now) => ({ exp: now + 3600, iss: ISSUER, aud: AUDIENCE }), 'connected'],
    ['aud a list holding it', (now) => ({ exp: now + 3600, iss: ISSUER, aud: ['other', AUDIENCE] }), 'connected'],
    ['another iss', (now) => ({ exp: now + 3600, iss: 'https://evil.example', aud: AUDIENCE }), 'unauthorized'],
    ['no iss', (now) => ({ exp: now + 3600, aud: AUDIENCE }), 'unauthorized'],
    ['another aud', (now) => ({ exp: now + 3600, iss: ISSUER, aud: 'other' }), 'unauthorized'],
    ['aud a list without it', (now) => ({ exp: now + 3600, iss: ISSUER, aud: ['a', 'b'] }), 'unauthorized'],
    ['no aud', (now) => ({ exp: now + 3600, iss: ISSUER }), 'unauthorized'],
    ['expired and from another issuer', (now) => ({ exp: now - 60, iss: 'https://evil.example', aud: AUDIENCE }), 'unauthorized'],
  ]);
});
