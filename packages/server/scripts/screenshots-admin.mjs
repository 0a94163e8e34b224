#!/usr/bin/env node
// Writes docs/img/admin-*.png: the admin UI's pages with real data, taken by the browser test
// (test/browser/admin-ui.test.ts) in Debian's Chromium through playwright-core while it runs a
// Herald with live clients. Needs a build first (`npm run build`) and /usr/bin/chromium.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const out = join(repo, 'docs', 'img');
const r = spawnSync('npx', ['vitest', 'run', 'packages/server/test/browser/admin-ui.test.ts'], {
  cwd: repo,
  stdio: 'inherit',
  // CI=true: a missing Chromium fails instead of skipping, so no run ends "successfully" without pictures.
  env: { ...process.env, HERALD_ADMIN_SCREENSHOTS: out, CI: 'true' },
});
if (r.status !== 0) process.exit(r.status ?? 1);
console.log(`screenshots written to ${out}`);
