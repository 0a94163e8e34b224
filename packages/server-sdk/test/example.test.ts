/**
 * The README's example runs as written: examples/quickstart.mjs is the README's code block, and
 * it runs here, as a separate Node process importing the built package by name, against a real Herald.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from 'herald';
import { API_KEY, startTestServer } from '../../server/test/helpers/server.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const example = here('../examples/quickstart.mjs');

let herald: HeraldServer;
beforeAll(async () => {
  herald = await startTestServer();
});
afterAll(async () => {
  await herald?.close();
});

describe('README example', () => {
  it('is the code block of the README', () => {
    const readme = readFileSync(here('../README.md'), 'utf8');
    // The file's opening comment (how to run it) is the README's prose instead.
    const code = readFileSync(example, 'utf8').replace(/^(\/\/.*\n)+/, '').trim();
    expect(readme).toContain(code);
  });

  it('runs against a real Herald', async () => {
    if (!existsSync(here('../dist/index.js'))) throw new Error('packages/server-sdk/dist is missing: run `npm run build` first');
    const { stdout } = await promisify(execFile)(process.execPath, [example], { env: { ...process.env, HERALD_URL: herald.url, HERALD_API_KEY: API_KEY }, timeout: 20_000 });
    expect(stdout.trim().split('\n')).toEqual([
      'published order-42-created at offset 1',
      'published again: duplicate=true',
      'batch: 3 of 3 published',
      'refused: invalid_channel (temporary=false)',
      expect.stringMatching(/^node \S+: 0 connections$/),
    ]);
  });
});
