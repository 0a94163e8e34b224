/**
 * Tokens for first-frame inputs: valid ones, correctly signed tokens whose claims are wrong in
 * every way (types, sizes, nesting, prototype keys, times), and tokens that are broken as JWTs
 * (alg none, bad signature, bad base64, wrong part count). Signed by hand with node:crypto so a
 * claim nested thousands of levels deep never goes through a recursive JSON writer here.
 */
import { createHmac } from 'node:crypto';
import { Deep, JObj, Raw, render, type JVal } from './json-model.js';
import { BYSTANDER_CHANNEL, FUZZ_SECRET } from './world.js';

const b64url = (s: string | Buffer): string => Buffer.from(s).toString('base64url');

function jwt(header: string, payload: string, secret = FUZZ_SECRET): string {
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

const HS256 = '{"alg":"HS256","typ":"JWT"}';

function claims(extra: Array<[string, JVal]>, base: { sub?: boolean; exp?: boolean } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const entries: Array<[string, JVal]> = [];
  if (base.sub !== false) entries.push(['sub', 'fuzz-claims']);
  entries.push(['iat', now]);
  if (base.exp !== false) entries.push(['exp', now + 86_400]);
  entries.push(['channels', ['fuzz:*']]);
  const o = new JObj(entries);
  for (const [k, v] of extra) o.set(k, v);
  return render(o);
}

/** [label, token] pairs; the labels name what is wrong with each. */
export function fuzzTokens(): Array<[string, string]> {
  const signed = (label: string, extra: Array<[string, JVal]>, base?: { sub?: boolean; exp?: boolean }): [string, string] => [label, jwt(HS256, claims(extra, base))];
  const now = Math.floor(Date.now() / 1000);
  return [
    signed('valid', []),
    signed('channels-everything', [['channels', ['*']], ['publish', ['*']]]),
    signed('channels-bystander', [['channels', [BYSTANDER_CHANNEL]]]),
    signed('sub-number', [['sub', 123]]),
    signed('sub-empty', [['sub', '']]),
    signed('sub-257', [['sub', 'u'.repeat(257)]]),
    signed('sub-unicode', [['sub', '\u202Eadmin\uD800']]),
    signed('no-sub', [], { sub: false }),
    signed('no-exp', [], { exp: false }),
    signed('exp-past', [['exp', now - 3600]]),
    signed('exp-string', [['exp', 'tomorrow']]),
    signed('exp-huge', [['exp', new Raw('1e300')]]),
    signed('exp-negative', [['exp', -1]]),
    signed('nbf-future', [['nbf', now + 3600]]),
    signed('iat-future', [['iat', now + 3600]]),
    signed('channels-string', [['channels', 'fuzz:*']]),
    signed('channels-numbers', [['channels', [1, 2, 3]]]),
    signed('channels-objects', [['channels', [new JObj()]]]),
    signed('channels-many-wildcards', [['channels', ['*a*a*a*a*a*a*a*a*b']]]),
    signed('channels-1000', [['channels', Array.from({ length: 1000 }, (_, i) => `c${i}:*`)]]),
    signed('channels-deep', [['channels', new Deep(5000, 'array')]]),
    signed('publish-null', [['publish', null]]),
    signed('tags-string', [['tags', 'plan=pro']]),
    signed('tags-nested', [['tags', new JObj([['plan', new JObj([['x', 1]])]])]]),
    signed('tags-deep', [['tags', new Deep(2000, 'object')]]),
    signed('tags-proto', [['tags', new JObj([['__proto__', new JObj([['admin', true]])]])]]),
    signed('claims-proto', [['__proto__', new JObj([['sub', 'admin']])]]),
    signed('claims-constructor', [['constructor', new JObj([['prototype', new JObj([['x', 1]])]])]]),
    ['alg-none', `${b64url('{"alg":"none","typ":"JWT"}')}.${b64url(claims([]))}.`],
    ['alg-HS512', jwt('{"alg":"HS512","typ":"JWT"}', claims([]))],
    ['alg-RS256-with-hmac', jwt('{"alg":"RS256","typ":"JWT"}', claims([]))],
    ['header-crit', jwt('{"alg":"HS256","crit":["exp"]}', claims([]))],
    ['header-deep', jwt(`{"alg":"HS256","x":${render(new Deep(5000, 'array'))}}`, claims([]))],
    ['wrong-secret', jwt(HS256, claims([]), 'not-the-secret-0123456789')],
    ['payload-not-json', jwt(HS256, '{"sub":')],
    ['payload-array', jwt(HS256, '[1,2]')],
    ['two-parts', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0'],
    ['four-parts', 'a.b.c.d'],
    ['bad-base64', 'e!!.e??.s**'],
    ['empty-parts', '..'],
    ['huge', 'x'.repeat(16384)],
  ];
}
