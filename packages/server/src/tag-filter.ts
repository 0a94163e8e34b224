/**
 * Tag filters select connections by the tags their tokens carry. A filter is validated and
 * compiled once per publish into a predicate, plus — where its shape allows — a plan that names
 * the index buckets (`tag = value`) holding every possible match, so equality and `in` terms are
 * answered from the index instead of a scan over every connection.
 */
import type { TagCondition, TagValue, Tags } from '@herald/protocol';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from './errors.js';

export type Predicate = (tags: Tags) => boolean;

/**
 * Candidate plan: `undefined` means "no index can narrow this, scan"; otherwise the union of
 * the listed `(tag, value)` buckets is a superset of the matches.
 */
export type IndexPlan = Array<{ tag: string; value: string }> | undefined;

export interface CompiledFilter {
  test: Predicate;
  plan: IndexPlan;
}

const MAX_DEPTH = 16;
const MAX_TERMS = 256;

function invalid(message: string): HeraldError {
  return new HeraldError(ErrorCode.INVALID_FILTER, `invalid filter: ${message}`);
}

/** Tag values are indexed by their string form so `2` and `"2"` meet in the same bucket. */
export function indexKey(value: TagValue): string {
  return String(value);
}

export function compileFilter(filter: unknown): CompiledFilter {
  const counter = { terms: 0 };
  return compile(filter, 0, counter);
}

function compile(node: unknown, depth: number, counter: { terms: number }): CompiledFilter {
  if (depth > MAX_DEPTH) throw invalid(`nesting deeper than ${MAX_DEPTH}`);
  if (++counter.terms > MAX_TERMS) throw invalid(`more than ${MAX_TERMS} terms`);
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw invalid('each term must be an object');
  const keys = Object.keys(node);
  const obj = node as Record<string, unknown>;
  if (keys.length === 1 && (keys[0] === 'and' || keys[0] === 'or')) {
    const list = obj[keys[0]];
    if (!Array.isArray(list) || list.length === 0) throw invalid(`"${keys[0]}" takes a non-empty array`);
    const parts = list.map((n) => compile(n, depth + 1, counter));
    const tests = parts.map((p) => p.test);
    if (keys[0] === 'and') {
      // The smallest narrowing child bounds the whole conjunction; choosing by bucket count
      // happens at lookup time, so keep the first narrowing plan (equality terms come first in practice).
      const plans = parts.map((p) => p.plan).filter((p): p is NonNullable<IndexPlan> => p !== undefined);
      plans.sort((a, b) => a.length - b.length);
      return { test: (t) => tests.every((f) => f(t)), plan: plans[0] };
    }
    const plan = parts.every((p) => p.plan !== undefined) ? parts.flatMap((p) => p.plan!) : undefined;
    return { test: (t) => tests.some((f) => f(t)), plan };
  }
  if (keys.length === 1 && keys[0] === 'not') {
    const inner = compile(obj.not, depth + 1, counter);
    return { test: (t) => !inner.test(t), plan: undefined };
  }
  return compileCondition(obj);
}

function compileCondition(obj: Record<string, unknown>): CompiledFilter {
  for (const k of Object.keys(obj)) {
    if (k !== 'tag' && k !== 'op' && k !== 'value') throw invalid(`unknown key "${k}" (a condition has tag, op, value)`);
  }
  const cond = obj as unknown as TagCondition;
  const { tag, op, value } = cond;
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > 64) throw invalid('"tag" must be a non-empty string');
  switch (op) {
    case 'eq':
    case 'ne': {
      if (!isScalar(value)) throw invalid(`"${op}" needs a string, number or boolean value`);
      const want = indexKey(value);
      if (op === 'eq') return { test: (t) => t[tag] !== undefined && indexKey(t[tag]) === want, plan: [{ tag, value: want }] };
      return { test: (t) => t[tag] === undefined || indexKey(t[tag]) !== want, plan: undefined };
    }
    case 'in': {
      if (!Array.isArray(value) || value.length === 0 || value.length > 100 || !value.every(isScalar)) {
        throw invalid('"in" needs an array of 1 to 100 strings, numbers or booleans');
      }
      const set = new Set(value.map(indexKey));
      return { test: (t) => t[tag] !== undefined && set.has(indexKey(t[tag])), plan: [...set].map((v) => ({ tag, value: v })) };
    }
    case 'exists': {
      if (typeof value !== 'boolean') throw invalid('"exists" needs true or false');
      return { test: (t) => (t[tag] !== undefined) === value, plan: undefined };
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(`"${op}" needs a finite number`);
      const cmp = numericComparator(op, value);
      return {
        test: (t) => {
          const v = t[tag];
          const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
          return !Number.isNaN(n) && cmp(n);
        },
        plan: undefined,
      };
    }
    case 'vgt':
    case 'vgte':
    case 'vlt':
    case 'vlte': {
      const want = typeof value === 'string' ? parseVersion(value) : undefined;
      if (!want) throw invalid(`"${op}" needs a dotted version such as "2.10.1"`);
      return {
        test: (t) => {
          const v = t[tag];
          const have = typeof v === 'string' || typeof v === 'number' ? parseVersion(String(v)) : undefined;
          if (!have) return false;
          const c = compareVersions(have, want);
          return op === 'vgt' ? c > 0 : op === 'vgte' ? c >= 0 : op === 'vlt' ? c < 0 : c <= 0;
        },
        plan: undefined,
      };
    }
    default:
      throw invalid(`unknown op ${JSON.stringify(op)}`);
  }
}

function isScalar(v: unknown): v is TagValue {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

function numericComparator(op: 'gt' | 'gte' | 'lt' | 'lte', x: number): (n: number) => boolean {
  switch (op) {
    case 'gt':
      return (n) => n > x;
    case 'gte':
      return (n) => n >= x;
    case 'lt':
      return (n) => n < x;
    case 'lte':
      return (n) => n <= x;
  }
}

/** `v2.10.1-beta` → [2, 10, 1]; pre-release suffixes are ignored. */
export function parseVersion(s: string): number[] | undefined {
  const m = /^v?(\d+(?:\.\d+){0,3})(?:[-+].*)?$/.exec(s.trim());
  return m ? m[1]!.split('.').map(Number) : undefined;
}

export function compareVersions(a: number[], b: number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
