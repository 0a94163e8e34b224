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

/**
 * What a broker sends beside the envelope so that every node delivers a dispatch as the accepting
 * node would: the audience, the tag filter, and for at-least-once messages the `reliable` flag
 * (recipients must ACK and are retransmitted) and the user's inbox `seq`. Receipts stay with the
 * accepting node, so their flag does not travel.
 */
export function dispatchHead(dispatch: Dispatch): Pick<Dispatch, 'target' | 'filter' | 'reliable' | 'seq'> {
  return {
    target: dispatch.target,
    ...(dispatch.filter ? { filter: dispatch.filter } : {}),
    ...(dispatch.reliable ? { reliable: true } : {}),
    ...(dispatch.seq !== undefined ? { seq: dispatch.seq } : {}),
  };
}
