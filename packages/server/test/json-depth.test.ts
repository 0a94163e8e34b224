/**
 * The depth scan against a reference: random JSON (strings full of brackets, quotes and
 * backslashes, random whitespace) measured by the scan on its text and by recursion on the parsed
 * value must agree at every limit.
 */
import { describe, expect, it } from 'vitest';
import { exceedsJsonDepth } from '../src/json-depth.js';

/** Deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY = ['[', ']', '{', '}', '"', '\\', '\\"', '\\\\', '"]', '\\\\"', ' ', 'a', '\u00e9', '\ud83d\ude00', '\n'];

function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 8);
  for (let i = 0; i < n; i++) s += TRICKY[Math.floor(r() * TRICKY.length)];
  return s;
}

function randomValue(r: () => number, budget: number): unknown {
  const pick = r();
  if (budget <= 0 || pick < 0.3) {
    const k = Math.floor(r() * 5);
    return k === 0 ? null : k === 1 ? r() < 0.5 : k === 2 ? Math.floor(r() * 1000) - 500 : randomString(r);
  }
  const n = Math.floor(r() * 4);
  if (pick < 0.65) return Array.from({ length: n }, () => randomValue(r, budget - 1));
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${randomString(r)}${i}`, randomValue(r, budget - 1)]));
}

function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depth));
  return 0;
}

/** JSON text with random whitespace between tokens (outside strings). */
function spaced(v: unknown, r: () => number): string {
  const ws = () => [' ', '', '\n', '\t', '  '][Math.floor(r() * 5)]!;
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => spaced(x, r)).join(`${ws()},${ws()}`)}${ws()}]`;
  if (v !== null && typeof v === 'object') return `{${ws()}${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}${ws()}:${ws()}${spaced(x, r)}`).join(`,${ws()}`)}${ws()}}`;
  return JSON.stringify(v);
}

describe('exceedsJsonDepth', () => {
  it('agrees with the depth of the parsed value on random JSON, at every limit', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const r = rng(seed);
      const value = randomValue(r, 1 + Math.floor(r() * 12));
      const text = spaced(value, r);
      const d = depth(JSON.parse(text));
      for (let max = 0; max <= d + 1; max++) {
        if (exceedsJsonDepth(text, max) !== d > max) throw new Error(`seed ${seed}, max ${max}, depth ${d}: ${text}`);
      }
    }
  });

  it('handles the edges: scalars, escapes at the end of strings, the first character past the limit', () => {
    expect(exceedsJsonDepth('"[[[[[[["', 2)).toBe(false);
    expect(exceedsJsonDepth('["\\\\", [[1]]]', 2)).toBe(true); // an escaped backslash ends the string
    expect(exceedsJsonDepth('["\\"[[[", 1]', 1)).toBe(false); // an escaped quote does not
    expect(exceedsJsonDepth('[[[', 2)).toBe(true);
    expect(exceedsJsonDepth('[[', 2)).toBe(false);
    expect(exceedsJsonDepth('12345', 0)).toBe(false);
    expect(exceedsJsonDepth('{}', 0)).toBe(true);
    expect(exceedsJsonDepth('"unterminated [[[[', 1)).toBe(false);
  });

  it('refuses a 10 MB nesting', () => {
    expect(exceedsJsonDepth('['.repeat(5_000_000) + ']'.repeat(5_000_000), 64)).toBe(true);
  });
});
