import { ErrorCode } from '@herald/protocol';
import type { ClientFrame, ServerFrame } from '@herald/protocol';
import { HeraldError } from './errors.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

const TARGETS = new Set(['channel', 'user', 'broadcast', 'filter']);

function bad(type: string, what: string): HeraldError {
  return new HeraldError(ErrorCode.INVALID_FRAME, `malformed "${type}" frame from server: ${what}`);
}

function need(f: Obj, type: string, fields: Record<string, (v: unknown) => boolean>): void {
  for (const [name, check] of Object.entries(fields)) if (!check(f[name])) throw bad(type, `bad or missing "${name}"`);
}

const isPosition = (v: unknown): boolean => isObj(v) && isNum(v.offset) && isStr(v.epoch);
const isErrorBody = (v: unknown): boolean => isObj(v) && isStr(v.code) && isStr(v.message);

function checkMessage(f: Obj): void {
  need(f, 'message', { target: (v) => isStr(v) && TARGETS.has(v), message: isObj });
  need(f.message as Obj, 'message', { msgId: isStr, eventType: isStr });
  if (f.target === 'channel') need(f, 'message', { channel: isStr });
  // A position is present for channels with a stream; when present it must be whole.
  if (f.offset !== undefined || f.epoch !== undefined) need(f, 'message', { offset: isNum, epoch: isStr });
}

/**
 * Parses one text frame from the server and checks the fields the client relies on.
 * Throws HeraldError `invalid_json`, `invalid_frame` or `unknown_frame_type`; never anything else.
 */
export function decodeServerFrame(data: unknown): ServerFrame {
  if (typeof data !== 'string') throw new HeraldError(ErrorCode.INVALID_FRAME, 'server sent a non-text frame');
  let f: unknown;
  try {
    f = JSON.parse(data);
  } catch {
    throw new HeraldError(ErrorCode.INVALID_JSON, `server sent invalid JSON: ${data.slice(0, 80)}`);
  }
  if (!isObj(f) || !isStr(f.type)) throw new HeraldError(ErrorCode.INVALID_FRAME, 'server frame is not an object with a "type"');
  const t = f.type;
  switch (t) {
    case 'ping':
    case 'pong':
      break;
    case 'connected':
      need(f, t, { id: isNum, connectionId: isStr, pingInterval: isNum, pongTimeout: isNum });
      break;
    case 'subscribed':
      need(f, t, { id: isNum, channel: isStr, position: isPosition });
      if (f.publications !== undefined) {
        if (!Array.isArray(f.publications)) throw bad(t, 'bad "publications"');
        // Publications are channel deliveries of this channel; fill what a server may leave implicit.
        f.publications = f.publications.map((p: unknown) => {
          if (!isObj(p)) throw bad(t, 'bad entry in "publications"');
          const full: Obj = { type: 'message', target: 'channel', channel: f.channel, ...p };
          checkMessage(full);
          return full;
        });
      }
      break;
    case 'unsubscribed':
      need(f, t, { channel: isStr });
      if (f.id === undefined ? !isErrorBody(f.error) : !isNum(f.id)) throw bad(t, 'needs a numeric "id", or an "error" when the server ended the subscription');
      break;
    case 'refreshed':
      need(f, t, { id: isNum });
      break;
    case 'published':
      need(f, t, { id: isNum, msgId: isStr });
      break;
    case 'message':
      checkMessage(f);
      break;
    case 'request':
      need(f, t, { correlationId: isStr, method: isStr });
      break;
    case 'response':
      need(f, t, { correlationId: isStr });
      if (f.error !== undefined && !isErrorBody(f.error)) throw bad(t, 'bad "error"');
      break;
    case 'error':
      need(f, t, { error: isErrorBody });
      break;
    case 'presence':
      need(f, t, { id: isNum, channel: isStr });
      if (!Array.isArray(f.members) || !f.members.every(isMember)) throw bad(t, 'bad "members"');
      break;
    case 'presence_stats':
      need(f, t, { id: isNum, channel: isStr, connections: isNum, users: isNum });
      break;
    case 'join':
    case 'leave':
      need(f, t, { channel: isStr });
      if (!isMember(f.member)) throw bad(t, 'bad "member"');
      break;
    default:
      throw new HeraldError(ErrorCode.UNKNOWN_FRAME_TYPE, `server sent an unknown frame type "${t}"`);
  }
  return f as unknown as ServerFrame;
}

function isMember(m: unknown): boolean {
  return isObj(m) && isStr(m.client) && isStr(m.user);
}

export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}
