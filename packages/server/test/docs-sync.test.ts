/**
 * Keeps the reference docs in step with the code: the error and close code registry in
 * docs/errors.md against `ERRORS` and `CloseCode`, and docs/protocol.md against the frame types
 * of the wire protocol. Reads only files; starts no server.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CloseCode, shouldReconnect } from '@herald/protocol';
import { ERRORS } from '../src/errors.js';
import { NON_CONFIG_VARIABLES } from '../src/config.js';
import { configKeys, envName, schemaDefaults } from '../src/config-schema.js';
import { REPO_ROOT } from './helpers/paths.js';

const read = (path: string): string => readFileSync(`${REPO_ROOT}${path}`, 'utf8');

const errorsDoc = read('docs/errors.md');
const protocolDoc = read('docs/protocol.md');

/** The lines of one `## heading` section of a markdown document, up to the next `## `. */
function section(doc: string, heading: string): string[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${heading}`);
  if (start < 0) throw new Error(`docs/errors.md has no "## ${heading}" section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Table rows whose first cell is a code span, split into trimmed cells. */
function codeRows(lines: string[]): string[][] {
  return lines
    .filter((l) => /^\|\s*`/.test(l))
    .map((l) => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim()));
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

function duplicates(values: string[]): string[] {
  return values.filter((v, i) => values.indexOf(v) !== i);
}

describe('docs/errors.md', () => {
  const rows = codeRows(section(errorsDoc, 'Error codes'));
  const documented = rows.map((r) => unquote(r[0]!));
  const codes = Object.keys(ERRORS);

  it('lists every error code in ERRORS', () => {
    expect(codes.filter((c) => !documented.includes(c)), 'codes missing from docs/errors.md').toEqual([]);
  });

  it('lists no error code that ERRORS does not define', () => {
    expect(documented.filter((c) => !codes.includes(c)), 'stale codes in docs/errors.md').toEqual([]);
    expect(duplicates(documented), 'codes listed twice').toEqual([]);
  });

  it('gives each error code the HTTP status and temporary flag of ERRORS', () => {
    for (const [cell, status, temporary] of rows) {
      const spec = ERRORS[unquote(cell!) as keyof typeof ERRORS];
      if (!spec) continue; // reported above
      expect({ code: unquote(cell!), status: Number(status), temporary }).toEqual({
        code: unquote(cell!),
        status: spec.status,
        temporary: String(spec.temporary),
      });
    }
  });

  const closeRows = codeRows(section(errorsDoc, 'Close codes'));
  const documentedClose = closeRows.map((r) => unquote(r[0]!));
  const closeCodes = Object.values(CloseCode).map(String);

  it('lists every CloseCode', () => {
    expect(closeCodes.filter((c) => !documentedClose.includes(c)), 'close codes missing from docs/errors.md').toEqual([]);
  });

  it('lists no close code that CloseCode does not define', () => {
    expect(documentedClose.filter((c) => !closeCodes.includes(c)), 'stale close codes in docs/errors.md').toEqual([]);
    expect(duplicates(documentedClose), 'close codes listed twice').toEqual([]);
  });

  it('gives each close code its CloseCode name and the shouldReconnect() answer', () => {
    const names = Object.fromEntries(Object.entries(CloseCode).map(([name, code]) => [String(code), name]));
    for (const [cell, name, reconnect] of closeRows) {
      const code = unquote(cell!);
      if (!(code in names)) continue; // reported above
      expect({ code, name: unquote(name!), reconnect }).toEqual({
        code,
        name: names[code],
        reconnect: shouldReconnect(Number(code)) ? 'yes' : 'no',
      });
    }
  });
});

describe('docs/protocol.md', () => {
  const schema = JSON.parse(read('packages/protocol/schemas/client-frames.schema.json')) as {
    $defs: Record<string, { properties?: { type?: { const?: string } } }>;
  };
  const clientFrameTypes = Object.entries(schema.$defs)
    .filter(([, def]) => typeof def.properties?.type?.const === 'string')
    .map(([name]) => name);
  const showsFrame = (type: string) => new RegExp(`"type"\\s*:\\s*"${type}"`).test(protocolDoc);

  it('finds the client frame types in the schema', () => {
    expect(clientFrameTypes).toEqual(expect.arrayContaining(['connect', 'subscribe', 'publish', 'ping', 'pong']));
  });

  it('shows an example of every client frame type in api/client-frames.schema.json', () => {
    expect(clientFrameTypes.filter((t) => !showsFrame(t)), 'client frames without an example').toEqual([]);
  });

  it('shows an example of every frame type declared in packages/protocol/src/frames.ts', () => {
    const types = [...read('packages/protocol/src/frames.ts').matchAll(/^\s*type: '([a-z]+)';$/gm)].map((m) => m[1]!);
    expect(types).toEqual(expect.arrayContaining(['connected', 'subscribed', 'published', 'message', 'error']));
    expect([...new Set(types)].filter((t) => !showsFrame(t)), 'frames without an example').toEqual([]);
  });

  it('mentions every error code and close code', () => {
    expect(Object.keys(ERRORS).filter((c) => !protocolDoc.includes(`\`${c}\``)), 'error codes').toEqual([]);
    expect(Object.values(CloseCode).filter((c) => !protocolDoc.includes(`\`${c}\``)), 'close codes').toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const doc = read('docs/configuration.md');
  const settings = configKeys().filter((k) => !k.isGroup);
  const defaults = schemaDefaults<Record<string, unknown>>();
  const defaultAt = (path: string[]): unknown => path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], defaults);

  /** Reference rows: `| \`key\`, … | \`default\`, … | \`HERALD_…\`, … | meaning |`, by key. */
  const rows = new Map<string, { default: string | undefined; env: string | undefined }>();
  for (const line of section(doc, 'Reference')) {
    const cells = line.split(' | ');
    if (!line.startsWith('| `') || cells.length < 4) continue;
    const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const [keys, values, envs] = [ticked(cells[0]!), ticked(cells[1]!), ticked(cells[2]!)];
    keys.forEach((key, i) => rows.set(key, { default: values[i], env: envs[i] }));
  }

  /** Keys documented as having no default; none today, so a key without one fails below. */
  const WITHOUT_DEFAULT: string[] = [];

  it('finds the schema keys and the reference rows', () => {
    expect(settings.length).toBeGreaterThan(100);
    expect(rows.size).toBeGreaterThan(100);
  });

  it('every key in the schema has a default', () => {
    expect(settings.filter((k) => defaultAt(k.path) === undefined && !WITHOUT_DEFAULT.includes(k.path.join('.'))).map((k) => k.path.join('.'))).toEqual([]);
  });

  it('every key in the schema has a reference row with its default and its environment variable', () => {
    const wrong = settings.flatMap(({ path }) => {
      const key = path.join('.');
      const row = rows.get(key);
      if (!row) return [`${key}: no row`];
      const problems: string[] = [];
      if (row.default === undefined || JSON.stringify(JSON.parse(row.default)) !== JSON.stringify(defaultAt(path))) problems.push(`${key}: default ${row.default} is not ${JSON.stringify(defaultAt(path))}`);
      if (row.env !== envName(path)) problems.push(`${key}: env ${row.env} is not ${envName(path)}`);
      return problems;
    });
    expect(wrong).toEqual([]);
  });

  it('has no reference row for a key the schema does not have', () => {
    const known = new Set(settings.map((k) => k.path.join('.')));
    expect([...rows.keys()].filter((k) => !known.has(k))).toEqual([]);
  });

  it('lists every HERALD_* variable that is not configuration', () => {
    const listed = section(doc, 'Environment variables').join('\n');
    expect(Object.keys(NON_CONFIG_VARIABLES).filter((name) => !listed.includes(`\`${name}\``))).toEqual([]);
  });
});
