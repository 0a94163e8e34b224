/**
 * The admin UI's sessions, held in this node's memory (a session is valid on the node that issued
 * it; behind a load balancer, pin /admin to one node). Contract:
 * - an id is 32 random bytes; the store keeps only its SHA-256, so neither a heap dump nor the
 *   timing of a map lookup gives a usable id away;
 * - a session ends at `ttlMs` after login whatever happens, or `idleMs` after its last use;
 * - at most `maxSessions` live at once: a new login evicts the least recently used one;
 * - each session has its own CSRF token, compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface AdminSession {
  readonly csrf: string;
  /** How the session was opened: `password` or `api-key`. */
  readonly via: string;
  readonly createdAt: number;
  lastUsed: number;
}

export interface SessionLimits {
  ttlMs: number;
  idleMs: number;
  maxSessions: number;
}

const digest = (id: string): string => createHash('sha256').update(id).digest('base64url');

export class SessionStore {
  // Insertion order is recency order: `get` moves a session to the end.
  private readonly sessions = new Map<string, AdminSession>();

  constructor(private readonly limits: SessionLimits, private readonly clock: () => number = Date.now) {}

  /** Opens a session; returns the id for the cookie (never stored) and the session. */
  create(via: string): { id: string; session: AdminSession } {
    const now = this.clock();
    this.expire(now);
    while (this.sessions.size >= this.limits.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const session: AdminSession = { csrf: randomBytes(24).toString('base64url'), via, createdAt: now, lastUsed: now };
    this.sessions.set(digest(id), session);
    return { id, session };
  }

  /** The live session of a cookie value, its idle clock restarted; undefined when unknown or expired. */
  get(id: string | undefined): AdminSession | undefined {
    if (!id || id.length > 128) return undefined;
    const key = digest(id);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    const now = this.clock();
    this.sessions.delete(key);
    if (this.expired(s, now)) return undefined;
    s.lastUsed = now;
    this.sessions.set(key, s);
    return s;
  }

  /** Ends a session (logout). */
  delete(id: string | undefined): void {
    if (id) this.sessions.delete(digest(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  private expired(s: AdminSession, now: number): boolean {
    return now - s.createdAt >= this.limits.ttlMs || now - s.lastUsed >= this.limits.idleMs;
  }

  private expire(now: number): void {
    for (const [key, s] of this.sessions) if (this.expired(s, now)) this.sessions.delete(key);
  }
}

/** Whether `given` is the session's CSRF token, in constant time. */
export function csrfMatches(session: AdminSession, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
