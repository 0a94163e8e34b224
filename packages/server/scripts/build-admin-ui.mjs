#!/usr/bin/env node
// Builds the admin web UI (admin-ui/src) into admin-ui/dist, which Herald serves at /admin when
// admin.ui.enabled: app.js (preact, htm, uPlot and the pages in one minified ESM bundle), app.css
// (uPlot's stylesheet and the UI's) and index.html. Everything the browser loads comes from Herald:
// no CDN, no network at run time. Run by `npm run build`; `--outdir <dir>` writes elsewhere.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'admin-ui');
const outdirArg = process.argv.indexOf('--outdir');
const outdir = outdirArg > 0 && process.argv[outdirArg + 1] ? process.argv[outdirArg + 1] : join(root, 'dist');

mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: { app: join(root, 'src', 'main.ts') },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(join(root, 'src', 'index.html'), join(outdir, 'index.html'));
