/** verifyWebhook against signatures made by Herald's own signer (the server's webhooks/signature.ts). */
import { describe, expect, it } from 'vitest';
import { verifyWebhook } from '@herald/server';
import { signatureHeader } from 'herald/internal/webhooks/signature.js';

const SECRETS = [{ kid: 'k2', secret: 'second-secret-0123456789' }, { kid: 'k1', secret: 'first-secret-0123456789' }];
const body = JSON.stringify({ id: 'e1', type: 'connection.opened', createdAt: 1, node: 'n', data: { connectionId: 'c1', user: 'ünï' } });
const now = Date.now();
const t = Math.floor(now / 1000);

function headers(sig: string): Record<string, string> {
  return { 'Herald-Signature': sig, 'herald-event-id': 'e1', 'content-type': 'application/json' };
}

describe('verifyWebhook', () => {
  it('accepts a valid request with either secret, from a header object, a Headers and a Buffer body', () => {
    const sig = signatureHeader(SECRETS, t, body);
    const r = verifyWebhook(headers(sig), body, { k1: 'first-secret-0123456789' }, { now });
    expect(r).toEqual({ ok: true, event: JSON.parse(body), eventId: 'e1', kid: 'k1', timestamp: t });
    expect(verifyWebhook(new Headers(headers(sig)), Buffer.from(body), [{ kid: 'k2', secret: 'second-secret-0123456789' }], { now })).toMatchObject({ ok: true, kid: 'k2' });
    expect(verifyWebhook({ 'herald-signature': [sig] }, new TextEncoder().encode(body), { k2: 'second-secret-0123456789' }, { now }).ok).toBe(true);
  });

  it('refuses a tampered body or a wrong secret', () => {
    const sig = signatureHeader(SECRETS, t, body);
    expect(verifyWebhook(headers(sig), body.replace('c1', 'c2'), { k1: 'first-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
    expect(verifyWebhook(headers(sig), body, { k1: 'not-the-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
    // A timestamp changed after signing breaks the signature too.
    expect(verifyWebhook(headers(sig.replace(`t=${t}`, `t=${t + 1}`)), body, { k1: 'first-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'signature_mismatch' });
  });

  it('refuses a timestamp outside the tolerance, either way', () => {
    const old = signatureHeader(SECRETS, t - 301, body);
    expect(verifyWebhook(headers(old), body, { k1: 'first-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'timestamp_out_of_tolerance' });
    expect(verifyWebhook(headers(old), body, { k1: 'first-secret-0123456789' }, { now, toleranceSec: 600 }).ok).toBe(true);
    const future = signatureHeader(SECRETS, t + 400, body);
    expect(verifyWebhook(headers(future), body, { k1: 'first-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'timestamp_out_of_tolerance' });
  });

  it('refuses a signature made only with kids it does not know', () => {
    const sig = signatureHeader([{ kid: 'k9', secret: 'other-secret-0123456789' }], t, body);
    expect(verifyWebhook(headers(sig), body, { k1: 'first-secret-0123456789' }, { now })).toEqual({ ok: false, reason: 'unknown_kid' });
  });

  it('refuses missing and malformed headers without throwing', () => {
    expect(verifyWebhook({}, body, { k1: 'x' }, { now })).toEqual({ ok: false, reason: 'missing_signature' });
    for (const bad of ['garbage', 't=abc,kid=k1,v1=00', `t=${t}`, `t=${t},v1=${'0'.repeat(64)}`, `t=${t},kid=k1,v1=zz`, `t=${t},t=${t},kid=k1,v1=${'0'.repeat(64)}`]) {
      expect(verifyWebhook(headers(bad), body, { k1: 'x' }, { now }), bad).toEqual({ ok: false, reason: 'malformed_signature' });
    }
  });

  it('throws for unusable secrets (a programming error, not a bad request)', () => {
    expect(() => verifyWebhook(headers('t=1'), body, {}, { now })).toThrow(TypeError);
    expect(() => verifyWebhook(headers('t=1'), body, { k1: '' }, { now })).toThrow(TypeError);
  });
});
