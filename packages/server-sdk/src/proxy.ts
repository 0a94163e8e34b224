/**
 * Answering Herald's proxy hooks (docs/integration.md) from a Node backend: typed requests, a
 * parser that refuses bodies that are not a hook request, answer builders with the shapes Herald
 * validates (packages/server/api/proxy.schema.json), and one handler usable from node:http,
 * express (with or without a JSON body parser before it) and — through `answerProxyRequest` —
 * fastify or anything else.
 *
 * A handler answers with a builder's value, or throws: a HeraldError becomes `{error}` with its
 * code, message and `temporary` (the client sees exactly that); anything else becomes HTTP 500,
 * which Herald reports to the client as `backend_unavailable` (temporary).
 *
 * Given `secrets` (Herald's `proxy.signing.secrets`), a request is answered only when its
 * `Herald-Signature` verifies over `<t>.proxy.<raw body>` within the tolerance; otherwise HTTP 401,
 * which Herald reports as `backend_error`. Anyone who can reach the hook URL could otherwise post a
 * hook request naming any `user`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Tags } from '@herald/protocol';
import { HeraldError, ServerSdkErrorCode } from './errors.js';
import { checkSignature, secretMap, type HeadersLike, type SignatureRefusal, type SigningSecrets, type VerifySignatureOptions } from './signature.js';

/** What Herald's MAC over a hook request covers after `<t>.`, before the body. */
const PROXY_DOMAIN = 'proxy.';

export type ProxyHook = 'connect' | 'subscribe' | 'publish' | 'rpc' | 'refresh';

/** Fields of every hook request. */
export interface ProxyRequestBase {
  hook: ProxyHook;
  /** The Herald node asking. */
  node: string;
  connectionId: string;
  remoteAddress: string;
  /** The connection's user (`""` anonymous); absent in `connect`. */
  user?: string;
  /** Upgrade headers listed in Herald's `proxy.headers` (lower-case names). */
  headers?: Record<string, string>;
  /** Upgrade cookies listed in Herald's `proxy.cookies`. */
  cookies?: Record<string, string>;
  /** What the connect (or refresh) hook answered as `info`. */
  info?: unknown;
}

export interface ConnectRequest extends ProxyRequestBase {
  hook: 'connect';
  client?: string;
  /** With `proxy.connect.always`: the connection token, already verified by Herald. */
  token?: string;
}
export interface SubscribeRequest extends ProxyRequestBase {
  hook: 'subscribe';
  user: string;
  channel: string;
}
export interface PublishRequest extends ProxyRequestBase {
  hook: 'publish';
  user: string;
  channel: string;
  eventType: string;
  payload: unknown;
  msgId?: string;
  version?: string;
}
export interface RpcRequest extends ProxyRequestBase {
  hook: 'rpc';
  user: string;
  method: string;
  data?: unknown;
}
export interface RefreshRequest extends ProxyRequestBase {
  hook: 'refresh';
  user: string;
  expiresAt?: number;
}
export type ProxyRequest = ConnectRequest | SubscribeRequest | PublishRequest | RpcRequest | RefreshRequest;

/** What a connect answer says about the connection: a token's claims, plus `info`. */
export interface ConnectResult {
  user: string;
  /** Seconds since the epoch. */
  expiresAt?: number;
  /** Channel patterns the connection may subscribe to. */
  channels?: string[];
  /** Channel patterns the connection may publish to. */
  publish?: string[];
  tags?: Tags;
  /** Kept with the connection and sent back in every later hook request. */
  info?: unknown;
}
export type RefreshResult = Omit<ConnectResult, 'user'> & { expiresAt: number };

export interface ProxyRefusal {
  error: { code: string; message: string; temporary?: boolean };
}
export interface ProxyDisconnect {
  disconnect: { code: number; reason: string };
}
type Answer<R> = { result: R } | ProxyRefusal | ProxyDisconnect;
export type ConnectAnswer = Answer<ConnectResult>;
export type SubscribeAnswer = Answer<{ info?: unknown }>;
export type PublishAnswer = Answer<{ payload?: unknown }>;
export type RpcAnswer = Answer<{ data?: unknown }>;
export type RefreshAnswer = Answer<RefreshResult>;

type Awaitable<T> = T | Promise<T>;
export interface ProxyHandlers {
  connect?(req: ConnectRequest): Awaitable<ConnectAnswer>;
  subscribe?(req: SubscribeRequest): Awaitable<SubscribeAnswer>;
  publish?(req: PublishRequest): Awaitable<PublishAnswer>;
  rpc?(req: RpcRequest): Awaitable<RpcAnswer>;
  refresh?(req: RefreshRequest): Awaitable<RefreshAnswer>;
}

const CODE = /^[a-z][a-z0-9_]{0,63}$/;

/** Builders of every answer Herald accepts. */
export const proxyAnswer = {
  /** `connect`: who the connection is and what it may do. */
  connect: (result: ConnectResult): ConnectAnswer => ({ result }),
  /** `subscribe`: allowed; `info` is shown to the channel's members as this subscription's `channelInfo` (presence). */
  allow: (info?: unknown): SubscribeAnswer => ({ result: info === undefined ? {} : { info } }),
  /** `publish`: allowed, with the payload as sent or replaced by `payload`. */
  publish: (...payload: [unknown?]): PublishAnswer => ({ result: payload.length > 0 ? { payload: payload[0] } : {} }),
  /** `rpc`: the response's data. */
  rpc: (data?: unknown): RpcAnswer => ({ result: data === undefined ? {} : { data } }),
  /** `refresh`: the new expiry, rights and tags. */
  refresh: (result: RefreshResult): RefreshAnswer => ({ result }),
  /** Any hook: refused with this code (lower-case `[a-z][a-z0-9_]*`, ≤ 64) and message. */
  refuse(code: string, message: string, options: { temporary?: boolean } = {}): ProxyRefusal {
    if (!CODE.test(code)) throw new HeraldError(ServerSdkErrorCode.INVALID_ARGUMENT, `refusal code ${JSON.stringify(code)} must match ${CODE.source}`);
    return { error: { code, message: message.slice(0, 1024), ...(options.temporary ? { temporary: true } : {}) } };
  },
  /** Any hook: end the connection with this close code (4000–4499 reconnect, 4500–4999 not). */
  disconnect(code: number, reason: string): ProxyDisconnect {
    if (!Number.isInteger(code) || code < 4000 || code > 4999) throw new HeraldError(ServerSdkErrorCode.INVALID_ARGUMENT, `disconnect code ${code} must be an integer in 4000–4999`);
    return { disconnect: { code, reason: reason.slice(0, 120) } };
  },
};

const str = (v: unknown): v is string => typeof v === 'string';
const REQUIRED: Record<ProxyHook, Record<string, (v: unknown) => boolean>> = {
  connect: {},
  subscribe: { user: str, channel: str },
  publish: { user: str, channel: str, eventType: str, payload: () => true },
  rpc: { user: str, method: str },
  refresh: { user: str },
};

/** Parses a hook request body (a string, a Buffer or an already parsed object); throws `invalid_argument` for anything else. */
export function parseProxyRequest(body: unknown): ProxyRequest {
  let value = body;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    try {
      value = JSON.parse(typeof value === 'string' ? value : Buffer.from(value).toString('utf8'));
    } catch {
      throw bad('the body is not JSON');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('the body is not a JSON object');
  const v = value as Record<string, unknown>;
  const hook = v.hook;
  if (typeof hook !== 'string' || !(hook in REQUIRED)) throw bad(`"hook" is not one of ${Object.keys(REQUIRED).join(', ')}`);
  for (const field of ['node', 'connectionId', 'remoteAddress']) if (!str(v[field])) throw bad(`"${field}" must be a string`);
  for (const [field, check] of Object.entries(REQUIRED[hook as ProxyHook])) if (!(field in v) || !check(v[field])) throw bad(`a ${hook} request needs "${field}"`);
  return v as unknown as ProxyRequest;
}

/** The secrets a backend accepts hook requests signed with, by key id (Herald's `proxy.signing.secrets`). */
export type ProxySecrets = SigningSecrets;

export type VerifyProxyRequestOptions = VerifySignatureOptions;

/** Why a hook request was not accepted: its signature, or (signed, yet) not a hook request. */
export type ProxySignatureRefusal = SignatureRefusal | 'malformed_request';

export type VerifyProxyRequestResult = { ok: true; request: ProxyRequest; kid: string; timestamp: number } | { ok: false; reason: ProxySignatureRefusal };

/**
 * Checks a hook request's `Herald-Signature` (over `<t>.proxy.<raw body>`) and age; on success
 * returns the parsed request. Pass the body exactly as received, before any JSON parsing. Never
 * throws for a bad request (the reason says what was wrong); throws only for bad `secrets`.
 */
export function verifyProxyRequest(headers: HeadersLike, rawBody: string | Uint8Array, secrets: ProxySecrets, options: VerifyProxyRequestOptions = {}): VerifyProxyRequestResult {
  const check = checkSignature(headers, rawBody, secretMap(secrets, 'verifyProxyRequest'), PROXY_DOMAIN, options);
  if (!check.ok) return check;
  let request: ProxyRequest;
  try {
    request = parseProxyRequest(check.body);
  } catch {
    return { ok: false, reason: 'malformed_request' };
  }
  return { ok: true, request, kid: check.kid, timestamp: check.timestamp };
}

/** With secrets, `answerProxyRequest` answers only requests signed with one of them. */
export interface AnswerProxyRequestOptions extends VerifyProxyRequestOptions {
  /** The request's headers (for `Herald-Signature`). */
  headers: HeadersLike;
  secrets: ProxySecrets;
}

interface Verification extends VerifyProxyRequestOptions {
  headers: HeadersLike;
  known: ReadonlyMap<string, string>;
}

/**
 * Answers one hook request body with `handlers`: the HTTP status and JSON body to send. 400 for a
 * body that is not a hook request, 404 for a hook without a handler, 500 for a handler that threw
 * something other than a HeraldError. With `options.secrets`: 401 for a request whose signature
 * does not verify, and 500 when `body` is already parsed — the signature covers the exact bytes
 * Herald sent, which a re-serialisation need not reproduce, so that is refused rather than guessed.
 */
export async function answerProxyRequest(handlers: ProxyHandlers, body: unknown, options?: AnswerProxyRequestOptions): Promise<{ status: number; body: unknown }> {
  const verify = options && { ...options, known: secretMap(options.secrets, 'answerProxyRequest') };
  return answer(handlers, body, verify);
}

async function answer(handlers: ProxyHandlers, body: unknown, verify: Verification | undefined): Promise<{ status: number; body: unknown }> {
  if (verify) {
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) return { status: 500, body: { error: { code: 'raw_body_required', message: RAW_BODY_REQUIRED } } };
    const check = checkSignature(verify.headers, body, verify.known, PROXY_DOMAIN, verify);
    if (!check.ok) return { status: 401, body: { error: { code: 'invalid_signature', message: `not a request signed by Herald: ${check.reason}` } } };
  }
  let req: ProxyRequest;
  try {
    req = parseProxyRequest(body);
  } catch (err) {
    return { status: 400, body: { error: { code: 'bad_request', message: (err as Error).message } } };
  }
  const handler = handlers[req.hook] as ((r: ProxyRequest) => Awaitable<unknown>) | undefined;
  if (!handler) return { status: 404, body: { error: { code: 'not_found', message: `no handler for the ${req.hook} hook` } } };
  try {
    return { status: 200, body: await handler.call(handlers, req) };
  } catch (err) {
    if (err instanceof HeraldError || (err instanceof Error && err.name === 'HeraldError')) {
      const e = err as HeraldError;
      const code = CODE.test(String(e.code)) ? String(e.code) : 'refused';
      return { status: 200, body: { error: { code, message: e.message.slice(0, 1024), ...(e.temporary ? { temporary: true } : {}) } } };
    }
    return { status: 500, body: { error: { code: 'internal', message: 'the hook handler failed' } } };
  }
}

const RAW_BODY_REQUIRED = 'the raw request body is needed to verify Herald-Signature, but only a parsed body was given: mount the hook route before any JSON body parser, use a raw one (express.raw), or keep the raw bytes as req.rawBody';

export interface ProxyHandlerOptions {
  /** Largest request body read (default 1 MiB); a longer one is answered 413. */
  maxBodyBytes?: number;
  /** Called with what a handler threw that was not a HeraldError (it was answered 500). */
  onError?: (err: unknown) => void;
  /** Herald's `proxy.signing.secrets`: answer only requests signed with one of them (401 otherwise). */
  secrets?: ProxySecrets;
  /** With `secrets`: largest accepted distance between the signature's time and now, in seconds. Default 300. */
  toleranceSec?: number;
}

/**
 * A `(req, res)` handler for node:http and express. With a raw body parser in front, its bytes are
 * used; with a JSON one, `req.rawBody` when the app kept it, else the parsed `req.body` — which,
 * with `secrets`, is answered 500 (`raw_body_required`) since it cannot be verified; with none,
 * the body is read here.
 */
export function proxyHandler(handlers: ProxyHandlers, options: ProxyHandlerOptions = {}): (req: IncomingMessage & { body?: unknown; rawBody?: unknown }, res: ServerResponse) => void {
  const max = options.maxBodyBytes ?? 1024 * 1024;
  const guarded: ProxyHandlers = options.onError ? withErrorReport(handlers, options.onError) : handlers;
  // Checked here, so a handler given an empty list fails at start-up instead of answering unsigned requests.
  const known = options.secrets === undefined ? undefined : secretMap(options.secrets, 'proxyHandler');
  const toleranceSec = options.toleranceSec;
  return (req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { error: { code: 'method_not_allowed', message: 'hooks are POSTed' } });
    const verify: Verification | undefined = known && { headers: req.headers, known, ...(toleranceSec === undefined ? {} : { toleranceSec }) };
    const reply = (body: unknown): void => {
      if (verify && typeof body !== 'string' && !(body instanceof Uint8Array)) options.onError?.(new TypeError(`proxyHandler: ${RAW_BODY_REQUIRED}`));
      answer(guarded, body, verify).then(
        (a) => send(a.status, a.body),
        () => send(500, { error: { code: 'internal', message: 'the hook handler failed' } }),
      );
    };
    const isRaw = (v: unknown): v is string | Uint8Array => typeof v === 'string' || v instanceof Uint8Array;
    // A body parser already consumed the stream: what it left is all there is to read.
    if (req.body !== undefined) return reply(isRaw(req.body) ? req.body : isRaw(req.rawBody) ? req.rawBody : req.body);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        send(413, { error: { code: 'message_too_large', message: `the body is larger than ${max} bytes` } });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size <= max) reply(Buffer.concat(chunks));
    });
  };
}

function withErrorReport(handlers: ProxyHandlers, onError: (err: unknown) => void): ProxyHandlers {
  const out: Record<string, unknown> = {};
  for (const [hook, fn] of Object.entries(handlers) as Array<[string, (r: ProxyRequest) => unknown]>) {
    out[hook] = async (r: ProxyRequest) => {
      try {
        return await fn.call(handlers, r);
      } catch (err) {
        if (!(err instanceof HeraldError) && !(err instanceof Error && err.name === 'HeraldError')) onError(err);
        throw err;
      }
    };
  }
  return out as ProxyHandlers;
}

function bad(why: string): HeraldError {
  return new HeraldError(ServerSdkErrorCode.INVALID_ARGUMENT, `not a Herald hook request: ${why}`);
}
