/**
 * Mutators: they take a valid frame (or HTTP body) and break one thing — a field's type or value,
 * a missing or extra field, nesting depth, size around the message limit — or, after it is turned
 * into bytes, the encoding (invalid UTF-8, BOM, NUL, truncation). Each returns a short label that
 * names what it did; labels are what the reports and reproducers show.
 */
import { Deep, JObj, Raw, clone, deleteAt, getAt, paths, render, setAt, type JPath, type JVal } from './json-model.js';
import type { Rng } from './rng.js';

/** Depths tried: around the documented limit (64), and thousands of levels (the C1 class). */
export const DEPTHS = [16, 63, 64, 65, 100, 1000, 4000, 5000, 6000, 10000, 30000];

/** Values of every JSON type and the edges of each: the "wrong type / odd value" mutations. */
export function interestingValues(limit: number): Array<[string, () => JVal]> {
  return [
    ['null', () => null],
    ['true', () => true],
    ['false', () => false],
    ['0', () => 0],
    ['-1', () => -1],
    ['-0', () => new Raw('-0')],
    ['1.5', () => 1.5],
    ['2^53', () => new Raw('9007199254740992')],
    ['2^64', () => new Raw('18446744073709551616')],
    ['-2^63', () => new Raw('-9223372036854775808')],
    ['1e308', () => new Raw('1e308')],
    ['1e999', () => new Raw('1e999')],
    ['-1e999', () => new Raw('-1e999')],
    ['1e-999', () => new Raw('1e-999')],
    ['digits-as-string', () => '1'],
    ['empty-string', () => ''],
    ['space', () => ' '],
    ['wildcard', () => '*'],
    ['pattern-breaker', () => 'a b/../%00\\"'],
    ['255-chars', () => 'a'.repeat(255)],
    ['256-chars', () => 'a'.repeat(256)],
    ['half-limit-string', () => 'x'.repeat(Math.floor(limit / 2))],
    ['nul', () => '\u0000'],
    ['bom', () => '\uFEFF'],
    ['lone-high-surrogate', () => 'a\uD800b'],
    ['lone-low-surrogate', () => '\uDC00'],
    ['noncharacter', () => '\uFFFF\uFFFE'],
    ['emoji', () => '\u{1F600}'.repeat(200)],
    ['rtl-override', () => '\u202Eevil\u202C'],
    ['line-separators', () => '\u2028\u2029\r\n'],
    ['combining-marks', () => `e${'\u0301'.repeat(500)}`],
    ['empty-array', () => []],
    ['empty-object', () => new JObj()],
    ['array-of-string', () => ['a']],
    ['proto-object', () => new JObj([['__proto__', new JObj([['polluted', true]])]])],
    ['constructor-prototype', () => new JObj([['constructor', new JObj([['prototype', new JObj([['polluted', true]])]])]])],
  ];
}

/** Keys to add to an object: prototype names, empty, huge, unicode, and the frame's own keys again. */
export const EXTRA_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '', 'x'.repeat(1000), '\u0000', '\uD800', 'id', 'type', 'unknownField'];

/** Sizes around the message limit: just under, at, just over, and far over. */
export function sizeTargets(limit: number): Array<[string, number]> {
  return [
    ['limit-1', limit - 1],
    ['limit', limit],
    ['limit+1', limit + 1],
    ['limit-100', limit - 100],
    ['2x-limit', limit * 2],
  ];
}

/** Sets the string at `path` so the whole frame renders to `target` bytes (ASCII padding). */
export function padToSize(frame: JVal, path: JPath, target: number): void {
  setAt(frame, path, '');
  const base = Buffer.byteLength(render(frame));
  setAt(frame, path, 'x'.repeat(Math.max(0, target - base)));
}

export type ValueOp = 'replace' | 'remove' | 'extra-key' | 'duplicate-key' | 'deep' | 'size' | 'wide';

/** Applies one random mutation to `frame` in place; returns its label. */
export function mutateValue(rng: Rng, frame: JObj, limit: number): string {
  const all = paths(frame);
  const op = rng.weighted<ValueOp>([
    ['replace', 6],
    ['remove', 2],
    ['extra-key', 2],
    ['duplicate-key', 1],
    ['deep', 2],
    ['size', 1],
    ['wide', 1],
  ]);
  const path = all.length > 0 ? rng.pick(all) : [];
  return applyValueOp(rng, frame, op, path, limit);
}

/** One mutation at one place (also used by the sweep, which chooses op and path itself). */
export function applyValueOp(rng: Rng, frame: JObj, op: ValueOp, path: JPath, limit: number, choice?: number): string {
  const where = path.length > 0 ? path.join('.') : '(root)';
  switch (op) {
    case 'replace': {
      const values = interestingValues(limit);
      const [label, make] = values[choice ?? rng.int(values.length)]!;
      if (path.length === 0) return applyValueOp(rng, frame, 'extra-key', path, limit);
      setAt(frame, path, make());
      return `${where}=${label}`;
    }
    case 'remove':
      if (path.length === 0 || !deleteAt(frame, path)) return applyValueOp(rng, frame, 'extra-key', path, limit);
      return `${where}:removed`;
    case 'extra-key': {
      const target = path.length > 0 && getAt(frame, path) instanceof JObj ? (getAt(frame, path) as JObj) : frame;
      const key = EXTRA_KEYS[choice ?? rng.int(EXTRA_KEYS.length)]!;
      const value = rng.chance(0.5) ? new JObj([['polluted', true]]) : 1;
      target.entries.push([key, value]);
      return `${target === frame ? '(root)' : where}+key(${printable(key)})`;
    }
    case 'duplicate-key': {
      const entries = frame.entries;
      if (entries.length === 0) return applyValueOp(rng, frame, 'extra-key', path, limit);
      const [k] = entries[rng.int(entries.length)]!;
      const values = interestingValues(limit);
      entries.push([k, values[rng.int(values.length)]![1]()]);
      return `${k}:duplicated`;
    }
    case 'deep': {
      const depth = choice !== undefined ? DEPTHS[choice]! : rng.pick(DEPTHS);
      const kind = rng.chance(0.6) ? 'array' : 'object';
      const target = path.length > 0 ? path : ['deep'];
      const inner = getAt(frame, target);
      setAt(frame, target, new Deep(depth, kind, inner === undefined || inner instanceof Deep ? null : clone(inner)));
      return `${target.join('.')}:deep(${kind},${depth})`;
    }
    case 'size': {
      const targets = sizeTargets(limit);
      const [label, size] = targets[choice ?? rng.int(targets.length)]!;
      const target = path.length > 0 ? path : ['pad'];
      padToSize(frame, target, size);
      return `${target.join('.')}:size(${label})`;
    }
    case 'wide': {
      const n = rng.pick([1000, 10000]);
      const target = path.length > 0 ? path : ['wide'];
      if (rng.chance(0.5)) setAt(frame, target, Array.from({ length: n }, (_, i) => i));
      else setAt(frame, target, new JObj(Array.from({ length: Math.min(n, 5000) }, (_, i) => [`k${i}`, i] as [string, JVal])));
      return `${target.join('.')}:wide(${n})`;
    }
  }
}

/** Whole-message replacements: not an object, several values, nothing at all. */
export const WHOLE_MESSAGES: Array<[string, (limit: number) => string]> = [
  ['empty', () => ''],
  ['whitespace', () => ' \t\r\n'],
  ['string', () => '"connect"'],
  ['number', () => '42'],
  ['null', () => 'null'],
  ['array-of-frames', () => '[{"type":"ping"},{"type":"ping"}]'],
  ['two-objects', () => '{"type":"ping"}{"type":"ping"}'],
  ['trailing-garbage', () => '{"type":"ping"}xyz'],
  ['unclosed', () => '{"type":"ping"'],
  ['unclosed-deep', (limit) => '['.repeat(Math.min(limit - 1, 60000))],
  ['type-only-number', () => '{"type":1}'],
  ['type-unknown', () => '{"type":"subscribe-all","id":1}'],
  ['type-case', () => '{"type":"PING"}'],
  ['whitespace-flood', (limit) => `${' '.repeat(limit - 20)}{"type":"ping"}`],
  ['escaped-lone-surrogate-key', () => '{"type":"ping","\\ud800":1}'],
  ['id-huge-digits', () => `{"type":"subscribe","id":${'9'.repeat(400)},"channel":"fuzz:a"}`],
  ['id-then-invalid', () => '{"id":7,"type":"publish","channel":"fuzz:a"'],
  ['proto-top', () => '{"type":"ping","__proto__":{"type":"publish"}}'],
  ['constructor-top', () => '{"type":"ping","constructor":{"prototype":{"x":1}}}'],
];

/** Byte sequences that are not valid UTF-8 (overlong, surrogates, truncated, out of range). */
export const BAD_UTF8: Array<[string, number[]]> = [
  ['c3-28', [0xc3, 0x28]],
  ['ff', [0xff]],
  ['overlong-slash', [0xc0, 0xaf]],
  ['encoded-surrogate', [0xed, 0xa0, 0x80]],
  ['truncated-4byte', [0xf0, 0x9f, 0x98]],
  ['5-byte', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['overlong-nul', [0xe0, 0x80, 0x80]],
  ['above-10ffff', [0xf4, 0x90, 0x80, 0x80]],
];

export type ByteOp = 'bom' | 'bad-utf8' | 'nul' | 'truncate' | 'flip' | 'insert';

/** One encoding-level mutation of the rendered frame; returns the new bytes and a label. */
export function mutateBytes(rng: Rng, bytes: Buffer, op?: ByteOp, choice?: number): { bytes: Buffer; label: string } {
  const kind = op ?? rng.weighted<ByteOp>([
    ['bom', 1],
    ['bad-utf8', 3],
    ['nul', 1],
    ['truncate', 2],
    ['flip', 2],
    ['insert', 1],
  ]);
  // Inside a string value when there is one, so the JSON stays well-formed apart from the encoding.
  const quote = bytes.indexOf(0x22, bytes.indexOf(0x3a));
  const at = quote > 0 ? quote + 1 : rng.int(bytes.length + 1);
  switch (kind) {
    case 'bom':
      return { bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), label: 'bytes:bom' };
    case 'bad-utf8': {
      const [label, seq] = BAD_UTF8[choice ?? rng.int(BAD_UTF8.length)]!;
      return { bytes: Buffer.concat([bytes.subarray(0, at), Buffer.from(seq), bytes.subarray(at)]), label: `bytes:bad-utf8(${label})` };
    }
    case 'nul':
      return { bytes: Buffer.concat([bytes.subarray(0, at), Buffer.from([0]), bytes.subarray(at)]), label: 'bytes:raw-nul' };
    case 'truncate': {
      const cut = rng.int(Math.max(1, bytes.length));
      return { bytes: bytes.subarray(0, cut), label: `bytes:truncated(${cut}/${bytes.length})` };
    }
    case 'flip': {
      const copy = Buffer.from(bytes);
      const i = rng.int(Math.max(1, copy.length));
      if (copy.length > 0) copy[i] = rng.int(256);
      return { bytes: copy, label: `bytes:flip(${i})` };
    }
    case 'insert': {
      const junk = rng.bytes(rng.range(1, 8));
      const i = rng.int(bytes.length + 1);
      return { bytes: Buffer.concat([bytes.subarray(0, i), junk, bytes.subarray(i)]), label: `bytes:insert(${i})` };
    }
  }
}

function printable(s: string): string {
  const short = s.length > 16 ? `${s.slice(0, 8)}…(${s.length})` : s;
  return JSON.stringify(short).slice(1, -1);
}
