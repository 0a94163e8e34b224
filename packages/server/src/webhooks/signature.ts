/**
 * The webhook signature: HMAC-SHA256 over `<t>.<body>` with each of the endpoint's secrets, in a
 * header `Herald-Signature: t=<unix seconds>,kid=<kid>,v1=<hex>[,kid=<kid>,v1=<hex>…]`. Several
 * secrets let an operator rotate one: the receiver accepts a request when any pair whose kid it
 * knows verifies. The timestamp is signed too, so a captured request cannot be replayed later
 * than the receiver's tolerance.
 */
import { createHmac } from 'node:crypto';

export interface WebhookSecret {
  kid: string;
  secret: string;
}

export const SIGNATURE_HEADER = 'herald-signature';

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The `Herald-Signature` value for a body sent at `timestamp` (unix seconds). */
export function signatureHeader(secrets: readonly WebhookSecret[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((s) => `kid=${s.kid},v1=${signatureOf(s.secret, timestamp, body)}`)].join(',');
}
