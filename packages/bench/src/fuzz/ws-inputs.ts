/**
 * WebSocket-layer inputs: control frames with odd payloads and codes, oversized control frames,
 * fragmentation (continuations, interleaved control frames, fragmented control frames), bad
 * opcodes, reserved bits, unmasked frames, lying lengths and invalid UTF-8. Each says what a
 * correct server does with it: keep the connection open (then a `ping` probe must still be
 * answered) or close it (then it must not stay open).
 */
import { closePayload, encodeFrame, Opcode, textFrame } from './ws-framer.js';
import type { Rng } from './rng.js';

export type WsExpect = 'open' | 'close' | 'any' | 'gone';

export interface WsInput {
  label: string;
  bytes: Buffer;
  expect: WsExpect;
  /** Write in small pieces, so the server's parser sees partial frames. */
  split?: boolean;
  /** End our side of the TCP connection after writing (the input is a truncated frame). */
  endAfter?: boolean;
}

const PING_JSON = Buffer.from('{"type":"ping"}');

/** A text message cut into `n` fragments (some empty), with control frames between them when asked. */
function fragmented(payload: Buffer, n: number, interleave: boolean, rng: Rng): Buffer {
  const frames: Buffer[] = [];
  const cuts = new Set<number>();
  while (cuts.size < Math.min(n - 1, payload.length)) cuts.add(1 + rng.int(Math.max(1, payload.length - 1)));
  const points = [0, ...[...cuts].sort((a, b) => a - b), payload.length];
  for (let i = 0; i + 1 < points.length; i++) {
    const part = payload.subarray(points[i]!, points[i + 1]!);
    frames.push(encodeFrame({ opcode: i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, payload: part, fin: i + 2 === points.length }));
    if (interleave && i + 2 < points.length) frames.push(encodeFrame({ opcode: rng.chance(0.5) ? Opcode.PING : Opcode.PONG, payload: rng.bytes(rng.int(20)) }));
  }
  return Buffer.concat(frames);
}

/**
 * The cases, each built on demand (some are a message limit in size): `wsCatalogue` builds them
 * all in a fixed order for the sweep, `randomWsInput` one of them.
 */
function wsCases(rng: Rng, limit: number): Array<() => WsInput | WsInput[]> {
  const reason = (n: number) => Buffer.from('r'.repeat(n));
  const list: Array<() => WsInput | WsInput[]> = [
    () => ({ label: 'ws:ping(empty)', bytes: encodeFrame({ opcode: Opcode.PING, payload: Buffer.alloc(0) }), expect: 'open' }),
    () => ({ label: 'ws:ping(125)', bytes: encodeFrame({ opcode: Opcode.PING, payload: rng.bytes(125) }), expect: 'open' }),
    () => ({ label: 'ws:ping(126)', bytes: encodeFrame({ opcode: Opcode.PING, payload: rng.bytes(126) }), expect: 'close' }),
    () => ({ label: 'ws:ping(64KiB)', bytes: encodeFrame({ opcode: Opcode.PING, payload: rng.bytes(65536) }), expect: 'close' }),
    () => ({ label: 'ws:pong(unsolicited)', bytes: encodeFrame({ opcode: Opcode.PONG, payload: rng.bytes(rng.int(126)) }), expect: 'open' }),
    () => ({ label: 'ws:ping-flood(100)', bytes: Buffer.concat(Array.from({ length: 100 }, () => encodeFrame({ opcode: Opcode.PING, payload: rng.bytes(8) }))), expect: 'open' }),
    () => ({ label: 'ws:close(empty)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: Buffer.alloc(0) }), expect: 'close' }),
    () => ({ label: 'ws:close(1-byte)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: Buffer.from([0x03]) }), expect: 'close' }),
    () => ({ label: 'ws:close(1000,reason)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, 'bye') }), expect: 'close' }),
    () => ({ label: 'ws:close(4999)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(4999) }), expect: 'close' }),
    () => ({ label: 'ws:close(1000,123-byte reason)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, reason(123)) }), expect: 'close' }),
    () => ({ label: 'ws:close(1000,124-byte reason)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, reason(124)) }), expect: 'close' }),
    () => ({ label: 'ws:close(1000,bad-utf8 reason)', bytes: encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, Buffer.from([0xc3, 0x28])) }), expect: 'close' }),
    () => ({ label: 'ws:fragmented(2)', bytes: fragmented(PING_JSON, 2, false, rng), expect: 'open' }),
    () => ({ label: 'ws:fragmented(15)', bytes: fragmented(PING_JSON, 15, false, rng), expect: 'open' }),
    () => ({ label: 'ws:fragmented+interleaved-control', bytes: fragmented(PING_JSON, 6, true, rng), expect: 'open' }),
    () => ({
      label: 'ws:fragmented(1000 empty continuations)',
      bytes: Buffer.concat([
        encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, fin: false }),
        ...Array.from({ length: 1000 }, () => encodeFrame({ opcode: Opcode.CONTINUATION, payload: Buffer.alloc(0), fin: false })),
        encodeFrame({ opcode: Opcode.CONTINUATION, payload: Buffer.alloc(0) }),
      ]),
      expect: 'open',
    }),
    () => ({ label: 'ws:continuation-without-start', bytes: encodeFrame({ opcode: Opcode.CONTINUATION, payload: PING_JSON }), expect: 'close' }),
    () => ({
      label: 'ws:text-inside-fragmented',
      bytes: Buffer.concat([encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON.subarray(0, 4), fin: false }), textFrame(PING_JSON)]),
      expect: 'close',
    }),
    () => ({ label: 'ws:fragmented-ping', bytes: encodeFrame({ opcode: Opcode.PING, payload: rng.bytes(4), fin: false }), expect: 'close' }),
    () => ({
      label: 'ws:fragments-over-limit',
      bytes: Buffer.concat([
        encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.alloc(Math.ceil(limit / 2) + 1, 0x20), fin: false }),
        encodeFrame({ opcode: Opcode.CONTINUATION, payload: Buffer.alloc(Math.ceil(limit / 2) + 1, 0x20) }),
      ]),
      expect: 'close',
    }),
    () => [3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((op) => ({ label: `ws:opcode(${op})`, bytes: encodeFrame({ opcode: op, payload: PING_JSON }), expect: 'close' as const })),
    () => [4, 2, 1].map((rsv) => ({ label: `ws:rsv(${rsv})`, bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, rsv }), expect: 'close' as const })),
    () => ({ label: 'ws:unmasked-text', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, mask: false }), expect: 'close' }),
    () => ({ label: 'ws:unmasked-ping', bytes: encodeFrame({ opcode: Opcode.PING, payload: Buffer.alloc(0), mask: false }), expect: 'close' }),
    () => ({ label: 'ws:binary', bytes: encodeFrame({ opcode: Opcode.BINARY, payload: PING_JSON }), expect: 'close' }),
    () => ({ label: 'ws:empty-text', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.alloc(0) }), expect: 'open' }),
    () => ({ label: 'ws:len16-non-minimal', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, lengthForm: '16' }), expect: 'any' }),
    () => ({ label: 'ws:len64-non-minimal', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, lengthForm: '64' }), expect: 'any' }),
    () => ({ label: 'ws:len64-over-2^53', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.alloc(0), declaredLength: 1n << 60n }), expect: 'close' }),
    () => ({ label: 'ws:len64-high-bit', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.alloc(0), declaredLength: 1n << 63n }), expect: 'close' }),
    () => ({ label: 'ws:declared-over-limit', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: Buffer.alloc(0), declaredLength: BigInt(limit + 1) }), expect: 'close' }),
    () => ({ label: 'ws:text-over-limit', bytes: textFrame(Buffer.alloc(limit + 1, 0x20)), expect: 'close' }),
    () => ({ label: 'ws:text-at-limit', bytes: textFrame(Buffer.concat([PING_JSON, Buffer.alloc(limit - PING_JSON.length, 0x20)])), expect: 'open' }),
    () => ({ label: 'ws:text-bad-utf8', bytes: textFrame(Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d])), expect: 'close' }),
    () => ({ label: 'ws:zero-mask-key', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, maskKey: Buffer.alloc(4) }), expect: 'open' }),
    () => ({ label: 'ws:split-writes', bytes: textFrame(PING_JSON), expect: 'open', split: true }),
    () => ({ label: 'ws:truncated-then-end', bytes: encodeFrame({ opcode: Opcode.TEXT, payload: PING_JSON, declaredLength: 100n }), expect: 'gone', endAfter: true }),
  ];
  return list;
}

/** Every case once, in a fixed order (the sweep), with the variable parts drawn from `rng`. */
export function wsCatalogue(rng: Rng, limit: number): WsInput[] {
  return wsCases(rng, limit).flatMap((make) => make());
}

/** One WebSocket-layer input drawn at random (the catalogue's cases with fresh random parts). */
export function randomWsInput(rng: Rng, limit: number): WsInput {
  const made = rng.pick(wsCases(rng, limit))();
  const input = Array.isArray(made) ? rng.pick(made) : made;
  // Random extra: deliver any of them in pieces now and then.
  if (!input.split && !input.endAfter && rng.chance(0.1)) return { ...input, split: true, label: `${input.label}+split` };
  return input;
}
