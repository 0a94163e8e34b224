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
function dispatchHead(dispatch: Dispatch): Pick<Dispatch, 'target' | 'filter' | 'reliable' | 'seq'> {
  return {
    target: dispatch.target,
    ...(dispatch.filter ? { filter: dispatch.filter } : {}),
    ...(dispatch.reliable ? { reliable: true } : {}),
    ...(dispatch.seq !== undefined ? { seq: dispatch.seq } : {}),
  };
}

/**
 * A dispatch as one JSON text for a broker to carry: `extra` (a broker's own fields, such as the
 * position), the head above, and the envelope spliced in as already encoded, never stringified again.
 */
export function encodeDispatch(dispatch: Dispatch, envelopeJson: string, extra: Record<string, unknown> = {}): string {
  const head = JSON.stringify({ ...extra, ...dispatchHead(dispatch) });
  return `${head.slice(0, -1)},"envelope":${envelopeJson}}`;
}
