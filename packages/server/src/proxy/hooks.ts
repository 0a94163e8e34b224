/**
 * The five proxy hooks as the rest of the server sees them: which hook applies to what (global
 * URLs, per-namespace overrides for subscribe and publish), the request body each one sends, and
 * what an answer does to the connection. Transport, limits and the answer's schema are the
 * caller's (caller.ts). A `{disconnect}` answer closes the connection here, with the backend's
 * code, whichever hook it came from; the hook then throws so its frame gets no reply.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode } from '@herald/protocol';
import type { Tags } from '@herald/protocol';
import type { Identity } from '../auth.js';
import { ChannelPatterns, namespaceOf } from '../channels.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';
import { oversizedInfo } from '../info-claim.js';
import type { Session } from '../session.js';
import { ProxyCaller, type CallObserver, type HookAnswer, type HookName, type HookTarget } from './caller.js';

type ProxyConfig = HeraldConfig['proxy'];

/** What the connection brought at upgrade and what the connect hook said about it. */
interface ConnectionContext {
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
  info?: unknown;
}

interface ConnectResult {
  user: string;
  expiresAt?: number;
  channels?: string[];
  publish?: string[];
  tags?: Tags;
  info?: unknown;
}

export type RefreshResult = Omit<ConnectResult, 'user'> & { expiresAt: number };

export class ProxyHooks {
  private readonly caller: ProxyCaller;
  private readonly contexts = new WeakMap<Session, ConnectionContext>();
  private readonly headerNames: string[];
  private readonly cookieNames: Set<string>;
  private readonly maxInfoBytes: number;

  constructor(
    private readonly cfg: Readonly<ProxyConfig>,
    private readonly namespaces: Readonly<HeraldConfig['channels']['namespaces']>,
    private readonly nodeName: string,
    observe: CallObserver | undefined,
    limits: {
      /** Bound on an answer's `info`, the same as on a token's `info` claim (`auth.jwt.maxInfoBytes`). */
      maxInfoBytes: number;
      /** `limits.maxJsonDepth`, applied to answers as to client input. */
      maxJsonDepth: number;
    },
  ) {
    this.maxInfoBytes = limits.maxInfoBytes;
    this.caller = new ProxyCaller({ ...cfg, maxJsonDepth: limits.maxJsonDepth }, observe, cfg.signing.secrets);
    this.headerNames = cfg.headers.map((h) => h.toLowerCase());
    this.cookieNames = new Set(cfg.cookies);
  }

  /** Hook requests waiting on backends now. */
  get pending(): number {
    return this.caller.pending;
  }

  /** Whether the connect hook decides a connect with (`hasToken`) or without a token. */
  decidesConnect(hasToken: boolean): boolean {
    return this.cfg.connect.url !== '' && (!hasToken || this.cfg.connect.always);
  }

  get refreshEnabled(): boolean {
    return this.cfg.refresh.url !== '';
  }

  get refreshAheadMs(): number {
    return this.cfg.refresh.aheadMs;
  }

  get rpcEnabled(): boolean {
    return this.cfg.rpc.url !== '';
  }

  /** Keeps the allow-listed headers and cookies of a connection's upgrade request for its hooks. */
  rememberUpgrade(session: Session, headers: IncomingHttpHeaders): void {
    if (this.headerNames.length === 0 && this.cookieNames.size === 0) return;
    const ctx: ConnectionContext = {};
    for (const name of this.headerNames) {
      const v = headers[name];
      if (v !== undefined) (ctx.headers ??= {})[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    if (this.cookieNames.size > 0 && typeof headers.cookie === 'string') {
      for (const part of headers.cookie.split(';')) {
        const eq = part.indexOf('=');
        if (eq < 0) continue;
        const name = part.slice(0, eq).trim();
        if (this.cookieNames.has(name)) (ctx.cookies ??= {})[name] = part.slice(eq + 1).trim();
      }
    }
    this.contexts.set(session, ctx);
  }

  /** The identity the connect hook gives this connection; refusals throw (see `connectCloseCode`). */
  async connect(session: Session, frame: { client?: string }, token: string | undefined): Promise<Identity> {
    const body = { ...this.common('connect', session), ...(frame.client ? { client: frame.client } : {}), ...(token ? { token } : {}) };
    const r = this.settle(session, await this.caller.call<ConnectResult>('connect', this.target('connect'), body, session));
    const info = this.boundedInfo('connect', r.info);
    const ctx = this.contexts.get(session) ?? {};
    if (info !== undefined) ctx.info = info;
    this.contexts.set(session, ctx);
    // The hook's `info` is also what channel members see through presence, as a token's would be.
    return identityOf(r.user, r, info);
  }

  /** The subscribe hook configured for this channel's namespace, if any. */
  subscribeTarget(channel: string): HookTarget | undefined {
    return this.namespaced('subscribe', channel);
  }

  /** Allows the subscription (or throws the refusal); resolves the per-channel `info` the backend attached, if any. */
  async subscribe(session: Session, channel: string, target: HookTarget): Promise<unknown> {
    const r = this.settle(session, await this.caller.call<{ info?: unknown }>('subscribe', target, { ...this.common('subscribe', session), channel }, session));
    return this.boundedInfo('subscribe', r.info);
  }

  publishTarget(channel: string): HookTarget | undefined {
    return this.namespaced('publish', channel);
  }

  /** Returns the payload to publish (the backend's rewrite, or the client's), or throws the refusal. */
  async publish(session: Session, frame: { channel: string; eventType: string; payload: unknown; msgId?: string; version?: string }, target: HookTarget): Promise<unknown> {
    const body = {
      ...this.common('publish', session),
      channel: frame.channel,
      eventType: frame.eventType,
      payload: frame.payload,
      ...(frame.msgId ? { msgId: frame.msgId } : {}),
      ...(frame.version ? { version: frame.version } : {}),
    };
    const r = this.settle(session, await this.caller.call<{ payload?: unknown }>('publish', target, body, session));
    return 'payload' in r ? r.payload : frame.payload;
  }

  /** The backend's `data` for a client request the server has no handler of its own for. */
  async rpc(session: Session, method: string, data: unknown): Promise<unknown> {
    const body = { ...this.common('rpc', session), method, ...(data !== undefined ? { data } : {}) };
    return this.settle(session, await this.caller.call<{ data?: unknown }>('rpc', this.target('rpc'), body, session)).data;
  }

  /** Fresh credentials for a connection whose token nears expiry, as an identity of the same user. */
  async refresh(session: Session): Promise<Identity> {
    const expiresAt = session.identity?.expiresAt;
    const body = { ...this.common('refresh', session), ...(expiresAt !== undefined ? { expiresAt } : {}) };
    const r = this.settle(session, await this.caller.call<RefreshResult>('refresh', this.target('refresh'), body, session));
    // An answer without `info` keeps the connection's.
    const info = this.boundedInfo('refresh', r.info) ?? session.identity?.info;
    if (info !== undefined) this.contexts.set(session, { ...this.contexts.get(session), info });
    return identityOf(session.user, r, info);
  }

  /** An answer's `info`, held to the bound of a token's `info` claim. */
  private boundedInfo(hook: HookName, info: unknown): unknown {
    if (info === undefined) return undefined;
    const size = oversizedInfo(info, this.maxInfoBytes);
    if (size !== undefined) throw new HeraldError(ErrorCode.BACKEND_ERROR, `${hook} hook: its "info" is ${size} bytes of JSON, more than auth.jwt.maxInfoBytes (${this.maxInfoBytes})`);
    return info;
  }

  private common(hook: HookName, session: Session): Record<string, unknown> {
    const ctx = this.contexts.get(session);
    return {
      hook,
      node: this.nodeName,
      connectionId: session.id,
      remoteAddress: session.transport.remoteAddress,
      ...(session.identity ? { user: session.user } : {}),
      ...(ctx?.headers ? { headers: ctx.headers } : {}),
      ...(ctx?.cookies ? { cookies: ctx.cookies } : {}),
      ...(ctx?.info !== undefined ? { info: ctx.info } : {}),
    };
  }

  private target(hook: 'connect' | 'rpc' | 'refresh'): HookTarget {
    return this.cfg[hook];
  }

  private namespaced(hook: 'subscribe' | 'publish', channel: string): HookTarget | undefined {
    const own = this.namespaces[namespaceOf(channel)]?.proxy?.[hook];
    if (own) return { url: own.url, timeoutMs: own.timeoutMs ?? this.cfg[hook].timeoutMs };
    return this.cfg[hook].url ? this.cfg[hook] : undefined;
  }

  /** A result, or — for `{disconnect}` — the connection closed with the backend's code and a throw. */
  private settle<R>(session: Session, answer: HookAnswer<R>): R {
    if (answer.kind === 'result') return answer.result;
    session.close(answer.code, answer.reason);
    throw new HeraldError(ErrorCode.UNAUTHORIZED, `disconnected by the backend: ${answer.reason}`);
  }
}

function identityOf(user: string, r: Omit<ConnectResult, 'user'>, info: unknown): Identity {
  return {
    user,
    expiresAt: r.expiresAt,
    subscribe: new ChannelPatterns(r.channels ?? []),
    publish: new ChannelPatterns(r.publish ?? []),
    tags: r.tags ?? {},
    ...(info !== undefined ? { info } : {}),
  };
}
