/**
 * Runs a code block of the docs as written: the first ```js block after a marker comment is saved
 * to a temporary file and started with node, so a test exercises exactly what readers copy.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { REPO_ROOT } from './paths.js';

/** The ```js block after `marker` in `docs/<doc>`. */
export function docBlock(doc: string, marker: string): string {
  const text = readFileSync(`${REPO_ROOT}docs/${doc}`, 'utf8');
  const at = text.indexOf(marker);
  expect(at, `the marker in docs/${doc}`).toBeGreaterThan(0);
  const block = /```js\n([\s\S]*?)```/.exec(text.slice(at));
  expect(block, `a js block after the marker in docs/${doc}`).not.toBeNull();
  return block![1]!;
}

/** A node process running `source` from a temporary `.mjs` file; `stop` kills it and removes the file. */
export function runSnippet(source: string, env: Record<string, string>, stdio: StdioOptions): { child: ChildProcess; stop(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-doc-snippet-'));
  const file = join(dir, 'snippet.mjs');
  writeFileSync(file, source);
  const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio });
  return {
    child,
    stop() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
