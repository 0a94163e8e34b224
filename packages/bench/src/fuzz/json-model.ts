/**
 * The JSON the fuzzer builds before it turns it into text. Plain JavaScript values cannot express
 * what the fuzzer needs to send: duplicate keys, a real `"__proto__"` key, numbers JSON.stringify
 * will not write (`-0`, `1e999`, 2^64) and nesting thousands of levels deep (a recursive writer
 * would overflow the fuzzer's own stack). So objects keep an ordered list of entries, `Raw` is
 * literal JSON text and `Deep` is N levels of wrapping written as a repeated prefix and suffix.
 */

export type JVal = null | boolean | number | string | JVal[] | JObj | Raw | Deep;

export class JObj {
  constructor(public entries: Array<[string, JVal]> = []) {}

  get(key: string): JVal | undefined {
    return this.entries.find(([k]) => k === key)?.[1];
  }

  set(key: string, value: JVal): void {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.entries[i] = [key, value];
    else this.entries.push([key, value]);
  }

  delete(key: string): void {
    this.entries = this.entries.filter(([k]) => k !== key);
  }
}

/** Literal JSON text, written as is (it need not be valid JSON). */
export class Raw {
  constructor(readonly text: string) {}
}

/** `inner` wrapped in `depth` arrays (`[[[…]]]`) or objects (`{"a":{"a":…}}`, or another key). */
export class Deep {
  constructor(
    readonly depth: number,
    readonly kind: 'array' | 'object',
    readonly inner: JVal = null,
    readonly key = 'a',
  ) {}
}

/** A JObj from a plain object literal (which cannot hold `__proto__` or duplicate keys). */
export function obj(fields: Record<string, JVal | undefined>): JObj {
  const entries: Array<[string, JVal]> = [];
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) entries.push([k, v]);
  return new JObj(entries);
}

/** The JSON text of a value. Recursion is bounded by the value's own (shallow) structure. */
export function render(value: JVal): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Raw) return value.text;
  if (value instanceof Deep) {
    const [open, close] = value.kind === 'array' ? ['[', ']'] : [`{${JSON.stringify(value.key)}:`, '}'];
    return open.repeat(value.depth) + render(value.inner) + close.repeat(value.depth);
  }
  if (value instanceof JObj) return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${render(v)}`).join(',')}}`;
  return `[${value.map(render).join(',')}]`;
}

/** A copy that can be mutated without touching the original. */
export function clone(value: JVal): JVal {
  if (value instanceof JObj) return new JObj(value.entries.map(([k, v]) => [k, clone(v)]));
  if (Array.isArray(value)) return value.map(clone);
  return value; // scalars, Raw and Deep are immutable
}

/** A path to a value inside a frame: object keys and array indexes. */
export type JPath = Array<string | number>;

/** Every path to a value in `root` (objects and arrays are descended, Raw and Deep are leaves). */
export function paths(root: JVal, prefix: JPath = [], out: JPath[] = []): JPath[] {
  if (root instanceof JObj) {
    for (const [k, v] of root.entries) {
      const p = [...prefix, k];
      out.push(p);
      paths(v, p, out);
    }
  } else if (Array.isArray(root)) {
    root.forEach((v, i) => {
      const p = [...prefix, i];
      out.push(p);
      paths(v, p, out);
    });
  }
  return out;
}

/** The container holding `path`'s last step, or undefined when the path does not exist. */
export function parentOf(root: JVal, path: JPath): JObj | JVal[] | undefined {
  let cur: JVal | undefined = root;
  for (const step of path.slice(0, -1)) {
    if (cur instanceof JObj && typeof step === 'string') cur = cur.get(step);
    else if (Array.isArray(cur) && typeof step === 'number') cur = cur[step];
    else return undefined;
  }
  return cur instanceof JObj || Array.isArray(cur) ? cur : undefined;
}

export function setAt(root: JVal, path: JPath, value: JVal): boolean {
  const parent = parentOf(root, path);
  const last = path[path.length - 1];
  if (parent instanceof JObj && typeof last === 'string') parent.set(last, value);
  else if (Array.isArray(parent) && typeof last === 'number') parent[last] = value;
  else return false;
  return true;
}

export function getAt(root: JVal, path: JPath): JVal | undefined {
  const parent = parentOf(root, path);
  const last = path[path.length - 1];
  if (parent instanceof JObj && typeof last === 'string') return parent.get(last);
  if (Array.isArray(parent) && typeof last === 'number') return parent[last];
  return undefined;
}

export function deleteAt(root: JVal, path: JPath): boolean {
  const parent = parentOf(root, path);
  const last = path[path.length - 1];
  if (parent instanceof JObj && typeof last === 'string') parent.delete(last);
  else if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1);
  else return false;
  return true;
}
