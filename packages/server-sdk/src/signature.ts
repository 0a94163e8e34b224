/**
 * Checking a `Herald-Signature` header, shared by webhooks and proxy hook requests: the header is
 * `t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256>[,kid=…,v1=…]`, one pair per secret Herald
 * signs with (several while a secret is rotated). The MAC covers `<t>.<domain><raw body>`; the
 * domain (`""` webhooks, `proxy.` hook requests) keeps a request of one kind from verifying as the
 * other even under a shared secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The secrets a receiver accepts, by key id: `{ kid: secret }` or `[{ kid, secret }]`. */
export type SigningSecrets = Readonly<Record<string, string>> | ReadonlyArray<{ kid: string; secret: string }>;

export interface VerifySignatureOptions {
  /** Largest accepted distance between `t` and now, in seconds. Default 300. */
  toleranceSec?: number;
  /** The current time in ms (tests). Default `Date.now()`. */
  now?: number;
}

export type SignatureRefusal = 'missing_signature' | 'malformed_signature' | 'timestamp_out_of_tolerance' | 'unknown_kid' | 'signature_mismatch';

/** Headers as Node's IncomingMessage, fetch's Headers or a plain object give them. */
export type HeadersLike = { get(name: string): string | null } | Readonly<Record<string, string | string[] | undefined>>;

export type SignatureCheck = { ok: true; kid: string; timestamp: number; body: Buffer } | { ok: false; reason: SignatureRefusal };

export function checkSignature(headers: HeadersLike, rawBody: string | Uint8Array, known: ReadonlyMap<string, string>, domain: string, options: VerifySignatureOptions): SignatureCheck {
  const header = headerValue(headers, 'herald-signature');
  if (!header) return { ok: false, reason: 'missing_signature' };
  const parsed = parseSignature(header);
  if (!parsed) return { ok: false, reason: 'malformed_signature' };
  const tolerance = options.toleranceSec ?? 300;
  const nowSec = (options.now ?? Date.now()) / 1000;
  if (!(Math.abs(nowSec - parsed.t) <= tolerance)) return { ok: false, reason: 'timestamp_out_of_tolerance' };
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : Buffer.from(rawBody);
  let sawKnownKid = false;
  for (const { kid, v1 } of parsed.pairs) {
    const secret = known.get(kid);
    if (secret === undefined) continue;
    sawKnownKid = true;
    const expected = createHmac('sha256', secret).update(`${parsed.t}.${domain}`).update(body).digest();
    const given = Buffer.from(v1, 'hex');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true, kid, timestamp: parsed.t, body };
  }
  return { ok: false, reason: sawKnownKid ? 'signature_mismatch' : 'unknown_kid' };
}

/** `secrets` as a map by kid; throws a TypeError (naming `caller`) for none or an empty one. */
export function secretMap(secrets: SigningSecrets, caller: string): Map<string, string> {
  const entries = Array.isArray(secrets) ? (secrets as ReadonlyArray<{ kid: string; secret: string }>).map((s) => [s.kid, s.secret] as const) : Object.entries(secrets as Record<string, string>);
  if (entries.length === 0) throw new TypeError(`${caller}: secrets must name at least one key id`);
  for (const [kid, secret] of entries) {
    if (typeof kid !== 'string' || typeof secret !== 'string' || secret.length === 0) throw new TypeError(`${caller}: each secret must be a non-empty string under its key id`);
  }
  return new Map(entries);
}

export function headerValue(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const record = headers as Readonly<Record<string, string | string[] | undefined>>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : record[key];
  return Array.isArray(v) ? v[0] : v;
}

function parseSignature(header: string): { t: number; pairs: Array<{ kid: string; v1: string }> } | undefined {
  let t: number | undefined;
  const pairs: Array<{ kid: string; v1: string }> = [];
  let kid: string | undefined;
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't') {
      if (!/^\d{1,12}$/.test(v) || t !== undefined) return undefined;
      t = Number(v);
    } else if (k === 'kid') {
      kid = v;
    } else if (k === 'v1') {
      if (kid === undefined || !/^[0-9a-f]{64}$/i.test(v)) return undefined;
      pairs.push({ kid, v1: v });
      kid = undefined;
    }
    // Unknown fields (a future v2) are ignored.
  }
  if (t === undefined || pairs.length === 0) return undefined;
  return { t, pairs };
}
