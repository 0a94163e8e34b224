/**
 * Reading configuration input — files, `--set` assignments — and merging layers. Every key name
 * that comes in is checked here, wherever it comes from, so that configuration input can never
 * reach `Object.prototype`.
 */
import { readFileSync } from 'node:fs';
import { isStringList, nodeAt } from './config-schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Key names no configuration has, refused wherever keys come from (file, environment, `--set`):
 * `__proto__` as an assigned key replaces an object's prototype — `--set __proto__.x=1` would
 * have set `x` on every object in the process — and the other two lead to it
 * (`constructor.prototype`).
 */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function refuseUnsafeKey(key: string, path: readonly string[]): void {
  if (UNSAFE_KEYS.has(key)) throw new ConfigError(`${[...path, key].join('.')}: "${key}" is not allowed as a configuration key`);
}

/** Refuses an unsafe key anywhere inside a value parsed from JSON (objects in arrays included). */
export function refuseUnsafeKeysIn(value: unknown, path: readonly string[]): void {
  if (Array.isArray(value)) value.forEach((item, i) => refuseUnsafeKeysIn(item, [...path, String(i)]));
  else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      refuseUnsafeKey(k, path);
      refuseUnsafeKeysIn(v, [...path, k]);
    }
  }
}

/**
 * Deep merge where arrays and scalars from `over` replace those in `base`. A key named
 * `__proto__`, `constructor` or `prototype` (JSON.parse makes `"__proto__"` an own key) throws a
 * ConfigError instead of being assigned.
 */
export function mergeConfig<T>(base: T, over: unknown, path: readonly string[] = []): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    refuseUnsafeKey(k, path);
    if (v === undefined) continue;
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? mergeConfig(out[k], v, [...path, k]) : v;
  }
  return out as T;
}

/** Parses a string from the environment or a flag into the JSON type the key expects. */
export function coerce(raw: string): unknown {
  const t = raw.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t.startsWith('[') || t.startsWith('{')) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

export function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  path.forEach((k, i) => refuseUnsafeKey(k, path.slice(0, i)));
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (!isPlainObject(node[k])) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Whether the key at `path` is a list of strings, which may be given comma-separated. */
function isStringListKey(path: readonly string[]): boolean {
  const node = nodeAt(path);
  return node !== undefined && isStringList(node);
}

export function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** `--set limits.maxConnections=5000` style assignments. */
export function configFromAssignments(assignments: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key=value, got "${a}"`);
    const path = a.slice(0, eq).split('.');
    let v = coerce(a.slice(eq + 1));
    refuseUnsafeKeysIn(v, path);
    if (typeof v === 'string' && isStringListKey(path)) v = splitList(v);
    setPath(out, path, v);
  }
  return out;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
    if (!isPlainObject(parsed)) throw new Error('top level must be an object');
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    refuseUnsafeKeysIn(parsed, []);
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
  }
  return parsed;
}
