#!/usr/bin/env node
// Builds the browser bundle of the client SDK and checks its minified + gzipped size against the
// budget (15 KB = 15 360 bytes). Exits 1 above the budget.
// Usage: node packages/client/scripts/client-size.mjs [--no-build] [--file <bundle>]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 15 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!process.argv.includes('--no-build')) {
  execFileSync(process.execPath, [join(root, 'scripts', 'build-client.mjs')], { stdio: 'inherit' });
}
const fileArg = process.argv.indexOf('--file');
const file = fileArg > 0 && process.argv[fileArg + 1] ? process.argv[fileArg + 1] : join(root, 'dist', 'herald-client.js');
const code = readFileSync(file);
const gzipped = gzipSync(code, { level: 9 }).length;
const pct = ((gzipped / BUDGET_BYTES) * 100).toFixed(1);
console.log(`herald-client.js: ${code.length} B minified, ${gzipped} B minified+gzipped (${pct}% of the ${BUDGET_BYTES} B budget)`);
if (gzipped > BUDGET_BYTES) {
  console.error(`client bundle is over budget by ${gzipped - BUDGET_BYTES} B`);
  process.exit(1);
}
