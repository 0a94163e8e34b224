/**
 * Valid client frames of every type (docs/protocol.md §3, packages/protocol/schemas/client-frames.schema.json): the
 * seeds the mutators start from. Each generator varies the optional fields so that valid inputs
 * alone already walk most of the read path.
 */
import { CHANNELS, PUBLISH_CHANNELS } from './world.js';
import { obj, type JObj, type JVal } from './json-model.js';
import type { Rng } from './rng.js';

export const FRAME_TYPES = ['connect', 'subscribe', 'unsubscribe', 'publish', 'request', 'response', 'ack', 'refresh', 'presence', 'presence_stats', 'ping', 'pong'] as const;
export type FrameType = (typeof FRAME_TYPES)[number];

/** What a generator may draw on besides randomness. */
export interface FrameContext {
  /** A fresh request id. */
  id(): number;
  /** A token for `connect`, when the connection has one. */
  token?: string | undefined;
  /** correlationIds of server requests this connection has seen (for `response`). */
  serverRequests?: string[];
  /** msgIds this connection has received (for `ack`). */
  received?: string[];
}

const EVENT_TYPES = ['fuzz.event', 'chat.message', 'ORDER_CREATED', 'a/b/c', 'x'];

export function smallPayload(rng: Rng): JVal {
  switch (rng.int(6)) {
    case 0:
      return null;
    case 1:
      return rng.int(1000);
    case 2:
      return `text-${rng.int(1e6)}`;
    case 3:
      return [1, 'two', obj({ three: 3 }), [4]];
    case 4:
      return obj({ text: 'hi', n: rng.int(100), nested: obj({ ok: true, list: [1, 2, 3] }) });
    default:
      return obj({});
  }
}

function msgId(rng: Rng): string {
  return `fz-${rng.int(1 << 30).toString(36)}`;
}

export function validFrame(type: FrameType, rng: Rng, ctx: FrameContext): JObj {
  switch (type) {
    case 'connect':
      return obj({ type, id: ctx.id(), token: ctx.token, client: rng.chance(0.5) ? 'herald-fuzz/1.0' : undefined });
    case 'subscribe':
      return obj({
        type,
        id: ctx.id(),
        channel: rng.pick(CHANNELS),
        recover: rng.chance(0.4) ? obj({ offset: rng.int(50), epoch: rng.chance(0.5) ? 'deadbeef' : '' }) : undefined,
        presence: rng.chance(0.3) ? rng.chance(0.7) : undefined,
      });
    case 'unsubscribe':
      return obj({ type, id: ctx.id(), channel: rng.pick(CHANNELS) });
    case 'publish':
      return obj({
        type,
        id: ctx.id(),
        channel: rng.pick(PUBLISH_CHANNELS),
        eventType: rng.pick(EVENT_TYPES),
        payload: smallPayload(rng),
        msgId: rng.chance(0.5) ? msgId(rng) : undefined,
        version: rng.chance(0.3) ? '2.0' : undefined,
      });
    case 'request':
      return obj({
        type,
        correlationId: `r-${rng.int(1e9).toString(36)}`,
        method: rng.chance(0.8) ? 'echo' : 'no-such-method',
        data: rng.chance(0.8) ? smallPayload(rng) : undefined,
      });
    case 'response': {
      const known = ctx.serverRequests ?? [];
      const correlationId = known.length > 0 && rng.chance(0.7) ? rng.pick(known) : `00000000-0000-4000-8000-${rng.int(1e9).toString().padStart(12, '0')}`;
      return rng.chance(0.7)
        ? obj({ type, correlationId, data: smallPayload(rng) })
        : obj({ type, correlationId, error: obj({ code: 'unavailable', message: 'not now', temporary: rng.chance(0.5), details: rng.chance(0.5) ? obj({ why: 'fuzz' }) : undefined }) });
    }
    case 'ack': {
      const known = ctx.received ?? [];
      const n = rng.range(1, 4);
      const ids: JVal[] = [];
      for (let i = 0; i < n; i++) ids.push(known.length > 0 && rng.chance(0.6) ? rng.pick(known) : msgId(rng));
      return obj({ type, msgIds: ids });
    }
    case 'refresh':
      // The connection's own token when there is one (a refresh to the same rights), else one the server refuses.
      return obj({ type, id: ctx.id(), token: ctx.token ?? 'not.a.token' });
    case 'presence':
      return obj({ type, id: ctx.id(), channel: rng.pick(CHANNELS), cursor: rng.chance(0.3) ? `herald-${rng.int(1000)}` : undefined, limit: rng.chance(0.5) ? rng.range(1, 1000) : undefined });
    case 'presence_stats':
      return obj({ type, id: ctx.id(), channel: rng.pick(CHANNELS) });
    case 'ping':
    case 'pong':
      return obj({ type });
  }
}

/** The field paths of each frame type's schema, for the systematic sweep (nested fields included). */
export const FIELD_PATHS: Record<FrameType, Array<Array<string | number>>> = {
  connect: [['type'], ['id'], ['token'], ['client']],
  subscribe: [['type'], ['id'], ['channel'], ['recover'], ['recover', 'offset'], ['recover', 'epoch'], ['presence']],
  unsubscribe: [['type'], ['id'], ['channel']],
  publish: [['type'], ['id'], ['channel'], ['eventType'], ['payload'], ['msgId'], ['version']],
  request: [['type'], ['correlationId'], ['method'], ['data']],
  response: [['type'], ['correlationId'], ['data']],
  ack: [['type'], ['msgIds'], ['msgIds', 0]],
  refresh: [['type'], ['id'], ['token']],
  presence: [['type'], ['id'], ['channel'], ['cursor'], ['limit']],
  presence_stats: [['type'], ['id'], ['channel']],
  ping: [['type']],
  pong: [['type']],
};

/** A frame of `type` with every optional field present, so every path in FIELD_PATHS exists. */
export function fullFrame(type: FrameType, rng: Rng, ctx: FrameContext): JObj {
  const f = validFrame(type, rng, ctx);
  if (type === 'connect' && f.get('client') === undefined) f.set('client', 'herald-fuzz/1.0');
  if (type === 'subscribe' && f.get('recover') === undefined) f.set('recover', obj({ offset: 1, epoch: 'deadbeef' }));
  if (type === 'subscribe' && f.get('presence') === undefined) f.set('presence', true);
  if (type === 'presence') {
    if (f.get('cursor') === undefined) f.set('cursor', 'herald-1');
    if (f.get('limit') === undefined) f.set('limit', 10);
  }
  if (type === 'publish') {
    if (f.get('msgId') === undefined) f.set('msgId', msgId(rng));
    if (f.get('version') === undefined) f.set('version', '1.0');
  }
  if (type === 'request') {
    f.set('method', 'echo');
    if (f.get('data') === undefined) f.set('data', obj({ hello: 'world' }));
  }
  if (type === 'response' && f.get('data') === undefined) {
    f.delete('error');
    f.set('data', obj({ ok: true }));
  }
  return f;
}
