/**
 * The envelope of a dispatch as serialized once at publish time, so neither the store nor the
 * local fan-out stringifies it again. Kept beside the dispatch (not in it) so brokers that
 * serialize dispatches do not carry it twice.
 */
import type { Dispatch } from './broker.js';

const encoded = new WeakMap<Dispatch, string>();

export function rememberEncodedEnvelope(dispatch: Dispatch, json: string): void {
  encoded.set(dispatch, json);
}

export function encodedEnvelope(dispatch: Dispatch): string {
  let json = encoded.get(dispatch);
  if (json === undefined) {
    json = JSON.stringify(dispatch.envelope);
    encoded.set(dispatch, json);
  }
  return json;
}
