/**
 * The synchronous HMAC verifier must accept and refuse exactly the tokens jose does (with the
 * options Herald passes), and tell expiry apart. Each case is run through both.
 */
import { createHmac } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { describe, expect, it } from 'vitest';
import { HmacJwtError, verifyHmacJwt } from '../src/server/hmac-jwt.js';

const secret = new TextEncoder().encode('test-secret-0123456789');
const other = new TextEncoder().encode('another-secret-0123456789');
const now = Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token assembled by hand, for shapes SignJWT will not produce. */
function handMade(header: unknown, payload: unknown, key = secret, hash = 'sha256'): string {
  const signingInput = `${b64(header)}.${b64(payload)}`;
  return `${signingInput}.${createHmac(hash, key).update(signingInput).digest('base64url')}`;
}

const sign = (claims: Record<string, unknown>, alg = 'HS256', key = secret) => new SignJWT(claims).setProtectedHeader({ alg }).sign(key);

type Outcome = 'ok' | 'expired' | 'refused';

async function viaJose(token: string, algorithms: string[], issuer?: string, audience?: string): Promise<Outcome> {
  try {
    await jwtVerify(token, secret, { algorithms, ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}) });
    return 'ok';
  } catch (err) {
    return err instanceof joseErrors.JWTExpired ? 'expired' : 'refused';
  }
}

function viaHerald(token: string, algorithms: string[], issuer?: string, audience?: string): Outcome {
  try {
    verifyHmacJwt(token, secret, { algorithms, issuer, audience });
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(HmacJwtError);
    return (err as HmacJwtError).expired ? 'expired' : 'refused';
  }
}

describe('verifyHmacJwt agrees with jose', () => {
  const cases: Array<[string, () => Promise<string> | string, Outcome, { algorithms?: string[]; issuer?: string; audience?: string }?]> = [
    ['valid HS256', () => sign({ sub: 'a', exp: now + 60 }), 'ok'],
    ['valid HS384', () => sign({ sub: 'a' }, 'HS384'), 'ok', { algorithms: ['HS384'] }],
    ['valid HS512', () => sign({ sub: 'a' }, 'HS512'), 'ok', { algorithms: ['HS256', 'HS512'] }],
    ['HS384 when only HS256 is allowed', () => sign({ sub: 'a' }, 'HS384'), 'refused'],
    ['expired', () => sign({ sub: 'a', exp: now - 5 }), 'expired'],
    ['exp not a number', () => sign({ sub: 'a', exp: String(now + 60) }), 'refused'],
    ['nbf in the future', () => sign({ sub: 'a', nbf: now + 120 }), 'refused'],
    ['nbf in the past', () => sign({ sub: 'a', nbf: now - 120 }), 'ok'],
    ['iat not a number', () => sign({ sub: 'a', iat: 'yesterday' }), 'refused'],
    ['wrong secret', () => sign({ sub: 'a' }, 'HS256', other), 'refused'],
    ['tampered payload', async () => {
      const [h, , s] = (await sign({ sub: 'a' })).split('.');
      return `${h}.${b64({ sub: 'admin' })}.${s}`;
    }, 'refused'],
    ['alg none', () => `${b64({ alg: 'none' })}.${b64({ sub: 'a' })}.`, 'refused'],
    ['signature of another algorithm', () => handMade({ alg: 'HS256' }, { sub: 'a' }, secret, 'sha512'), 'refused'],
    ['crit header', () => handMade({ alg: 'HS256', crit: ['x'], x: 1 }, { sub: 'a' }), 'refused'],
    ['b64 false', () => handMade({ alg: 'HS256', b64: false, crit: ['b64'] }, { sub: 'a' }), 'refused'],
    ['payload not JSON', () => handMade({ alg: 'HS256' }, 'not json'), 'refused'],
    ['payload an array', () => handMade({ alg: 'HS256' }, [1, 2]), 'refused'],
    ['header not JSON', () => `${b64('{oops')}.${b64({ sub: 'a' })}.AAAA`, 'refused'],
    ['two parts', () => `${b64({ alg: 'HS256' })}.${b64({ sub: 'a' })}`, 'refused'],
    ['four parts', async () => `${await sign({ sub: 'a' })}.x`, 'refused'],
    ['bad characters in the signature', async () => `${(await sign({ sub: 'a' })).slice(0, -2)}+/`, 'refused'],
    ['empty string', () => '', 'refused'],
    ['issuer matches', () => sign({ sub: 'a', iss: 'me' }), 'ok', { issuer: 'me' }],
    ['issuer differs', () => sign({ sub: 'a', iss: 'you' }), 'refused', { issuer: 'me' }],
    ['issuer missing', () => sign({ sub: 'a' }), 'refused', { issuer: 'me' }],
    ['audience in a list', () => sign({ sub: 'a', aud: ['x', 'app'] }), 'ok', { audience: 'app' }],
    ['audience differs', () => sign({ sub: 'a', aud: 'web' }), 'refused', { audience: 'app' }],
  ];

  for (const [name, make, expected, opts] of cases) {
    it(name, async () => {
      const token = await make();
      const algorithms = opts?.algorithms ?? ['HS256'];
      const jose = await viaJose(token, algorithms, opts?.issuer, opts?.audience);
      expect(jose).toBe(expected);
      expect(viaHerald(token, algorithms, opts?.issuer, opts?.audience)).toBe(jose);
    });
  }

  it('returns the claims of a valid token', async () => {
    const token = await sign({ sub: 'alice', channels: ['chat:*'], tags: { region: 'eu' } });
    expect(verifyHmacJwt(token, secret, { algorithms: ['HS256'] })).toMatchObject({ sub: 'alice', channels: ['chat:*'], tags: { region: 'eu' } });
  });
});
