/**
 * No import cycles in the server's sources, type-only imports included. Lint's
 * `import-x/no-cycle` fails on cycles of runtime imports; it skips `import type` by design (they
 * are erased), but a type-level cycle still means two modules own one thing between them, which
 * is what this checks. Known cycles in areas being restructured elsewhere are listed below with
 * the change that removes them; the list may only shrink.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

const KNOWN: string[][] = [
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('import cycles', () => {
  it('none in the server sources, type-only imports included, beyond the known ones', () => {
    const files = sources(SRC);
    const known = new Set(files.map((f) => relative(SRC, f)));
    const graph = new Map<string, string[]>();
    for (const file of files) {
      const from = relative(SRC, file);
      const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
      const deps = info.importedFiles
        .map((f) => f.fileName)
        .filter((name) => name.startsWith('.'))
        .map((name) => normalize(join(dirname(from), name)).replace(/\.js$/, '.ts'))
        .filter((dep) => known.has(dep));
      graph.set(from, deps);
    }
    const found = cycles(graph).map((c) => c.join(' ↔ '));
    expect(found.sort()).toEqual(KNOWN.map((c) => [...c].sort().join(' ↔ ')).filter((c) => found.includes(c)).sort());
  });
});
