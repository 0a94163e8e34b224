/** The webhook dispatcher's backoff and the signature header format, without a server. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../src/webhooks/dispatcher.js';
import { signatureHeader } from '../src/webhooks/signature.js';
import { maskSecrets } from '../src/cli/mask.js';

describe('webhook backoff', () => {
  const retry = { initialMs: 1000, maxMs: 30_000, maxAttempts: 10 };

  it('doubles per attempt up to maxMs, each delay in the upper half of its step', () => {
    const steps = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
    steps.forEach((d, i) => {
      expect(backoffMs(i + 1, retry, () => 0)).toBe(d / 2);
      expect(backoffMs(i + 1, retry, () => 1)).toBe(d);
    });
  });

  it('stays finite for huge attempt counts', () => {
    expect(backoffMs(10_000, retry, () => 0.5)).toBe(22_500);
  });
});

describe('Herald-Signature', () => {
  it('is t, then one kid/v1 pair per secret in order, v1 the HMAC-SHA256 of "<t>.<body>"', () => {
    const body = '{"a":"ü"}';
    const h = signatureHeader([{ kid: 'new', secret: 's-new-0123456789abcdef' }, { kid: 'old', secret: 's-old-0123456789abcdef' }], 1700000000, body);
    const mac = (secret: string) => createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(h).toBe(`t=1700000000,kid=new,v1=${mac('s-new-0123456789abcdef')},kid=old,v1=${mac('s-old-0123456789abcdef')}`);
  });

  it('secrets are masked when the configuration is printed (herald config check), key ids are not', () => {
    const masked = maskSecrets({ webhooks: { endpoints: [{ id: 'app', url: 'https://u:p@example.com/x', secrets: [{ kid: 'k1', secret: 'a-very-secret-value-123' }] }] } }) as {
      webhooks: { endpoints: Array<{ url: string; secrets: Array<{ kid: string; secret: string }> }> };
    };
    expect(masked.webhooks.endpoints[0]!.secrets[0]).toEqual({ kid: 'k1', secret: '<masked: 23 characters>' });
    expect(masked.webhooks.endpoints[0]!.url).toBe('https://u:***@example.com/x');
  });
});
