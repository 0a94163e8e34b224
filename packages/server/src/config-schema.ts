/**
 * Everything derived from the configuration schema (`api/config.schema.json`) at run time: the
 * defaults (each key's `default`), the list of keys, and the environment variable that sets each
 * key. The schema is the one place a key is declared; nothing here lists keys by hand.
 */
import { readJsonAsset } from './assets.js';

/** The subset of JSON Schema the configuration schema uses. */
export interface SchemaNode {
  type?: string | string[];
  $ref?: string;
  default?: unknown;
  description?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  enum?: unknown[];
  $defs?: Record<string, SchemaNode>;
}

let cached: SchemaNode | undefined;

export function configSchema(): SchemaNode {
  cached ??= readJsonAsset<SchemaNode>('api/config.schema.json');
  return cached;
}

/** Keys starting with `$` (`$schema`, `$comment`) annotate a file; they are not settings. */
export function isSettingKey(key: string): boolean {
  return !key.startsWith('$');
}

/** A node with its local `$ref` followed (the schema only refers to its own `$defs`). */
export function resolveRef(node: SchemaNode, root: SchemaNode = configSchema()): SchemaNode {
  if (!node.$ref) return node;
  const name = node.$ref.replace(/^#\/\$defs\//, '');
  const target = root.$defs?.[name];
  if (!target) throw new Error(`config schema: unresolved $ref ${node.$ref}`);
  return target;
}

/** The default of a node: its own `default`, or for an object the defaults of its properties. */
function defaultOf(node: SchemaNode): unknown {
  if (node.default !== undefined) return structuredClone(node.default);
  if (!node.properties) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(node.properties)) {
    if (!isSettingKey(key)) continue;
    const value = defaultOf(child);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Every default the schema declares, as one configuration object (a fresh copy each call). */
export function schemaDefaults<T>(): T {
  return defaultOf(configSchema()) as T;
}

export interface ConfigKey {
  /** `['limits', 'overload', 'mode']` */
  path: string[];
  /** The key's schema, `$ref` followed. */
  node: SchemaNode;
  /** An object with fixed keys, which are listed too; the others are settings. */
  isGroup: boolean;
}

/**
 * Every key the schema declares, groups (`limits.overload`) and settings (`limits.overload.mode`)
 * alike, in schema order. A map (`channels.namespaces`) and an array (`ingest.jetstream`) are
 * settings: their contents have no fixed names.
 */
export function configKeys(root: SchemaNode = configSchema()): ConfigKey[] {
  const out: ConfigKey[] = [];
  const walk = (node: SchemaNode, path: string[]) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      if (!isSettingKey(key)) continue;
      const resolved = resolveRef(child, root);
      const here = [...path, key];
      const isGroup = resolved.properties !== undefined;
      out.push({ path: here, node: resolved, isGroup });
      if (isGroup) walk(resolved, here);
    }
  };
  walk(root, []);
  return out;
}

/** `maxConnections` → `MAX_CONNECTIONS`, `ipv6PrefixLength` → `IPV6_PREFIX_LENGTH`. */
export function envSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** `MAX_CONNECTIONS` → `maxConnections` (the inverse of envSegment, and the rule for map keys). */
export function keySegment(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

export const ENV_PREFIX = 'HERALD_';

/** `['limits', 'maxConnections']` → `HERALD_LIMITS__MAX_CONNECTIONS`. */
export function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.map(envSegment).join('__');
}

/**
 * The key a `HERALD_*` name sets and that key's schema, or undefined when it names no key. Within
 * a map (`channels.namespaces`) any segment is a key of its own, camelCased
 * (`HERALD_CHANNELS__NAMESPACES__CHAT__HISTORY__SIZE`). A whole section (`HERALD_LIMITS`) is
 * not settable: one variable per key keeps a variable from silently replacing a section's defaults.
 */
export function keyForEnvName(name: string, root: SchemaNode = configSchema()): { path: string[]; node: SchemaNode } | undefined {
  if (!name.startsWith(ENV_PREFIX)) return undefined;
  const segments = name.slice(ENV_PREFIX.length).split('__');
  if (segments.length < 2) return undefined;
  let node = root;
  const path: string[] = [];
  for (const segment of segments) {
    if (node.properties) {
      const key = Object.keys(node.properties).find((k) => isSettingKey(k) && envSegment(k) === segment);
      if (key === undefined) return undefined;
      path.push(key);
      node = resolveRef(node.properties[key]!, root);
    } else if (typeof node.additionalProperties === 'object' && segment !== '') {
      path.push(keySegment(segment));
      node = resolveRef(node.additionalProperties, root);
    } else {
      return undefined;
    }
  }
  return { path, node };
}

/**
 * A list of strings, which the environment and `--set` may give comma-separated — also a list
 * whose items may be strings or objects (`api.keys`): comma-separated gives the string form, a
 * JSON array the rest.
 */
export function isStringList(node: SchemaNode): boolean {
  if (node.type !== 'array' || !node.items) return false;
  const items = node.items;
  return items.type === 'string' || (items.enum !== undefined && items.enum.every((v) => typeof v === 'string')) || (items.oneOf?.some((alt) => alt.type === 'string') ?? false);
}

/** Edit distance (insertions, deletions, substitutions), for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The candidate nearest to `wrong` (case-insensitive edit distance), or undefined when none is
 * near enough to be a likely misspelling (a third of the name's length, at least 2 edits).
 */
export function closest(wrong: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(wrong.length / 3)) + 1;
  for (const c of candidates) {
    const d = distance(wrong.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** The schema of the object at a dotted key path (`limits.overload`), `$ref`s and maps followed. */
export function nodeAt(path: readonly string[], root: SchemaNode = configSchema()): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  for (const key of path) {
    if (!node) return undefined;
    if (node.properties && Object.hasOwn(node.properties, key)) node = resolveRef(node.properties[key]!, root);
    else if (typeof node.additionalProperties === 'object') node = resolveRef(node.additionalProperties, root);
    else if (node.items && /^\d+$/.test(key)) node = resolveRef(node.items, root);
    else return undefined;
  }
  return node;
}
