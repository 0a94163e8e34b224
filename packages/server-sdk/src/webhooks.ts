/**
 * Verifying a webhook from Herald: the `Herald-Signature` header is
 * `t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, with one `kid`/`v1`
 * pair per secret Herald signs with (several while a secret is rotated). A request is authentic
 * when a pair whose kid is in `secrets` matches, and fresh when `t` is within `toleranceSec` of
 * this machine's clock. Verify the raw body exactly as received, before any JSON parsing.
 */
import { checkSignature, headerValue, secretMap, type HeadersLike, type SignatureRefusal, type SigningSecrets, type VerifySignatureOptions } from './signature.js';

export type { HeadersLike };

/** The secrets this receiver accepts, by key id (as in Herald's `webhooks.endpoints[].secrets`). */
export type WebhookSecrets = SigningSecrets;

export type VerifyWebhookOptions = VerifySignatureOptions;

export type WebhookRefusal = SignatureRefusal;

export type VerifyWebhookResult<T> = { ok: true; event: T; eventId: string | undefined; kid: string; timestamp: number } | { ok: false; reason: WebhookRefusal };

/**
 * Checks a webhook's signature and age; on success returns the parsed body as `event`. Never
 * throws for a bad request (the reason says what was wrong); throws only for bad `secrets`.
 */
export function verifyWebhook<T = unknown>(headers: HeadersLike, rawBody: string | Uint8Array, secrets: WebhookSecrets, options: VerifyWebhookOptions = {}): VerifyWebhookResult<T> {
  const check = checkSignature(headers, rawBody, secretMap(secrets, 'verifyWebhook'), '', options);
  if (!check.ok) return check;
  let event: T;
  try {
    event = JSON.parse(check.body.toString('utf8')) as T;
  } catch {
    return { ok: false, reason: 'malformed_signature' };
  }
  return { ok: true, event, eventId: headerValue(headers, 'herald-event-id'), kid: check.kid, timestamp: check.timestamp };
}
