/**
 * The synchronous HMAC verifier must accept and refuse exactly the tokens jose does (with the
 * options Herald passes), and tell expiry apart. Each case is run through both.
 */
import { createHmac } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { describe, expect, it } from 'vitest';
import { HmacJwtError, verifyHmacJwt } from '../src/hmac-jwt.js';

const secret = new TextEncoder().encode('test-secret-0123456789abcdef-0123456789');
const other = new TextEncoder().encode('another-secret-0123456789abcdef-0123456789');
const now = Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token assembled by hand, for shapes SignJWT will not produce. */
function handMade(header: unknown, payload: unknown, key = secret, hash = 'sha256'): string {
  const signingInput = `${b64(header)}.${b64(payload)}`;
  return `${signingInput}.${createHmac(hash, key).update(signingInput).digest('base64url')}`;
}

const sign = (claims: Record<string, unknown>, alg = 'HS256', key = secret) => new SignJWT(claims).setProtectedHeader({ alg }).sign(key);

type Outcome = 'ok' | 'expired' | 'refused';

interface Options {
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  requireExp?: boolean;
  clockToleranceSec?: number;
}

/** jose with the options auth.ts gives it. */
async function viaJose(token: string, o: Options): Promise<Outcome> {
  try {
    await jwtVerify(token, secret, {
      algorithms: o.algorithms ?? ['HS256'],
      ...(o.issuer ? { issuer: o.issuer } : {}),
      ...(o.audience ? { audience: o.audience } : {}),
      requiredClaims: o.requireExp ? ['exp'] : [],
      clockTolerance: o.clockToleranceSec ?? 0,
      currentDate: new Date(now * 1000),
    });
    return 'ok';
  } catch (err) {
    return err instanceof joseErrors.JWTExpired ? 'expired' : 'refused';
  }
}

function viaHerald(token: string, o: Options): Outcome {
  try {
    verifyHmacJwt(token, secret, { ...o, algorithms: o.algorithms ?? ['HS256'] }, now);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(HmacJwtError);
    return (err as HmacJwtError).expired ? 'expired' : 'refused';
  }
}

describe('verifyHmacJwt agrees with jose', () => {
  const cases: Array<[string, () => Promise<string> | string, Outcome, Options?]> = [
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
    ['audience list without it', () => sign({ sub: 'a', aud: ['web', 'admin'] }), 'refused', { audience: 'app' }],
    ['audience missing', () => sign({ sub: 'a' }), 'refused', { audience: 'app' }],
    ['audience not a string', () => sign({ sub: 'a', aud: 7 }), 'refused', { audience: 'app' }],
    // auth.jwt.requireExp
    ['no exp, exp required', () => sign({ sub: 'a' }), 'refused', { requireExp: true }],
    ['exp present, exp required', () => sign({ sub: 'a', exp: now + 60 }), 'ok', { requireExp: true }],
    ['exp expired, exp required', () => sign({ sub: 'a', exp: now - 60 }), 'expired', { requireExp: true }],
    ['exp not a number, exp required', () => sign({ sub: 'a', exp: 'tomorrow' }), 'refused', { requireExp: true }],
    // auth.jwt.clockToleranceSec
    ['expired within the tolerance', () => sign({ sub: 'a', exp: now - 3 }), 'ok', { clockToleranceSec: 5 }],
    ['expired at the tolerance', () => sign({ sub: 'a', exp: now - 5 }), 'expired', { clockToleranceSec: 5 }],
    ['expired beyond the tolerance', () => sign({ sub: 'a', exp: now - 30 }), 'expired', { clockToleranceSec: 5 }],
    ['nbf within the tolerance', () => sign({ sub: 'a', nbf: now + 3 }), 'ok', { clockToleranceSec: 5 }],
    ['nbf beyond the tolerance', () => sign({ sub: 'a', nbf: now + 30 }), 'refused', { clockToleranceSec: 5 }],
    ['nbf just ahead, no tolerance', () => sign({ sub: 'a', nbf: now + 1 }), 'refused', { clockToleranceSec: 0 }],
    // Several faults at once: jose's order decides between "expired" and "refused".
    ['expired and from another issuer', () => sign({ sub: 'a', iss: 'you', exp: now - 60 }), 'refused', { issuer: 'me' }],
    ['expired and for another audience', () => sign({ sub: 'a', aud: 'web', exp: now - 60 }), 'refused', { audience: 'app' }],
    ['expired and nbf in the future', () => sign({ sub: 'a', nbf: now + 120, exp: now - 60 }), 'refused'],
    ['expired and iat not a number', () => sign({ sub: 'a', iat: 'x', exp: now - 60 }), 'refused'],
    ['nbf in the future and exp not a number', () => sign({ sub: 'a', nbf: now + 120, exp: 'x' }), 'refused'],
  ];

  for (const [name, make, expected, opts = {}] of cases) {
    it(name, async () => {
      const token = await make();
      const jose = await viaJose(token, opts);
      expect(jose).toBe(expected);
      expect(viaHerald(token, opts)).toBe(jose);
    });
  }

  it('returns the claims of a valid token', async () => {
    const token = await sign({ sub: 'alice', channels: ['chat:*'], tags: { region: 'eu' } });
    expect(verifyHmacJwt(token, secret, { algorithms: ['HS256'] })).toMatchObject({ sub: 'alice', channels: ['chat:*'], tags: { region: 'eu' } });
  });
});
