/**
 * The `Herald-Signature` header Herald puts on what it sends to an application backend (webhooks,
 * proxy hook requests): HMAC-SHA256 with each configured secret, as
 * `t=<unix seconds>,kid=<kid>,v1=<hex>[,kid=<kid>,v1=<hex>…]`. Several secrets let an operator
 * rotate one: the receiver accepts a request when any pair whose kid it knows verifies. The
 * timestamp is signed too, so a captured request cannot be replayed later than the receiver's
 * tolerance.
 *
 * What is MACed is `<t>.<domain><body>`, the domain naming the kind of request (`""` for webhooks,
 * kept so existing receivers verify as before; `proxy.` for hook requests). A captured webhook then
 * never verifies as a hook request, nor the other way round, even where an operator configured the
 * same secret for both.
 */
import { createHmac } from 'node:crypto';

export interface SigningSecret {
  kid: string;
  secret: string;
}

export const SIGNATURE_HEADER = 'herald-signature';

/** What a webhook's MAC covers after `<t>.`: the body alone. */
export const WEBHOOK_DOMAIN = '';
/** What a hook request's MAC covers after `<t>.`: `proxy.` then the body. */
export const PROXY_DOMAIN = 'proxy.';

export function signatureOf(secret: string, timestamp: number, body: string, domain = WEBHOOK_DOMAIN): string {
  return createHmac('sha256', secret).update(`${timestamp}.${domain}`).update(body).digest('hex');
}

/** The `Herald-Signature` value for a body sent at `timestamp` (unix seconds). */
export function signatureHeader(secrets: readonly SigningSecret[], timestamp: number, body: string, domain = WEBHOOK_DOMAIN): string {
  return [`t=${timestamp}`, ...secrets.map((s) => `kid=${s.kid},v1=${signatureOf(s.secret, timestamp, body, domain)}`)].join(',');
}
