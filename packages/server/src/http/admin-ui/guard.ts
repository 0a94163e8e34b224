/**
 * Who may use the admin UI, and how a request proves it: the login credential (the password of
 * `admin.ui.passwordHash`, or an admin-scope key of `api.keys` when `admin.ui.apiKeyLogin` is on),
 * login attempts per client address (and for all addresses together, so a spread-out guesser is
 * slowed too), the session cookie, and the CSRF rule for state-changing calls.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import type { HeraldConfig } from '../../config-types.generated.js';
import { HeraldError } from '../../errors.js';
import { KeyedBuckets } from '../../rate-limit/token-bucket.js';
import { ApiKeyring } from '../api-key.js';
import { parsePasswordHash, verifyPassword } from './password.js';
import { csrfMatches, SessionStore, type AdminSession } from './sessions.js';

export const COOKIE = 'herald_admin';
export const CSRF_HEADER = 'x-herald-csrf';
/** Client addresses whose login attempts are counted at once; past it the oldest are forgotten. */
const MAX_LOGIN_KEYS = 10_000;

type UiConfig = HeraldConfig['admin']['ui'];

export class AdminGuard {
  readonly sessions: SessionStore;
  private readonly keyring: ApiKeyring | undefined;
  private readonly hash: ReturnType<typeof parsePasswordHash> | undefined;
  private readonly perAddress: KeyedBuckets;
  private readonly overall: KeyedBuckets;

  constructor(private readonly ui: UiConfig, apiKeys: HeraldConfig['api']['keys'], clock: () => number = Date.now) {
    this.sessions = new SessionStore({ ttlMs: ui.sessionTtlMs, idleMs: ui.idleTimeoutMs, maxSessions: ui.maxSessions }, clock);
    this.keyring = ui.apiKeyLogin ? new ApiKeyring(apiKeys) : undefined;
    this.hash = ui.passwordHash ? parsePasswordHash(ui.passwordHash) : undefined;
    const perMinute = ui.loginAttemptsPerMinute;
    this.perAddress = new KeyedBuckets({ burst: perMinute, perMs: perMinute / 60_000 }, MAX_LOGIN_KEYS, clock);
    this.overall = new KeyedBuckets({ burst: perMinute * 10, perMs: (perMinute * 10) / 60_000 }, 1, clock);
  }

  /**
   * Checks a login: rate limit first (an attempt counts whether it succeeds or not), then the
   * credential. Resolves with how the user logged in; throws rate_limited or admin_login_failed.
   */
  async login(address: string, credential: string): Promise<string> {
    const wait = Math.max(this.perAddress.take(address), this.overall.take('*'));
    if (wait > 0) {
      throw new HeraldError(ErrorCode.RATE_LIMITED, `too many admin login attempts; retry in ${wait} ms`, { limit: 'admin.ui.loginAttemptsPerMinute', retryAfterMs: wait });
    }
    // Both checks always run, so the answer's timing does not tell which kind of credential was right.
    const keyGrant = this.keyring?.find(credential);
    const passwordOk = this.hash && typeof this.hash !== 'string' ? await verifyPassword(this.hash, credential) : false;
    if (passwordOk) return 'password';
    if (keyGrant?.scope === 'admin') return 'api-key';
    throw new HeraldError(ErrorCode.ADMIN_LOGIN_FAILED);
  }

  /** The session of a request's cookie; throws admin_login_required. */
  session(req: FastifyRequest): AdminSession {
    const s = this.sessions.get(cookieValue(req.headers.cookie, COOKIE));
    if (!s) throw new HeraldError(ErrorCode.ADMIN_LOGIN_REQUIRED);
    return s;
  }

  /**
   * The CSRF rule of a state-changing request: a same-origin browser context (Origin, when sent,
   * is this server; Sec-Fetch-Site, when sent, is same-origin) and, with a session, its token in
   * the X-Herald-CSRF header. Throws admin_csrf.
   */
  checkCsrf(req: FastifyRequest, session: AdminSession | undefined): void {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') throw new HeraldError(ErrorCode.ADMIN_CSRF, `Sec-Fetch-Site is ${String(site)}`);
    // The host name only: a proxy may pass Host without the public port (nginx's $host), and the
    // port is no boundary for cookies anyway — the token below is what ties a call to the session.
    const origin = req.headers.origin;
    if (origin !== undefined && originHost(origin) !== req.hostname) throw new HeraldError(ErrorCode.ADMIN_CSRF, `Origin ${origin} is not this server`);
    const token = req.headers[CSRF_HEADER];
    if (session && !csrfMatches(session, Array.isArray(token) ? token[0] : token)) throw new HeraldError(ErrorCode.ADMIN_CSRF);
    // Before login there is no token yet: the custom header must still be there, which a
    // cross-site form cannot send and a cross-site fetch cannot send without a preflight we refuse.
    if (!session && token === undefined) throw new HeraldError(ErrorCode.ADMIN_CSRF, `send the ${CSRF_HEADER} header`);
  }

  /** Sets the session cookie: HttpOnly, SameSite=Strict, Path=/admin, Secure over TLS (or as configured). */
  setCookie(req: FastifyRequest, reply: FastifyReply, id: string): void {
    void reply.header('set-cookie', `${COOKIE}=${id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(this.ui.sessionTtlMs / 1000)}${this.secure(req) ? '; Secure' : ''}`);
  }

  clearCookie(req: FastifyRequest, reply: FastifyReply): void {
    void reply.header('set-cookie', `${COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0${this.secure(req) ? '; Secure' : ''}`);
  }

  cookieOf(req: FastifyRequest): string | undefined {
    return cookieValue(req.headers.cookie, COOKIE);
  }

  /** `req.protocol` is https over TLS, or behind server.trustProxy hops that say X-Forwarded-Proto: https. */
  private secure(req: FastifyRequest): boolean {
    return this.ui.secureCookie === 'always' || (this.ui.secureCookie === 'auto' && req.protocol === 'https');
  }
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).hostname;
  } catch {
    return undefined;
  }
}

/** One cookie's value from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
