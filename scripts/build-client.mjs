#!/usr/bin/env node
// Bundles the client SDK for browsers: client/src/index.ts → client/dist/herald-client.js (ESM,
// minified, with a source map). Also writes client/dist/herald-client.size.json with the raw,
// minified and gzipped sizes. Run by `npm run build`; `node scripts/client-size.mjs` checks the budget.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'client', 'dist');
const outfile = join(outdir, 'herald-client.js');

mkdirSync(outdir, { recursive: true });
const result = await build({
  entryPoints: [join(root, 'client', 'src', 'index.ts')],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

// Keep a copy under the conventional .min.js name too, so either name can be served.
const code = readFileSync(outfile);
writeFileSync(join(outdir, 'herald-client.min.js'), code);
const report = {
  file: 'client/dist/herald-client.js',
  minifiedBytes: code.length,
  gzipBytes: gzipSync(code, { level: 9 }).length,
  inputs: Object.keys(result.metafile.inputs).length,
};
writeFileSync(join(outdir, 'herald-client.size.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`client bundle: ${report.minifiedBytes} B minified, ${report.gzipBytes} B gzipped → ${report.file}`);
