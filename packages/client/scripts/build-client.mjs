#!/usr/bin/env node
// Builds the publishable client package (dist/):
//   index.js              the package's entry: src/ as one ESM module that imports @herald/protocol,
//                         so an application that also runs the server shares one HeraldError class.
//   herald-client.js      src/index.ts bundled by esbuild: ESM, minified, browser platform,
//                         no dependencies (the protocol module is inlined), for a <script type=module>
//                         (a Herald server serves it at /herald-client.js).
//   herald-client.min.js  the same bytes under the conventional name.
//   herald-client.size.json  minified and gzipped sizes (the budget is checked by client-size.mjs).
//   types/                declarations (tsc -b; the root build makes them too); they import @herald/protocol.
// Run by `npm run build`. `--no-types` skips the declarations; `--outdir <dir>` writes the bundle
// files elsewhere (tests use a private directory so parallel runs never read a half-written file).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdirArg = process.argv.indexOf('--outdir');
const outdir = outdirArg > 0 && process.argv[outdirArg + 1] ? process.argv[outdirArg + 1] : join(root, 'dist');
const outfile = join(outdir, 'herald-client.js');

mkdirSync(outdir, { recursive: true });
const result = await build({
  entryPoints: [join(root, 'src', 'index.ts')],
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

await build({
  entryPoints: [join(root, 'src', 'index.ts')],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  external: ['@herald/protocol'],
  format: 'esm',
  platform: 'neutral',
  target: ['es2022'],
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});

// Keep a copy under the conventional .min.js name too, so either name can be served.
const code = readFileSync(outfile);
writeFileSync(join(outdir, 'herald-client.min.js'), code);
const report = {
  file: outfile,
  minifiedBytes: code.length,
  gzipBytes: gzipSync(code, { level: 9 }).length,
  inputs: Object.keys(result.metafile.inputs).length,
};
writeFileSync(join(outdir, 'herald-client.size.json'), JSON.stringify(report, null, 2) + '\n');
if (!process.argv.includes('--no-types')) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', root], { stdio: 'inherit' });
}
console.log(`client bundle: ${report.minifiedBytes} B minified, ${report.gzipBytes} B gzipped → ${outfile}`);
