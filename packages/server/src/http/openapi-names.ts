/**
 * Gives the OpenAPI document's shared schemas the names a reader expects. @fastify/swagger moves
 * the `$defs` of a schema added with `addSchema` next to it as `<generated container name>-<key>`
 * (`def-0-publishRequest`), which is what client generators and Swagger UI then show. Here each
 * moved definition is named after its own key in PascalCase (`PublishRequest`), the empty
 * container entries are dropped, and every `$ref` is rewritten to match.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const REF_PREFIX = '#/components/schemas/';

function pascalCase(key: string): string {
  return key.replace(/(^|[-_:\s]+)([a-zA-Z0-9])/g, (_m, _sep, ch: string) => ch.toUpperCase());
}

function rewriteRefs(node: Json, renamed: Map<string, string>): Json {
  if (Array.isArray(node)) return node.map((item) => rewriteRefs(item, renamed));
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string' && value.startsWith(REF_PREFIX)) {
      const target = renamed.get(value.slice(REF_PREFIX.length));
      out[key] = target === undefined ? value : REF_PREFIX + target;
    } else {
      out[key] = rewriteRefs(value, renamed);
    }
  }
  return out;
}

/** Returns a copy of `doc` with readable component schema names (see the file header). */
export function readableSchemaNames<T extends object>(doc: T): T {
  const schemas = (doc as { components?: { schemas?: Record<string, Json> } }).components?.schemas;
  if (!schemas) return doc;
  const containers = new Set(Object.keys(schemas).filter((name) => Object.keys(schemas).some((other) => other.startsWith(`${name}-`))));
  const renamed = new Map<string, string>();
  const taken = new Set(Object.keys(schemas).filter((name) => !containers.has(name) && ![...containers].some((c) => name.startsWith(`${c}-`))));
  for (const name of Object.keys(schemas)) {
    const container = [...containers].find((c) => name.startsWith(`${c}-`));
    if (container === undefined) continue;
    let readable = pascalCase(name.slice(container.length + 1));
    // Two containers may define the same key: the second keeps a numeric suffix rather than
    // silently replacing the first.
    for (let n = 2; taken.has(readable); n++) readable = `${pascalCase(name.slice(container.length + 1))}${n}`;
    taken.add(readable);
    renamed.set(name, readable);
  }
  const rewritten = rewriteRefs(doc as unknown as Json, renamed) as { components: { schemas: Record<string, Json> } };
  const next: Record<string, Json> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    if (containers.has(name) && isTitleOnly(schema)) continue;
    next[renamed.get(name) ?? name] = rewriteRefs(schema, renamed);
  }
  rewritten.components.schemas = next;
  return rewritten as unknown as T;
}

function isTitleOnly(schema: Json): boolean {
  return schema !== null && typeof schema === 'object' && !Array.isArray(schema) && Object.keys(schema).every((key) => key === 'title' || key === 'description');
}
