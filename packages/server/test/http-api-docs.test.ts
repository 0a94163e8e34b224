/**
 * docs/http-api.md against the OpenAPI document the server generates from its routes: every route
 * has its own section, and every parameter and every request or response field the route's
 * schemas name (nested objects included) is written in that section as a code span. A route or a
 * field added without documentation fails here. Also checks the schema names a generator sees.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readableSchemaNames } from '../src/http/openapi-names.js';
import { Metrics } from '../src/metrics.js';
import { webhookMetrics } from '../src/webhooks/metrics.js';
import { REPO_ROOT, serverFile } from './helpers/paths.js';

type Schema = { $ref?: string; properties?: Record<string, Schema>; items?: Schema; oneOf?: Schema[]; anyOf?: Schema[]; allOf?: Schema[] };
type Operation = {
  parameters?: { name: string; in: string }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};

const doc = readFileSync(`${REPO_ROOT}docs/http-api.md`, 'utf8');
const openapi = JSON.parse(readFileSync(serverFile('api/openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

/** GitHub's anchor for a heading: lower case, punctuation other than `-` dropped, spaces to `-`. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}

const sections = new Map<string, string>(); // anchor → section text
{
  const lines = doc.split('\n');
  lines.forEach((line, i) => {
    if (!line.startsWith('## ')) return;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('## '));
    sections.set(slug(line.slice(3)), lines.slice(i, end < 0 ? undefined : end).join('\n'));
  });
}

/**
 * The `## \`METHOD path\`` section of the doc (heading included), followed by the sections of
 * other routes it links to — "each item shaped like the body of [`POST /api/v1/publish`](#…)"
 * documents those fields there.
 */
function routeSection(method: string, path: string): string | undefined {
  const own = sections.get(slug(`\`${method} ${path}\``));
  if (own === undefined) return undefined;
  const linked = [...own.matchAll(/\]\(#([a-z0-9_-]+)\)/g)].map((m) => sections.get(m[1]!)).filter((t) => t !== undefined && t.startsWith('## `'));
  return [own, ...linked].join('\n');
}

/** Every property name reachable from `schema`, following `$ref`s into components once each. */
function fieldNames(schema: Schema | undefined, seen = new Set<string>()): Set<string> {
  const names = new Set<string>();
  const walk = (s: Schema | undefined): void => {
    if (!s) return;
    if (s.$ref) {
      const name = s.$ref.replace('#/components/schemas/', '');
      if (seen.has(name)) return;
      seen.add(name);
      walk(openapi.components.schemas[name]);
      return;
    }
    for (const [key, value] of Object.entries(s.properties ?? {})) {
      names.add(key);
      walk(value);
    }
    walk(s.items);
    for (const part of [...(s.oneOf ?? []), ...(s.anyOf ?? []), ...(s.allOf ?? [])]) walk(part);
  };
  walk(schema);
  return names;
}

/** Fields of the shared error body are documented once, under "Requests and errors". */
const errorFields = fieldNames(openapi.components.schemas.ErrorResponse);

const routes = Object.entries(openapi.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));

describe('docs/http-api.md', () => {
  it('finds the routes of the OpenAPI document', () => {
    expect(routes.length).toBeGreaterThan(10);
  });

  it.each(routes.map((r) => [`${r.method} ${r.path}`, r] as const))('documents %s in its own section', (_name, { method, path }) => {
    expect(routeSection(method, path), `no "## \`${method} ${path}\`" section`).toBeDefined();
  });

  it.each(routes.map((r) => [`${r.method} ${r.path}`, r] as const))('names every parameter and field of %s', (_name, { method, path, op }) => {
    const section = routeSection(method, path) ?? '';
    const names = new Set<string>();
    for (const p of op.parameters ?? []) names.add(p.name);
    for (const media of Object.values(op.requestBody?.content ?? {})) for (const n of fieldNames(media.schema)) names.add(n);
    for (const [status, response] of Object.entries(op.responses ?? {})) {
      if (!status.startsWith('2')) continue;
      for (const media of Object.values(response.content ?? {})) for (const n of fieldNames(media.schema)) names.add(n);
    }
    // A field is documented by a code span in the section or as a key of its body examples; a path
    // parameter by its `{name}` in the heading.
    const documented = (n: string): boolean => section.includes(`\`${n}\``) || new RegExp(`"${n}"\\s*:`).test(section) || path.includes(`{${n}}`);
    const missing = [...names].filter((n) => !documented(n) && !errorFields.has(n));
    expect(missing, `fields of ${method} ${path} not written in its section`).toEqual([]);
  });

  it('the error body fields are documented once', () => {
    for (const n of errorFields) expect(doc).toContain(`\`${n}\``);
  });
});

describe('OpenAPI schema names', () => {
  it('are readable: no generated def-N names', () => {
    expect(Object.keys(openapi.components.schemas).filter((n) => /^def-\d/.test(n))).toEqual([]);
    expect(JSON.stringify(openapi)).not.toMatch(/#\/components\/schemas\/def-\d/);
  });

  it('renames moved $defs after their key, keeps both of two equal keys, and rewrites every $ref', () => {
    const input = {
      paths: { '/x': { get: { responses: { 200: { content: { 'application/json': { schema: { $ref: '#/components/schemas/def-1-item' } } } } } } } },
      components: {
        schemas: {
          'def-0': { title: 'a' },
          'def-0-item': { type: 'object', properties: { next: { $ref: '#/components/schemas/def-0-item' } } },
          'def-1': { title: 'b' },
          'def-1-item': { type: 'string' },
          'def-1-error_body': { type: 'object' },
          standalone: { type: 'number' },
        },
      },
    };
    const out = readableSchemaNames(input) as unknown as { components: { schemas: Record<string, unknown> }; paths: typeof input.paths };
    expect(Object.keys(out.components.schemas).sort()).toEqual(['ErrorBody', 'Item', 'Item2', 'standalone']);
    expect(out.components.schemas.Item).toEqual({ type: 'object', properties: { next: { $ref: '#/components/schemas/Item' } } });
    expect(out.paths['/x'].get.responses[200].content['application/json'].schema.$ref).toBe('#/components/schemas/Item2');
    expect(input.components.schemas['def-0-item']).toBeDefined(); // the input is not modified
  });
});

describe('the metrics table', () => {
  it('lists every herald_ metric the server registers', async () => {
    const metrics = new Metrics({ connections: () => 0, subscriptions: () => 0, queuedBytes: () => 0 });
    webhookMetrics(metrics.registry, async () => ({ pending: 0, dead: 0 }));
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('herald_'));
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !new RegExp(`\\| \`${n}(\\{[a-z_,]+\\})?\` \\|`).test(doc))).toEqual([]);
  });
});
