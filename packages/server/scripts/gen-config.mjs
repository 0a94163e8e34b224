#!/usr/bin/env node
/**
 * Writes what is derived from the configuration schema (api/config.schema.json), the one place
 * the configuration's shape, limits and defaults are written down:
 *
 * - src/config-types.generated.ts: the TypeScript type of a resolved configuration. A key with a
 *   default is always present once the defaults are merged in, so it is required in the type;
 *   keys without one (entries of `channels.namespaces`, optional fields of `ingest` entries)
 *   stay optional.
 * - configs/default.json: every default, as one file to read or copy from.
 *
 * `--check` writes nothing and exits 1 when a committed file differs from what it would write
 * (the test suite runs it so the files cannot drift from the schema).
 *
 * Run with `npm run -w herald gen:config` after editing the schema.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCHEMA_FILE = join(ROOT, 'api/config.schema.json');
const TYPES_FILE = join(ROOT, 'src/config-types.generated.ts');
const DEFAULTS_FILE = join(ROOT, 'configs/default.json');

/** Keys starting with `$` (`$schema`, `$comment`) annotate a file; they are not settings. */
const isSetting = (key) => !key.startsWith('$');

/** The default of a schema node: its own `default`, or for an object the defaults of its properties. */
function defaultOf(node) {
  if (node.default !== undefined) return JSON.parse(JSON.stringify(node.default));
  if (!node.properties) return undefined;
  const out = {};
  for (const [key, child] of Object.entries(node.properties)) {
    if (!isSetting(key)) continue;
    const value = defaultOf(child);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** A copy of the schema in which every property that has a default is required (outside `$defs`). */
function resolvedShape(node) {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    // A `default` beside a `$ref` would make the generator declare a copy of the referenced type.
    if (key === 'default' && node.$ref) continue;
    out[key] = key === 'properties' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolvedShape(v)])) : value;
  }
  if (node.properties) {
    const withDefault = Object.keys(node.properties).filter((k) => isSetting(k) && defaultOf(node.properties[k]) !== undefined);
    out.required = [...new Set([...(node.required ?? []), ...withDefault])];
  }
  return out;
}

async function generate() {
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
  const { $id: _id, ...shape } = resolvedShape(schema);
  const types = await compile(shape, 'HeraldConfig', {
    bannerComment:
      '/* Generated from api/config.schema.json by scripts/gen-config.mjs (npm run -w herald gen:config); do not edit. */',
    additionalProperties: false,
    unreachableDefinitions: false,
    ignoreMinAndMaxItems: true,
    format: true,
    style: { singleQuote: true, printWidth: 160 },
  });
  const defaults = `${JSON.stringify({ $schema: '../api/config.schema.json', ...defaultOf(schema) }, null, 2)}\n`;
  return new Map([
    [TYPES_FILE, types],
    [DEFAULTS_FILE, defaults],
  ]);
}

const check = process.argv.includes('--check');
let stale = 0;
for (const [file, text] of await generate()) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing: stale
  }
  if (current === text) continue;
  if (check) {
    stale++;
    process.stderr.write(`${file} is out of date with api/config.schema.json: run npm run -w herald gen:config\n`);
  } else {
    writeFileSync(file, text);
    process.stdout.write(`wrote ${file}\n`);
  }
}
process.exit(stale > 0 ? 1 : 0);
