/**
 * Who the client is, by address: the one place Herald derives a client IP (WebSocket upgrades,
 * HTTP logs, per-IP limits and rate-limit keys) and the key per-IP limits count it under.
 *
 * Behind `server.trustProxy = n` proxies, the client is the address `n` entries from the RIGHT of
 * `X-Forwarded-For`: each trusted proxy appends the address it received the request from, so
 * those entries are written by our own proxies, while everything further left was written by the
 * client and proves nothing. This is exactly fastify's `req.ip` with the trust function below
 * (proxy-addr semantics: with fewer entries than hops, the left-most one), and a test holds the
 * two together. Without a trusted hop the header is ignored.
 *
 * The per-IP key folds addresses that belong to one client: an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, what a dual-stack listener reports for IPv4 peers) is its IPv4 address, and
 * an IPv6 address counts by its `limits.ipv6PrefixLength` prefix, since one host usually owns a
 * whole /64 and could otherwise open connections from 2^64 addresses.
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** A fastify request or Node's own. */
export type RequestLike = IncomingMessage | { readonly raw: IncomingMessage };

/** Shown when the socket is already gone and has no address. */
const UNKNOWN = 'unknown';
/** A key that is not an IP (a misbehaving proxy, a client that bypassed it) is cut to this length. */
const MAX_OPAQUE_KEY = 64;

/** fastify's `trustProxy` option for `hops` trusted proxies: the socket peer is hop 0, the right-most X-Forwarded-For entry hop 1, … */
export function trustedHops(hops: number): false | ((address: string, hop: number) => boolean) {
  return hops > 0 ? (_address: string, hop: number) => hop < hops : false;
}

/** The client's address for a request, given the number of trusted proxy hops in front of Herald. */
export function clientAddress(req: RequestLike, hops: number): string {
  const raw = 'raw' in req ? req.raw : req;
  const peer = raw.socket?.remoteAddress ?? UNKNOWN;
  if (hops <= 0) return peer;
  const header = raw.headers['x-forwarded-for'];
  if (typeof header !== 'string' || header === '') return peer;
  // proxy-addr's list: the peer, then X-Forwarded-For from right to left. The client is the
  // entry `hops` along it, or the last one when the list is shorter.
  const fromRight = forwardedFromRight(header);
  if (fromRight.length === 0) return peer;
  return fromRight[Math.min(hops, fromRight.length) - 1]!;
}

/**
 * X-Forwarded-For entries from right to left, split as @fastify/forwarded splits them: a single
 * entry is trimmed of any whitespace; in a list, spaces and tabs around commas are dropped and
 * empty entries skipped. Node joins repeated headers with ", " before this sees them.
 */
function forwardedFromRight(header: string): string[] {
  if (!header.includes(',')) {
    const only = header.trim();
    return only === '' ? [] : [only];
  }
  const out: string[] = [];
  let end = header.length;
  let start = end;
  for (let i = header.length - 1; i >= 0; i--) {
    const c = header[i];
    if (c === ' ' || c === '\t') {
      if (start === end) start = end = i;
    } else if (c === ',') {
      if (start !== end) out.push(header.slice(start, end));
      start = end = i;
    } else {
      start = i;
    }
  }
  if (start !== end) out.push(header.slice(start, end));
  return out;
}

/**
 * The key per-IP limits count `address` under: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6
 * as its `/prefixLength` network (`2001:db8:0:1::/64`), anything else (not an IP) as itself, cut short.
 */
export function ipGroupKey(address: string, ipv6PrefixLength: number): string {
  if (isIPv4(address)) return address;
  const groups = ipv6Groups(address);
  if (!groups) return address.length > MAX_OPAQUE_KEY ? address.slice(0, MAX_OPAQUE_KEY) : address;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  const prefix = Math.max(0, Math.min(128, Math.trunc(ipv6PrefixLength)));
  const kept = Math.ceil(prefix / 16);
  const parts: string[] = [];
  for (let i = 0; i < kept; i++) {
    const bits = Math.min(16, prefix - i * 16);
    const mask = bits === 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    parts.push((groups[i]! & mask).toString(16));
  }
  return `${parts.join(':')}${kept < 8 ? '::' : ''}/${prefix}`;
}

/** The eight 16-bit groups of an IPv6 address (zone index dropped), or undefined when it is not one. */
export function ipv6Groups(address: string): number[] | undefined {
  const zone = address.indexOf('%');
  const text = zone >= 0 ? address.slice(0, zone) : address;
  if (!isIPv6(text)) return undefined;
  let head = text;
  const tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) >= 0) {
    // An embedded dotted quad (`::ffff:1.2.3.4`) is the last two groups.
    const q = text.slice(lastColon + 1).split('.').map(Number);
    tailV4.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const gap = head.indexOf('::');
  let groups: number[];
  if (gap >= 0) {
    const left = parse(head.slice(0, gap));
    const right = parse(head.slice(gap + 2));
    const zeros = 8 - tailV4.length - left.length - right.length;
    groups = [...left, ...new Array<number>(zeros).fill(0), ...right];
  } else {
    groups = parse(head);
  }
  groups.push(...tailV4);
  return groups.length === 8 ? groups : undefined;
}

/** Client addresses and per-IP keys under one configuration (`server.trustProxy`, `limits.ipv6PrefixLength`). */
export class ClientIps {
  constructor(private readonly cfg: { trustProxy: number; ipv6PrefixLength: number }) {}

  /** The client's address, as fastify's `req.ip` gives it. */
  address(req: RequestLike): string {
    return clientAddress(req, this.cfg.trustProxy);
  }

  /** The key per-IP limits count this address under. */
  keyOf(address: string): string {
    return ipGroupKey(address, this.cfg.ipv6PrefixLength);
  }

  /** The per-IP key of a request's client. */
  key(req: RequestLike): string {
    return this.keyOf(this.address(req));
  }
}
