/**
 * HTTP inputs: bodies for the API routes a backend calls and the polling routes a client calls,
 * with credentials that let the body be parsed, odd path parameters and query strings, and both
 * request framings — Content-Length (which the publish fast path takes) and chunked (which goes
 * to fastify) — so the two implementations of `POST /api/v1/publish` see the same inputs.
 */
import { Deep, obj, render, type JObj } from './json-model.js';
import { applyValueOp, interestingValues, mutateBytes, mutateValue, DEPTHS, sizeTargets, type ValueOp } from './mutations.js';
import type { Rng } from './rng.js';
import { smallPayload } from './valid-frames.js';
import { FUZZ_API_KEY, PUBLISH_CHANNELS } from './world.js';

export interface HttpSpec {
  label: string;
  method: 'GET' | 'POST';
  /** May contain LIVE_CONNECTION, replaced when sent by the id of a live attacker connection. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  framing: 'length' | 'chunked';
  /** The server may hold the request this long by design (long poll, RPC timeout). */
  mayHoldMs?: number;
  /** Requests with the same pair id carry the same publish, one to the fast path and one to fastify: their answers must match. */
  pair?: string;
}

let pairs = 0;

/**
 * The same publish twice: with Content-Length (which the fast path takes when the rest qualifies)
 * and chunked (which always goes to fastify). Status and error code must be the same.
 */
export function bothPublishPaths(spec: HttpSpec): HttpSpec[] {
  const pair = `p${++pairs}`;
  const base = spec.label.replace(/ \[(length|chunked)\]$/, '');
  return [
    { ...spec, path: '/api/v1/publish', headers: { ...spec.headers }, framing: 'length', pair, label: `${base} [length: fast path]` },
    { ...spec, path: '/api/v1/publish', headers: { ...spec.headers }, framing: 'chunked', pair, label: `${base} [chunked: fastify]` },
  ];
}

export const LIVE_CONNECTION = '{live-connection}';

export type Route = 'publish' | 'publish-batch' | 'conn-request' | 'conn-disconnect' | 'user-disconnect' | 'inbox-ack' | 'poll-channel' | 'poll-inbox' | 'api-get';

export const ROUTES: Route[] = ['publish', 'publish-batch', 'conn-request', 'conn-disconnect', 'user-disconnect', 'inbox-ack', 'poll-channel', 'poll-inbox', 'api-get'];

/** Credentials the generator may use: the API key, and connection tokens for the polling routes. */
export interface HttpCredentials {
  userTokens: string[];
  badTokens: string[];
}

const EVENT = 'fuzz.http';
const USERS = ['fuzz-u0', 'fuzz-u1', 'fuzz-u2', 'fuzz-u3'];

/**
 * Odd values for path parameters (already percent-encoded where they need to be), and long ones
 * that are still valid: user ids may have 256 characters, channels 255, msgIds 128.
 */
const PATH_PARAMS = ['fuzz-u1', '%00', '..', '%2e%2e%2f', 'x'.repeat(300), 'p'.repeat(128), `fuzz:${'c'.repeat(250)}`, '%F0%9F%98%80', '%ED%A0%80', '__proto__', 'constructor', '*', '%20', '%25', 'a%2Fb'];

/** Odd values for query parameters. */
const QUERY_VALUES = ['', '0', '1', '-1', '1.5', '1e3', '99999999999999999999', '0x10', '%20%31', 'abc', '%00', '%ED%A0%80', 'x'.repeat(500), '[]', '{}', 'deadbeef'];

function apiHeaders(rng: Rng): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  const roll = rng.next();
  if (roll < 0.8) h.authorization = `Bearer ${FUZZ_API_KEY}`;
  else if (roll < 0.9) h['x-api-key'] = FUZZ_API_KEY;
  else if (roll < 0.94) h.authorization = 'Bearer wrong-key';
  else if (roll < 0.97) h.authorization = `Bearer ${'k'.repeat(8000)}`;
  // else: no credentials
  return h;
}

function pollHeaders(rng: Rng, creds: HttpCredentials): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  const roll = rng.next();
  if (roll < 0.75) h.authorization = `Bearer ${rng.pick(creds.userTokens)}`;
  else if (roll < 0.9 && creds.badTokens.length > 0) h.authorization = `Bearer ${rng.pick(creds.badTokens)}`;
  // else anonymous
  return h;
}

export function validFilter(rng: Rng, depth = 0): JObj {
  const leaf = (): JObj =>
    rng.pick([
      () => obj({ tag: 'plan', op: 'eq', value: 'pro' }),
      () => obj({ tag: 'plan', op: 'in', value: ['pro', 'free'] }),
      () => obj({ tag: 'n', op: 'gte', value: 2 }),
      () => obj({ tag: 'app', op: 'vgte', value: '2.5.0' }),
      () => obj({ tag: 'beta', op: 'exists', value: false }),
      () => obj({ tag: 'plan', op: 'ne', value: 'free' }),
    ])();
  if (depth > 2 || rng.chance(0.5)) return leaf();
  const kind = rng.pick(['and', 'or', 'not']);
  if (kind === 'not') return obj({ not: validFilter(rng, depth + 1) });
  return obj({ [kind]: [validFilter(rng, depth + 1), validFilter(rng, depth + 1)] });
}

/**
 * A valid publish. One in ten carries a large payload (a quarter of the message limit), so channel
 * histories grow large and a recovery reply can be big: the replies a slow reader asks for must
 * stay within its byte budget.
 */
export function publishBody(rng: Rng, limit: number): JObj {
  const audience = rng.weighted<'channel' | 'user' | 'broadcast'>([
    ['channel', 6],
    ['user', 2],
    ['broadcast', 1],
  ]);
  return obj({
    channel: audience === 'channel' ? rng.pick(PUBLISH_CHANNELS) : undefined,
    user: audience === 'user' ? rng.pick(USERS) : undefined,
    broadcast: audience === 'broadcast' ? true : undefined,
    filter: rng.chance(0.2) ? validFilter(rng) : undefined,
    eventType: EVENT,
    payload: rng.chance(0.1) ? 'p'.repeat(Math.floor(limit / 4)) : smallPayload(rng),
    msgId: rng.chance(0.3) ? `fh-${rng.int(1 << 30).toString(36)}` : undefined,
    source: rng.chance(0.2) ? 'fuzz-backend' : undefined,
    version: rng.chance(0.2) ? '3.1' : undefined,
    delivery: rng.chance(0.15) ? 'at-least-once' : undefined,
    receipts: rng.chance(0.05) ? true : undefined,
  });
}

function body(rng: Rng, route: Route, limit: number): JObj | undefined {
  switch (route) {
    case 'publish':
      return publishBody(rng, limit);
    case 'publish-batch':
      return obj({ messages: Array.from({ length: rng.pick([1, 2, 5, 20]) }, () => publishBody(rng, limit)) });
    case 'conn-request':
      return obj({ method: 'fuzz.call', data: smallPayload(rng), timeoutMs: rng.range(100, 1000) });
    case 'conn-disconnect':
    case 'user-disconnect':
      return rng.chance(0.2) ? undefined : obj({ reconnect: rng.chance(0.5), reason: rng.chance(0.5) ? 'fuzz' : undefined });
    case 'inbox-ack':
      return obj({ msgIds: [`fh-${rng.int(1000)}`, `fz-${rng.int(1000)}`] });
    default:
      return undefined;
  }
}

function pollQuery(rng: Rng, names: string[]): string {
  const parts: string[] = [];
  const n = rng.int(names.length + 2);
  for (let i = 0; i < n; i++) {
    const name = rng.chance(0.9) ? rng.pick(names) : rng.pick(['x', '__proto__', 'since[]', 'constructor', '']);
    let value = rng.pick(QUERY_VALUES);
    if (name === 'wait' && /^\d{4,}$/.test(value)) value = String(rng.int(300)); // bounded holds, mostly
    parts.push(rng.chance(0.05) ? name : `${name}=${value}`);
  }
  return parts.length > 0 ? `?${parts.join('&')}` : rng.chance(0.1) ? '?' : '';
}

/** A request for `route` with a valid body and credentials (the caller mutates it). */
export function baseRequest(rng: Rng, route: Route, creds: HttpCredentials, limit: number): { spec: HttpSpec; body: JObj | undefined } {
  const b = body(rng, route, limit);
  const param = (): string => (rng.chance(0.8) ? LIVE_CONNECTION : rng.pick(PATH_PARAMS));
  let method: 'GET' | 'POST' = 'POST';
  let path: string;
  let headers = apiHeaders(rng);
  let mayHoldMs = 0;
  switch (route) {
    case 'publish':
      path = rng.chance(0.1) ? '/api/v1/publish?via=fastify' : '/api/v1/publish';
      break;
    case 'publish-batch':
      path = '/api/v1/publish/batch';
      break;
    case 'conn-request':
      path = `/api/v1/connections/${param()}/request`;
      mayHoldMs = 121_000;
      break;
    case 'conn-disconnect':
      path = `/api/v1/connections/${param()}/disconnect`;
      break;
    case 'user-disconnect':
      path = `/api/v1/users/${rng.chance(0.7) ? rng.pick(USERS) : rng.pick(PATH_PARAMS)}/disconnect`;
      break;
    case 'inbox-ack':
      path = '/poll/v1/inbox/ack';
      headers = pollHeaders(rng, creds);
      break;
    case 'poll-channel':
      method = 'GET';
      path = `/poll/v1/channels/${rng.chance(0.8) ? rng.pick(PUBLISH_CHANNELS) : rng.pick(PATH_PARAMS)}/messages${pollQuery(rng, ['since', 'epoch', 'limit', 'wait'])}`;
      headers = pollHeaders(rng, creds);
      mayHoldMs = 31_000;
      break;
    case 'poll-inbox':
      method = 'GET';
      path = `/poll/v1/inbox${pollQuery(rng, ['after', 'limit'])}`;
      headers = pollHeaders(rng, creds);
      break;
    case 'api-get':
      method = 'GET';
      path = rng.pick([
        `/api/v1/channels${pollQuery(rng, ['prefix'])}`,
        `/api/v1/users/${rng.pick([...USERS, ...PATH_PARAMS])}/connections`,
        `/api/v1/messages/${rng.pick(['fh-1', ...PATH_PARAMS])}`,
        '/api/v1/stats',
        '/metrics',
        '/readyz',
      ]);
      break;
  }
  if (method === 'GET') delete headers['content-type'];
  const spec: HttpSpec = { label: `http:${route}`, method, path, headers, framing: rng.chance(0.5) ? 'length' : 'chunked', ...(mayHoldMs ? { mayHoldMs } : {}) };
  if (b) spec.body = Buffer.from(render(b));
  return { spec, body: b };
}

/** Mutations of the request as a whole: media type, framing, body encoding. */
function mutateEnvelope(rng: Rng, spec: HttpSpec): string {
  const op = rng.int(5);
  if (op === 0) {
    spec.headers['content-type'] = rng.pick(['text/plain', 'application/json; charset=latin1', 'APPLICATION/JSON', 'application/json, text/plain', 'application/x-www-form-urlencoded', '']);
    return `content-type(${spec.headers['content-type']})`;
  }
  if (op === 1) {
    delete spec.headers['content-type'];
    return 'no-content-type';
  }
  if (op === 2 && spec.body) {
    const m = mutateBytes(rng, spec.body);
    spec.body = m.bytes;
    return m.label;
  }
  if (op === 3) {
    spec.body = Buffer.alloc(0);
    return 'empty-body';
  }
  spec.body = Buffer.from(rng.pick(['null', '[]', '"x"', '1', '{}{}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}']));
  return `body(${spec.body.toString()})`;
}

/** A random HTTP input: a valid request, then up to two mutations; half the publishes go both ways. */
export function randomHttpInput(rng: Rng, limit: number, creds: HttpCredentials): HttpSpec[] {
  const route = rng.weighted<Route>([
    ['publish', 8],
    ['publish-batch', 2],
    ['conn-request', 2],
    ['conn-disconnect', 1],
    ['user-disconnect', 0.3],
    ['inbox-ack', 1],
    ['poll-channel', 2],
    ['poll-inbox', 1],
    ['api-get', 1],
  ]);
  const { spec, body: b } = baseRequest(rng, route, creds, limit);
  const labels: string[] = [];
  if (b && rng.chance(0.75)) {
    for (let i = rng.range(1, 2); i > 0; i--) labels.push(mutateValue(rng, b, limit));
    spec.body = Buffer.from(render(b));
  }
  if (rng.chance(0.15)) labels.push(mutateEnvelope(rng, spec));
  spec.label = `${spec.label}${labels.length ? ` ${labels.join(' ')}` : ''} [${spec.framing}]`;
  return route === 'publish' && spec.path === '/api/v1/publish' && rng.chance(0.5) ? bothPublishPaths(spec) : [spec];
}

/** Reasons that pass the schema's 120-character limit but not WebSocket's 123-byte close reason. */
const REASONS: Array<[string, string]> = [
  ['120-ascii', 'r'.repeat(120)],
  ['120-two-byte', '\u00e9'.repeat(120)],
  ['120-emoji', '\u{1F600}'.repeat(120)],
  ['lone-surrogate', 'a\uD800'],
];

/** The systematic HTTP cases: each route's fields with the main odd values, both framings for publish. */
export function* httpSweep(rng: Rng, limit: number, creds: HttpCredentials): Generator<HttpSpec> {
  const values = interestingValues(limit);
  const pick = ['null', '0', '-1', 'empty-string', 'half-limit-string', 'lone-high-surrogate', 'emoji', 'empty-object', 'proto-object', 'constructor-prototype', '1e999'];
  const choices = pick.map((name) => values.findIndex(([n]) => n === name));
  for (const route of ROUTES) {
    for (let variant = 0; variant < 2; variant++) {
      const { spec } = baseRequest(rng, route, creds, limit);
      spec.framing = variant === 0 ? 'length' : 'chunked';
      spec.label = `${spec.label} valid [${spec.framing}]`;
      yield spec;
    }
    const sample = body(rng, route, limit);
    if (!sample) continue;
    const fieldPaths = sample.entries.map(([k]) => [k]);
    const ops: Array<[ValueOp, number | undefined]> = [
      ...choices.map((c): [ValueOp, number] => ['replace', c]),
      ['remove', undefined],
      ...[65, 6000, 30000].map((d): [ValueOp, number] => ['deep', DEPTHS.indexOf(d)]),
      ...sizeTargets(limit).map((_, i): [ValueOp, number] => ['size', i]),
    ];
    for (const path of fieldPaths) {
      for (const [op, choice] of ops) {
        const { spec, body: b } = baseRequest(rng, route, creds, limit);
        if (!b || b.get(path[0]!) === undefined) continue;
        spec.headers = { ...spec.headers, authorization: route === 'inbox-ack' ? (spec.headers.authorization ?? `Bearer ${creds.userTokens[0]}`) : `Bearer ${FUZZ_API_KEY}` };
        const label = applyValueOp(rng, b, op, path, limit, choice);
        spec.body = Buffer.from(render(b));
        spec.label = `${spec.label} ${label}`;
        if (route === 'publish') yield* bothPublishPaths(spec);
        else yield spec;
      }
    }
  }
  for (const [name, reason] of REASONS) {
    const { spec } = baseRequest(rng, 'conn-disconnect', creds, limit);
    spec.path = `/api/v1/connections/${LIVE_CONNECTION}/disconnect`;
    spec.headers.authorization = `Bearer ${FUZZ_API_KEY}`;
    spec.body = Buffer.from(JSON.stringify({ reconnect: true, reason }));
    spec.label = `http:conn-disconnect reason(${name})`;
    yield spec;
  }
  for (const depth of [16, 17, 64, 6000]) {
    const { spec } = baseRequest(rng, 'publish', creds, limit);
    spec.headers.authorization = `Bearer ${FUZZ_API_KEY}`;
    spec.body = Buffer.from(render(obj({ broadcast: true, eventType: EVENT, payload: null, filter: new Deep(depth, 'object', obj({ tag: 'plan', op: 'eq', value: 'pro' }), 'not') })));
    spec.label = `http:publish filter:deep-not(${depth})`;
    yield spec;
  }
  {
    const { spec } = baseRequest(rng, 'publish-batch', creds, limit);
    spec.headers.authorization = `Bearer ${FUZZ_API_KEY}`;
    const wide = Array.from({ length: 256 }, (_, i) => obj({ tag: `t${i}`, op: 'ne', value: i }));
    spec.body = Buffer.from(render(obj({ messages: Array.from({ length: 100 }, () => obj({ broadcast: true, eventType: EVENT, payload: 1, filter: obj({ or: wide }) })) })));
    spec.label = 'http:publish-batch 100x filter(256 terms)';
    yield spec;
  }
  for (const [label, raw] of [
    ['over-body-limit', Buffer.alloc(Math.max(1 << 20, limit * 4) + 1, 0x20)],
    ['deep-payload-30000', Buffer.from(`{"channel":"fuzz:a","eventType":"x","payload":${'['.repeat(30000)}${']'.repeat(30000)}}`)],
  ] as const) {
    const { spec } = baseRequest(rng, 'publish', creds, limit);
    spec.headers = { 'content-type': 'application/json', authorization: `Bearer ${FUZZ_API_KEY}` };
    spec.body = raw;
    spec.label = `http:publish ${label}`;
    yield* bothPublishPaths(spec);
  }
}

/** Turns a spec into the path actually sent (LIVE_CONNECTION resolved). */
export function resolvePath(path: string, liveConnection: string | undefined): string {
  return path.includes(LIVE_CONNECTION) ? path.replace(LIVE_CONNECTION, encodeURIComponent(liveConnection ?? 'no-live-connection')) : path;
}
