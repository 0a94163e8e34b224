import type { Link } from './connection.js';
import { ClientErrorCode, HeraldError, toHeraldError } from './errors.js';

export interface TokenRefresherOptions {
  getToken: () => string | Promise<string>;
  /** How long before `expiresAt` to refresh, at most (never earlier than half the remaining life). */
  aheadMs: number;
  /** The new token is in force on the server until `expiresAt`. */
  onRefreshed(token: string, expiresAt: number | undefined): void;
  onError(err: HeraldError): void;
}

/**
 * Keeps one connection's token fresh in band: before `expiresAt` it calls `getToken()` and sends a
 * `refresh` frame, then waits for the next expiry. One timer per connection, cancelled when the
 * link goes down; a failed refresh is reported and left to the server's close at expiry (4006),
 * after which the reconnect loop asks `getToken()` again.
 */
export class TokenRefresher {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #link: Link | undefined;

  constructor(private readonly o: TokenRefresherOptions) {}

  /** Plans the refresh of the token in force on `link`, which expires at `expiresAt` (seconds). */
  schedule(link: Link, expiresAt: number | undefined): void {
    this.cancel();
    if (expiresAt === undefined) return;
    this.#link = link;
    const remaining = expiresAt * 1000 - Date.now();
    const delay = Math.max(0, remaining - Math.min(this.o.aheadMs, remaining / 2));
    this.#timer = setTimeout(() => void this.#refresh(link), Math.min(delay, 2 ** 31 - 1));
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#link = undefined;
  }

  async #refresh(link: Link): Promise<void> {
    this.#timer = undefined;
    let token: unknown;
    try {
      token = await this.o.getToken();
    } catch (err) {
      this.o.onError(new HeraldError(ClientErrorCode.TOKEN_REFRESH_FAILED, `getToken() failed: ${err instanceof Error ? err.message : String(err)}`, err));
      return;
    }
    if (typeof token !== 'string' || token === '') {
      this.o.onError(new HeraldError(ClientErrorCode.TOKEN_REFRESH_FAILED, 'getToken() must return a non-empty string'));
      return;
    }
    if (this.#link !== link || !link.isOpen) return;
    const fresh = token;
    link.call(
      (id) => ({ type: 'refresh', id, token: fresh }),
      (reply) => {
        if (reply instanceof HeraldError) {
          if (reply.code !== ClientErrorCode.CONNECTION_LOST) this.o.onError(toHeraldError(reply, ClientErrorCode.TOKEN_REFRESH_FAILED));
          return;
        }
        if (reply.type !== 'refreshed') return;
        this.o.onRefreshed(fresh, reply.expiresAt);
        if (this.#link === link) this.schedule(link, reply.expiresAt);
      },
    );
  }
}
