/**
 * Who a connecting client is: its token verified, the connect hook's answer (for connects without
 * a token, or every connect with `proxy.connect.always`), or the anonymous identity when
 * `auth.anonymous` allows it — and the close code a refusal ends the connection with.
 */
import { CloseCode, ErrorCode } from '@herald/protocol';
import type { Identity, TokenVerifier } from '../auth.js';
import { HeraldError } from '../errors.js';
import type { Session } from '../session.js';
import type { ProxyHooks } from './hooks.js';

export type Identify = (session: Session, token: string | undefined, frame: { client?: string }) => Promise<Identity>;

export function identify(o: {
  verifier: Pick<TokenVerifier, 'verify'>;
  hooks: Pick<ProxyHooks, 'decidesConnect' | 'connect'>;
  anonymous: boolean;
  anonymousIdentity(): Identity;
}): Identify {
  return async (session, token, frame) => {
    if (o.hooks.decidesConnect(token !== undefined)) {
      if (token !== undefined) await o.verifier.verify(token);
      return o.hooks.connect(session, frame, token);
    }
    if (token !== undefined) return o.verifier.verify(token);
    if (o.anonymous) return o.anonymousIdentity();
    throw new HeraldError(ErrorCode.UNAUTHORIZED, 'a token is required: send it in the connect frame');
  };
}

/** The close code of a refused `connect`: expired 4006, undecided (backend trouble or a temporary refusal) 4008, else 4501. */
export function connectCloseCode(e: HeraldError): number {
  if (e.code === ErrorCode.TOKEN_EXPIRED) return CloseCode.TOKEN_EXPIRED;
  if (e.temporary) return CloseCode.BACKEND_UNAVAILABLE;
  return CloseCode.UNAUTHORIZED;
}
